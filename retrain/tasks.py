"""Celery task: a thin shell around `retrain.runner.execute_job` (settings read here, the edge)."""

from __future__ import annotations

import logging
from typing import Any

from app.settings import Settings, get_settings
from app.store import db, repository, retrain_jobs
from app.store.retrain_jobs import blocking_job
from retrain.celery_app import RETRAIN_TASK, app
from retrain.config import RetrainConfig
from retrain.promote import champion_meta, trained_at
from retrain.runner import execute_job, notify_api

logger = logging.getLogger(__name__)


def recommended(settings: Settings, make_session: Any, config: RetrainConfig) -> tuple[bool, str]:
    """Whether feedback since the champion's training calls for retraining."""
    meta = champion_meta(config)
    with make_session() as session:
        stats = repository.feedback_stats(
            session,
            since=trained_at(meta) if meta else None,
            min_feedback=settings.retrain_min_feedback,
            error_rate_threshold=settings.retrain_error_rate,
        )
    return stats.retraining_recommended, stats.recommendation_reason


@app.task(name=RETRAIN_TASK)  # type: ignore[untyped-decorator]
def retrain(
    job_id: str | None = None, trigger: str = "api", only_if_recommended: bool = False
) -> dict[str, Any]:
    """Run one retraining job; Beat calls it with ``only_if_recommended=True``.

    Args:
        job_id: the job row the API created; None creates one (Beat, manual sends).
        trigger: ``api``, ``beat`` or ``manual``, recorded on a job created here.
        only_if_recommended: skip (no job) unless `feedback_stats` recommends retraining.
    """
    settings = get_settings()
    config = RetrainConfig.from_settings(settings)
    engine = db.make_engine(settings.database_url)
    make_session = db.make_sessionmaker(engine)
    try:
        if only_if_recommended:
            ok, why = recommended(settings, make_session, config)
            if not ok:
                logger.info("scheduled retrain skipped", extra={"reason": why})
                return {"decision": "skipped", "reason": why}
        if job_id is None:
            with make_session() as session:
                active = blocking_job(session, settings.retrain_job_timeout_s)
                if active is not None:
                    return {"decision": "skipped", "reason": f"job {active.id} is {active.status}"}
                job_id = retrain_jobs.create_retrain_job(
                    session, executor="celery", trigger=trigger
                ).id
        result = execute_job(make_session, job_id, config, on_promoted=notify_api(settings))
        return {"job_id": job_id, "decision": result.decision if result else "failed"}
    finally:
        engine.dispose()
