"""Queries of the retraining jobs: create, read, the one that blocks a new one, finish."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.tables import RetrainJobRow, utcnow

logger = logging.getLogger(__name__)


def create_retrain_job(
    session: Session, *, executor: str, trigger: str, job_id: str | None = None
) -> RetrainJobRow:
    """Record a queued job and commit."""
    job = RetrainJobRow(status="queued", executor=executor, trigger=trigger)
    if job_id:
        job.id = job_id
    session.add(job)
    session.commit()
    return job


def get_retrain_job(session: Session, job_id: str) -> RetrainJobRow | None:
    return session.get(RetrainJobRow, job_id)


def active_retrain_job(session: Session) -> RetrainJobRow | None:
    """The oldest queued or running job, if any."""
    stmt = (
        select(RetrainJobRow)
        .where(RetrainJobRow.status.in_(("queued", "running")))
        .order_by(RetrainJobRow.created_at)
        .limit(1)
    )
    return session.scalars(stmt).first()


def mark_retrain_job_running(session: Session, job_id: str) -> RetrainJobRow | None:
    job = session.get(RetrainJobRow, job_id)
    if job is not None:
        job.status, job.started_at = "running", utcnow()
        session.commit()
    return job


def finish_retrain_job(
    session: Session,
    job_id: str,
    *,
    succeeded: bool,
    decision: str | None = None,
    scores: dict[str, Any] | None = None,
    challenger_run_id: str | None = None,
    error: str | None = None,
) -> RetrainJobRow | None:
    """Record a job's outcome and commit."""
    job = session.get(RetrainJobRow, job_id)
    if job is None:
        logger.warning("retrain job vanished before it finished", extra={"job_id": job_id})
        return None
    job.status = "succeeded" if succeeded else "failed"
    job.finished_at = utcnow()
    job.decision, job.scores = decision, scores
    job.challenger_run_id, job.error = challenger_run_id, error
    if job.started_at is None:
        job.started_at = job.finished_at
    session.commit()
    return job


def blocking_job(session: Session, timeout_s: float) -> RetrainJobRow | None:
    """The queued/running job that blocks a new one; jobs older than ``timeout_s`` are marked
    failed (their worker died) and do not block. Every executor asks this before queuing."""
    while (job := active_retrain_job(session)) is not None:
        if utcnow() - job.created_at <= timedelta(seconds=timeout_s):
            return job
        finish_retrain_job(
            session,
            job.id,
            succeeded=False,
            error=f"abandoned: still {job.status} after {timeout_s:g} s (worker gone?)",
        )
    return None
