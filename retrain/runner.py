"""Job bookkeeping around `run_retrain`, and the API's own one-at-a-time background runner.

`execute_job` is what every executor runs (in-process thread, Celery task, CLI): it reads the
corrected feedback rows from the store, records the job's progress and outcome there, and calls
``on_promoted`` after a promotion so the serving side can reload.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings
from app.store import repository
from app.store.tables import RetrainJobRow, utcnow
from retrain.challenger import ProgressFn
from retrain.job import RetrainConfig, RetrainResult, run_retrain

logger = logging.getLogger(__name__)

PromotedFn = Callable[[RetrainResult], None]
NOTIFY_TIMEOUT_S = 120.0


def execute_job(
    make_session: sessionmaker[Session],
    job_id: str,
    config: RetrainConfig,
    on_promoted: PromotedFn | None = None,
    progress: ProgressFn | None = None,
) -> RetrainResult | None:
    """Run job ``job_id`` to completion, recording running -> succeeded/failed in the store.

    Never raises for a failed retrain: the error is stored on the job (and logged) instead.

    Returns:
        The result, or None when the retrain failed.
    """
    with make_session() as session:
        repository.mark_retrain_job_running(session, job_id)
        feedback = repository.corrected_rows(session)
    logger.info("retrain job started", extra={"job_id": job_id, "feedback_rows": len(feedback)})
    try:
        result = run_retrain(
            config, feedback, progress=progress, extra_tags={"retrain.job_id": job_id}
        )
    except Exception as exc:  # recorded on the job; the executor must survive it
        logger.exception("retrain job failed", extra={"job_id": job_id})
        with make_session() as session:
            repository.finish_retrain_job(
                session, job_id, succeeded=False, error=f"{type(exc).__name__}: {exc}"[:2000]
            )
        return None
    with make_session() as session:
        repository.finish_retrain_job(
            session,
            job_id,
            succeeded=True,
            decision=result.decision,
            scores=result.scores(),
            challenger_run_id=result.challenger_run_id,
        )
    logger.info("retrain job finished", extra={"job_id": job_id, "decision": result.decision})
    if result.promoted and on_promoted is not None:
        try:
            on_promoted(result)
        except Exception:  # the promotion stands; serving will pick it up on its next reload
            logger.exception("reload after promotion failed", extra={"job_id": job_id})
    return result


def blocking_job(
    session: Session, timeout_s: float, executor: str | None = None
) -> RetrainJobRow | None:
    """The queued/running job that blocks a new one; jobs older than ``timeout_s`` are marked
    failed (their worker died) and do not block."""
    while (job := repository.active_retrain_job(session)) is not None:
        if utcnow() - job.created_at <= timedelta(seconds=timeout_s):
            return job
        repository.finish_retrain_job(
            session,
            job.id,
            succeeded=False,
            error=f"abandoned: still {job.status} after {timeout_s:g} s (worker gone?)",
        )
    return None


def admin_key(settings: Settings) -> str | None:
    """The first admin key given in clear in ``HP_API_KEYS`` (None if only digests)."""
    for item in settings.api_keys.get_secret_value().split(","):
        key, _, role = item.strip().rpartition(":")
        if role == "admin" and key and not key.startswith("sha256="):
            return key
    return None


def notify_api(settings: Settings) -> PromotedFn:
    """After a promotion outside the API (Celery, CLI): POST ``HP_RETRAIN_NOTIFY_URL`` (the
    API's `/models/reload`) when set, so the API swaps now rather than on its next reload."""

    def _notify(result: RetrainResult) -> None:
        url = settings.retrain_notify_url
        if not url:
            logger.info(
                "promoted; HP_RETRAIN_NOTIFY_URL unset: the API serves the new "
                "champion after its next reload (POST /models/reload or restart)"
            )
            return
        key = admin_key(settings)
        response = httpx.post(
            url, headers={"X-API-Key": key} if key else {}, timeout=NOTIFY_TIMEOUT_S
        )
        logger.info(
            "API asked to reload",
            extra={"status": response.status_code, "run_id": result.challenger_run_id},
        )

    return _notify


class InProcessRunner:
    """Runs one job at a time in a daemon thread of this process (no broker configured).

    A daemon thread never holds up shutdown; a job cut short that way stays ``running`` in the
    store until `blocking_job` deems it abandoned.
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
