"""The Celery app: Redis broker from ``HP_CELERY_BROKER_URL`` and the Beat schedule.

Run a worker with ``celery -A retrain.celery_app worker`` and the schedule with
``celery -A retrain.celery_app beat``. Job status lives in the store (``retrain_jobs``), not in
a Celery result backend, so the API reports it whichever executor ran the job.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, signals
from celery.schedules import crontab

from app.log_config import configure_logging
from app.settings import Settings, get_settings

RETRAIN_TASK = "retrain.tasks.retrain"  # the API sends it by this name (app.api.retrain)
BEAT_ENTRY = "retrain-when-recommended"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"


def parse_cron(expr: str) -> crontab:
    """``"minute hour day month weekday"`` -> a Celery `crontab`.

    Raises:
        ValueError: not five fields, or a field Celery cannot parse.
    """
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron expression {expr!r} must have 5 fields: "
            "minute hour day-of-month month day-of-week"
        )
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    return crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
    )


def beat_schedule(cron: str) -> dict[str, dict[str, Any]]:
    """One entry: the retrain task on ``cron``, retraining only when feedback recommends it."""
    return {
        BEAT_ENTRY: {
            "task": RETRAIN_TASK,
            "schedule": parse_cron(cron),
            "kwargs": {"trigger": "beat", "only_if_recommended": True},
        }
    }


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app configured from ``settings`` (the environment's by default)."""
    settings = settings or get_settings()
    app = Celery(
        "healthpredict",
        broker=settings.celery_broker_url or DEFAULT_BROKER,
        include=["retrain.tasks"],
    )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,  # a worker killed mid-retrain does not silently drop the job
        worker_prefetch_multiplier=1,
        timezone="UTC",
        enable_utc=True,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": settings.retrain_job_timeout_s},
        beat_schedule=beat_schedule(settings.retrain_schedule_cron),
        worker_hijack_root_logger=False,
    )
    return app


@signals.setup_logging.connect  # type: ignore[untyped-decorator]
def _use_app_logging(**_: Any) -> None:
    """Workers and Beat log JSON lines like the API (connecting here stops Celery's setup)."""
    configure_logging(get_settings().log_level)


app = make_celery()
