"""`/retrain`: start a champion-vs-challenger retraining job (admin) and follow it."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from fastapi import APIRouter, Request, status
from sqlalchemy.orm import Session, sessionmaker

from app.deps import ModelsDep, SessionDep, SettingsDep
from app.errors import AppError, ConflictError, NotFoundError
from app.schemas.errors import ErrorResponse
from app.schemas.retrain import RetrainAccepted, RetrainJobRead
from app.settings import Settings
from app.store import repository
from app.store.tables import RetrainJobRow

if TYPE_CHECKING:
    from retrain.job import RetrainResult
    from retrain.runner import InProcessRunner

logger = logging.getLogger(__name__)

RELOAD_TIMEOUT_S = 300.0

router = APIRouter(prefix="/retrain", tags=["retrain"])


class BrokerUnavailableError(AppError):
    status_code = 503
    code = "broker_unavailable"
    message = "The Celery broker did not accept the retraining job"


class RetrainJobNotFoundError(NotFoundError):
    code = "retrain_job_not_found"
    message = "No retraining job with this id"


def queue_job(
    make_session: sessionmaker[Session], executor: str, timeout_s: float
) -> RetrainJobRow:
    """Record a queued job, or 409 while another one is queued or running."""
    from retrain.runner import blocking_job  # lazy: retrain.* (matplotlib, ...) ~3 s at import

    with make_session() as session:
        active = blocking_job(session, timeout_s)
        if active is not None:
            raise ConflictError(
                f"Retraining job {active.id} is already {active.status}; wait for it to finish",
                details=[{"field": "job_id", "value": active.id, "reason": active.status}],
            )
        return repository.create_retrain_job(session, executor=executor, trigger="api")


def fail_job(make_session: sessionmaker[Session], job_id: str, error: str) -> None:
    with make_session() as session:
        repository.finish_retrain_job(session, job_id, succeeded=False, error=error)


def runner_of(state: Any) -> InProcessRunner:
    """This process's runner, created on first use."""
    from retrain.runner import InProcessRunner

    runner = getattr(state, "retrain_runner", None)
    if runner is None:
        runner = state.retrain_runner = InProcessRunner()
    return runner


def send_to_celery(settings: Settings, job_id: str) -> None:
    from retrain.celery_app import make_celery

    make_celery(settings).send_task(
        "retrain.tasks.retrain", kwargs={"job_id": job_id, "trigger": "api"}
    )


def start_in_process(request: Request, models: Any, settings: Settings, job_id: str) -> bool:
    """Hand the job to this process's runner; a promotion reloads the served models."""
    from retrain.job import RetrainConfig
    from retrain.runner import execute_job

    loop = asyncio.get_running_loop()

    def reload(result: RetrainResult) -> None:
        future = asyncio.run_coroutine_threadsafe(models.reload(), loop)
        future.result(timeout=RELOAD_TIMEOUT_S)
        logger.info(
            "served models reloaded after promotion", extra={"run_id": result.challenger_run_id}
        )

    work = functools.partial(
        execute_job,
        request.app.state.sessionmaker,
        job_id,
        RetrainConfig.from_settings(settings),
        reload,
    )
    return runner_of(request.app.state).submit(job_id, work)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetrainAccepted,
    responses={409: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def create_retrain_job(
    request: Request, settings: SettingsDep, models: ModelsDep
) -> RetrainAccepted:
    """Start retraining: original data + corrected feedback -> challenger, compared with the
    champion on the same held-out set, promoted only if better by `HP_RETRAIN_MARGIN` on
    `HP_RETRAIN_METRIC` (admin role).

    Runs on Celery when `HP_CELERY_BROKER_URL` is set, else in a background thread of this API
    process (`executor` says which). One job at a time: 409 while one is queued or running.
    """
    make_session = request.app.state.sessionmaker
    executor = "celery" if settings.celery_broker_url else "in-process"
    if executor == "in-process" and runner_of(request.app.state).busy:
        raise ConflictError("A retraining job is already running in this process")
    job = await anyio.to_thread.run_sync(
        queue_job, make_session, executor, settings.retrain_job_timeout_s
    )
    if executor == "celery":
        try:
            await anyio.to_thread.run_sync(send_to_celery, settings, job.id)
        except Exception as exc:
            logger.error("celery broker refused the job", extra={"error": type(exc).__name__})
            await anyio.to_thread.run_sync(fail_job, make_session, job.id, "broker unavailable")
            raise BrokerUnavailableError() from exc
    elif not start_in_process(request, models, settings, job.id):
        await anyio.to_thread.run_sync(fail_job, make_session, job.id, "runner busy")
        raise ConflictError("A retraining job is already running in this process")
    return RetrainAccepted(
        job_id=job.id,
        status="queued",
        executor=executor,
        status_url=str(request.url_for("read_retrain_job", job_id=job.id).path),
    )


@router.get("/{job_id}", response_model=RetrainJobRead, responses={404: {"model": ErrorResponse}})
def read_retrain_job(job_id: str, session: SessionDep) -> RetrainJobRead:
    """A retraining job's status; once finished, its decision and the scores of both models."""
    job = repository.get_retrain_job(session, job_id)
    if job is None:
        raise RetrainJobNotFoundError(
            details=[{"field": "job_id", "value": job_id, "reason": "unknown job id"}]
        )
    return RetrainJobRead.model_validate(job)
