"""Bodies of `POST /retrain` (202) and `GET /retrain/{job_id}`."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Executor = Literal["in-process", "celery", "cli"]
JobStatus = Literal["queued", "running", "succeeded", "failed"]


class RetrainAccepted(BaseModel):
    """A retraining job was queued; poll `status_url`."""

    job_id: str
    status: JobStatus
    executor: Executor = Field(
        description="`celery` when `HP_CELERY_BROKER_URL` is set (a Celery worker runs it), "
        "else `in-process` (a background thread of this API process, one job at a time)."
    )
    status_url: str


class RetrainJobRead(BaseModel):
    """A retraining job: status, and once finished the decision and both scores."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: JobStatus
    executor: str
    trigger: str = Field(description="`api`, `beat` (Celery Beat schedule) or `cli`.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    decision: str | None = Field(
        description="`promoted` (the challenger became `champion`), `kept` (the champion "
        "stays; the challenger is registered without the alias) or `skipped`."
    )
    scores: dict[str, Any] | None = Field(
        description="Held-out scores of champion and challenger, the metric and the margin."
    )
    challenger_run_id: str | None = Field(description="MLflow run of the challenger.")
    error: str | None
