"""`/retrain`: start a champion-vs-challenger retraining job (admin) and follow it.

The service never imports `retrain` (the training stack): a Celery job is sent by task name, an
in-process job runs as a `python -m retrain --job-id <id>` child process that this process
watches from a daemon thread, one at a time. Both record their progress and outcome on the job
row. After a promotion the child writes `PROMOTED_LINE` on its stdout and waits: this process
reloads the served models, answers `RELOADED_LINE` on the child's stdin, and only then does the
child record the job as succeeded (polling the job, a client never sees the old models after).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from celery import Celery
from fastapi import APIRouter, Request, status
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from app.deps import AuditEventsDep, ModelsDep, PrincipalDep, SessionDep, SettingsDep
from app.errors import BrokerUnavailableError, ConflictError, NotFoundError
from app.schemas.errors import ErrorResponse
from app.schemas.retrain import RetrainAccepted, RetrainJobRead
from app.schemas.text import Text
from app.settings import Settings
from app.store import broker, retrain_jobs
from app.store.retrain_jobs import blocking_job
from app.store.tables import RetrainJobRow

logger = logging.getLogger(__name__)

RELOAD_TIMEOUT_S = 300.0
RETRAIN_TASK = "retrain.tasks.retrain"  # the name `retrain.celery_app` registers the task under
PROMOTED_LINE = "healthpredict-retrain: promoted"  # + " <challenger run id>", child -> API
RELOADED_LINE = "healthpredict-retrain: reloaded"  # API -> child
ENV_PREFIX = "HP_"
BROKER_RETRY_AFTER_S = 5

router = APIRouter(prefix="/retrain", tags=["retrain"])


class RetrainJobNotFoundError(NotFoundError):
    code = "retrain_job_not_found"
    message = "No retraining job with this id"


def queue_job(
    make_session: sessionmaker[Session], executor: str, timeout_s: float
) -> RetrainJobRow:
    """Record a queued job, or 409 while another one is queued or running."""
    with make_session() as session:
        active = blocking_job(session, timeout_s)
        if active is not None:
            raise ConflictError(
                f"Retraining job {active.id} is already {active.status}; wait for it to finish",
                details=[{"field": "job_id", "value": active.id, "reason": active.status}],
            )
        return retrain_jobs.create_retrain_job(session, executor=executor, trigger="api")


def fail_job(make_session: sessionmaker[Session], job_id: str, error: str) -> None:
    with make_session() as session:
        retrain_jobs.finish_retrain_job(session, job_id, succeeded=False, error=error)


# --- Celery: the task sent by name --------------------------------------------------------


@functools.cache
def celery_client(broker_url: str, visibility_timeout_s: float, timeout_s: float) -> Celery:
    """A Celery app that only sends (same serializer and visibility timeout as the worker's),
    each wait on the broker bounded by ``timeout_s`` (`app.store.broker`)."""
    client = Celery("healthpredict", broker=broker_url)
    options = broker.celery_options(broker_url, timeout_s)
    options["broker_transport_options"]["visibility_timeout"] = visibility_timeout_s
    client.conf.update(task_serializer="json", accept_content=["json"], **options)
    return client


def send_to_celery(settings: Settings, job_id: str) -> None:
    """Send the retrain task for ``job_id`` to ``HP_CELERY_BROKER_URL`` (raises if unreachable
    or silent for longer than about 3 x ``HP_BROKER_TIMEOUT_S``)."""
    client = celery_client(
        str(settings.celery_broker_url), settings.retrain_job_timeout_s, settings.broker_timeout_s
    )
    client.send_task(RETRAIN_TASK, kwargs={"job_id": job_id, "trigger": "api"})


# --- in-process: a `python -m retrain --job-id` child, one at a time ----------------------


class InProcessRunner:
    """Runs one job at a time in a daemon thread of this process (no broker configured).

    A daemon thread never holds up shutdown; the child process it watches then finishes the
    job on its own (without the reload), or, killed too, leaves it ``running`` in the store
    until `blocking_job` deems it abandoned.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.current_job: str | None = None

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None and self._thread.is_alive()

    def submit(self, job_id: str, work: Callable[[], object]) -> bool:
        """Start ``work`` in the background unless a job runs already (then return False)."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self.current_job = job_id
            self._thread = threading.Thread(
                target=self._run, args=(job_id, work), name=f"retrain-{job_id[:8]}", daemon=True
            )
            self._thread.start()
            return True

    def _run(self, job_id: str, work: Callable[[], object]) -> None:
        try:
            work()
        finally:
            with self._lock:
                self.current_job = None

    def join(self, timeout: float | None = None) -> None:
        """Wait for the current job (tests, shutdown)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


def settings_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with ``settings`` as ``HP_*`` variables,
    so a child process's `Settings()` equals ``settings`` (None fields: variable left out)."""
    env = dict(os.environ if base is None else base)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        env.pop(ENV_PREFIX + name.upper(), None)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        env[ENV_PREFIX + name.upper()] = str(value)
    return env


def job_command(job_id: str) -> list[str]:
    """The child process that runs queued job ``job_id``."""
    return [sys.executable, "-m", "retrain", "--job-id", job_id]


def _reload_for(
    proc: subprocess.Popen[str], job_id: str, on_promoted: Callable[[str | None], None]
) -> None:
    """Answer the child's promotion lines: reload, then tell it so (errors logged: the
    promotion stands, serving picks it up on its next reload)."""
    assert proc.stdout is not None and proc.stdin is not None
    for line in proc.stdout:
        if not line.startswith(PROMOTED_LINE):
            continue
        try:
            on_promoted(line.removeprefix(PROMOTED_LINE).strip() or None)
        except Exception:
            logger.exception("reload after promotion failed", extra={"job_id": job_id})
        with contextlib.suppress(OSError):  # the child is gone: nothing to tell
            proc.stdin.write(RELOADED_LINE + "\n")
            proc.stdin.flush()


def _run_child(settings: Settings, job_id: str, on_promoted: Callable[[str | None], None]) -> str:
    """Run the child to its end (killed past ``retrain_job_timeout_s``); how it ended."""
    timeout_s = settings.retrain_job_timeout_s
    timed_out = threading.Event()
    with subprocess.Popen(
        job_command(job_id),
        env=settings_env(settings),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _reload_for(proc, job_id, on_promoted)
            code = proc.wait()
        finally:
            timer.cancel()
    return f"killed after {timeout_s:g} s" if timed_out.is_set() else f"exited with code {code}"


def run_job_process(
    settings: Settings,
    make_session: sessionmaker[Session],
    job_id: str,
    on_promoted: Callable[[str | None], None],
) -> None:
    """Run queued job ``job_id`` as `python -m retrain --job-id`, ``on_promoted(challenger
    run id)`` when it promotes; a child that ends without recording an outcome fails the job."""
    try:
        ended = _run_child(settings, job_id, on_promoted)
    except OSError as exc:  # could not start it at all
        ended = f"did not start ({type(exc).__name__}: {exc})"
    with make_session() as session:
        job = retrain_jobs.get_retrain_job(session, job_id)
        if job is None or job.status in ("queued", "running"):
            logger.error("retrain process failed", extra={"job_id": job_id, "ended": ended})
            retrain_jobs.finish_retrain_job(
                session,
                job_id,
                succeeded=False,
                error=f"retrain process {ended} before recording an outcome",
            )


def runner_of(state: Any) -> InProcessRunner:
    """This process's runner, created on first use."""
    runner = getattr(state, "retrain_runner", None)
    if runner is None:
        runner = state.retrain_runner = InProcessRunner()
    return runner


def start_in_process(request: Request, models: Any, settings: Settings, job_id: str) -> bool:
    """Hand the job to this process's runner; a promotion reloads the served models."""
    loop = asyncio.get_running_loop()

    def reload(run_id: str | None) -> None:
        future = asyncio.run_coroutine_threadsafe(models.reload(), loop)
        future.result(timeout=RELOAD_TIMEOUT_S)
        logger.info("served models reloaded after promotion", extra={"run_id": run_id})

    work = functools.partial(
        run_job_process, settings, request.app.state.sessionmaker, job_id, reload
    )
    return runner_of(request.app.state).submit(job_id, work)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetrainAccepted,
    responses={409: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
)
async def create_retrain_job(
    request: Request,
    settings: SettingsDep,
    models: ModelsDep,
    events: AuditEventsDep,
    principal: PrincipalDep,
) -> RetrainAccepted:
    """Start retraining: original data + corrected feedback -> challenger, compared with the
    champion on the same held-out set, promoted only if better by `HP_RETRAIN_MARGIN` on
    `HP_RETRAIN_METRIC` (admin role).

    Runs on Celery when `HP_CELERY_BROKER_URL` is set, else in a child process of this API
    process (`executor` says which). One job at a time: 409 while one is queued or running.
    """
    make_session = request.app.state.sessionmaker
    executor = "celery" if settings.celery_broker_url else "in-process"
    if executor == "in-process" and runner_of(request.app.state).busy:
        raise ConflictError("A retraining job is already running in this process")
    job = await anyio.to_thread.run_sync(
        queue_job, make_session, executor, settings.retrain_job_timeout_s
    )
    detail = {"job_id": job.id, "executor": executor}
    await anyio.to_thread.run_sync(events.record, "retrain_requested", principal.key_id, detail)
    if executor == "celery":
        try:
            await anyio.to_thread.run_sync(send_to_celery, settings, job.id)
        except Exception as exc:
            logger.error("celery broker refused the job", extra={"error": type(exc).__name__})
            await anyio.to_thread.run_sync(fail_job, make_session, job.id, "broker unavailable")
            raise BrokerUnavailableError(
                headers={"Retry-After": str(BROKER_RETRY_AFTER_S)}
            ) from exc
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
def read_retrain_job(job_id: Text, session: SessionDep) -> RetrainJobRead:
    """A retraining job's status; once finished, its decision and the scores of both models."""
    job = retrain_jobs.get_retrain_job(session, job_id)
    if job is None:
        raise RetrainJobNotFoundError(
            details=[{"field": "job_id", "value": job_id, "reason": "unknown job id"}]
        )
    return RetrainJobRead.model_validate(job)
