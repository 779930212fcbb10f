"""Job bookkeeping around `run_retrain`.

`execute_job` is what every executor runs (the Celery task, and `python -m retrain`, which the
API also starts as a child process for its in-process jobs): it reads the corrected feedback
rows from the store, records the job's progress and outcome there, and calls ``on_promoted``
after a promotion so the serving side can reload.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings
from app.store import repository, retrain_jobs
from retrain.challenger import ProgressFn
from retrain.config import RetrainConfig
from retrain.job import RetrainResult, run_retrain

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
    After a promotion, ``on_promoted`` runs before the job is recorded as succeeded, so whoever
    polls the job finds the serving side already asked (the API's own jobs: already reloaded).

    Returns:
        The result, or None when the retrain failed.
    """
    with make_session() as session:
        retrain_jobs.mark_retrain_job_running(session, job_id)
        feedback = repository.corrected_rows(session)
    logger.info("retrain job started", extra={"job_id": job_id, "feedback_rows": len(feedback)})
    try:
        result = run_retrain(
            config, feedback, progress=progress, extra_tags={"retrain.job_id": job_id}
        )
    except Exception as exc:  # recorded on the job; the executor must survive it
        logger.exception("retrain job failed", extra={"job_id": job_id})
        with make_session() as session:
            retrain_jobs.finish_retrain_job(
                session, job_id, succeeded=False, error=f"{type(exc).__name__}: {exc}"[:2000]
            )
        return None
    if result.promoted and on_promoted is not None:
        try:
            on_promoted(result)
        except Exception:  # the promotion stands; serving will pick it up on its next reload
            logger.exception("reload after promotion failed", extra={"job_id": job_id})
    with make_session() as session:
        retrain_jobs.finish_retrain_job(
            session,
            job_id,
            succeeded=True,
            decision=result.decision,
            scores=result.scores(),
            challenger_run_id=result.challenger_run_id,
        )
    logger.info("retrain job finished", extra={"job_id": job_id, "decision": result.decision})
    return result


def admin_key(settings: Settings) -> str | None:
    """The first admin key given in clear in ``HP_API_KEYS`` (None if only digests or managed
    entries)."""
    for item in settings.api_keys.get_secret_value().split(","):
        key, _, role = item.strip().rpartition(":")
        if role == "admin" and key and not key.startswith(("sha256=", "id=")):
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
