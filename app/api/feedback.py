"""`/feedback`: clinicians' verdicts on predictions, their statistics and a CSV export."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from app.api.json_route import JsonRoute
from app.deps import AuditDep, AuditEventsDep, ModelsDep, SessionDep, SettingsDep, require_role
from app.errors import InvalidInputError, PredictionNotFoundError
from app.monitoring import metrics
from app.schemas.errors import ErrorResponse
from app.schemas.feedback import (
    CORRECTION_FIELDS,
    VERDICT_RULES,
    ClassErrorRead,
    FeedbackRead,
    FeedbackRequest,
    FeedbackStatsResponse,
)
from app.store import repository
from app.store.chain import Chain
from app.store.tables import FeedbackRow
from train_pipeline.contract import ED_COHORT

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/feedback",
    tags=["feedback"],
    responses={422: {"model": ErrorResponse}},
    route_class=JsonRoute,
)

# What each verdict needs: (corrected_diagnosis, corrected_treatment) as required/optional/None.


def served_classes(models: Any) -> tuple[list[str], list[str]]:
    """Codes a correction may use: the served model's classes, plus the task's own codes.

    A code the task defines but the served model never learned (a class missing from its
    training data) is accepted: that is how feedback teaches it. Without a loaded model,
    the task contract's codes.
    """
    task_diag = list(ED_COHORT.diagnosis.codes)
    task_treat = list(ED_COHORT.treatment.codes) if ED_COHORT.treatment else []
    bundle = getattr(models, "bundle", None)
    if bundle is None:
        return task_diag, task_treat
    meta = bundle.meta
    if meta.task != ED_COHORT.name:
        task_diag, task_treat = [], []
    diag = list(dict.fromkeys([*meta.diagnosis_classes, *task_diag]))
    treat = list(dict.fromkeys([*meta.treatment_classes, *task_treat]))
    return diag, treat


def correction_errors(
    body: FeedbackRequest, diagnoses: Sequence[str], treatments: Sequence[str]
) -> list[dict[str, Any]]:
    """Cross-field checks of a feedback body: ``[{"field", "value", "reason"}]`` (empty if ok)."""
    details: list[dict[str, Any]] = []
    checks = zip(
        CORRECTION_FIELDS,
        (body.corrected_diagnosis, body.corrected_treatment),
        VERDICT_RULES[body.verdict],
        (diagnoses, treatments),
        strict=True,
    )
    for field, value, rule, classes in checks:
        if value is None and rule == "required":
            reason = f"is required when verdict is '{body.verdict}'"
        elif value is not None and rule == "forbidden":
            reason = f"must be absent when verdict is '{body.verdict}'"
        elif value is not None and value not in classes:
            reason = "unknown class; one of: " + ", ".join(classes)
        else:
            continue
        details.append({"field": field, "value": value, "reason": reason})
    return details


def to_read(row: FeedbackRow, duplicate: bool = False) -> FeedbackRead:
    return FeedbackRead.model_validate(
        {c: getattr(row, c) for c in FeedbackRead.model_fields if c != "duplicate"}
        | {"duplicate": duplicate}
    )


def store_feedback(
    session: Session, body: FeedbackRequest, chain: Chain | None = None
) -> tuple[FeedbackRow, bool] | None:
    """Write the feedback (blocking; run in a thread), sealed into this process's audit
    ``chain``; None when the prediction is unknown."""
    prediction = repository.get_prediction(session, body.prediction_id)
    if prediction is None:
        session.rollback()  # end the read transaction (SQLite: release the lock) before waiting
        return None
    if body.verdict == "correct" and prediction.diagnosis_code is None:
        raise InvalidInputError(
            "Nothing was predicted to confirm",
            details=[
                {
                    "field": "verdict",
                    "value": body.verdict,
                    "reason": "this prediction abstained (insufficient quality); "
                    "send the corrections with verdict 'both_wrong'",
                }
            ],
        )
    return repository.add_feedback(session, **body.model_dump(), chain=chain)


def audit_pending(audit: Any) -> bool:
    """Whether the write-behind audit queue still holds rows not yet in the database."""
    return bool(audit.enqueued > audit.written + audit.lost)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackRead,
    responses={
        200: {"model": FeedbackRead, "description": "Repeat: the stored record"},
        404: {"model": ErrorResponse},
    },
)
async def create_feedback(
    body: FeedbackRequest,
    session: SessionDep,
    models: ModelsDep,
    audit: AuditDep,
    events: AuditEventsDep,
    response: Response,
) -> FeedbackRead:
    """Record a clinician's verdict on a prediction (201).

    Idempotent per (prediction, clinician): a repeat writes nothing and returns the first
    record with status 200 and `duplicate: true`. 404 for an unknown `prediction_id`; 422 when
    the corrections do not fit the verdict or are not classes of the served model.
    """
    details = correction_errors(body, *served_classes(models))
    if details:
        raise InvalidInputError("Feedback corrections do not fit the verdict", details=details)
    stored = await anyio.to_thread.run_sync(store_feedback, session, body, events.chain)
    if stored is None and audit_pending(audit):
        # The prediction may still sit in the write-behind audit queue: flush, look again.
        await audit.flush()
        stored = await anyio.to_thread.run_sync(store_feedback, session, body, events.chain)
    if stored is None:
        raise PredictionNotFoundError(
            "No prediction with this id",
            details=[
                {
                    "field": "prediction_id",
                    "value": body.prediction_id,
                    "reason": "unknown prediction id",
                }
            ],
        )
    row, created = stored
    if created:
        metrics.count_feedback(body.verdict)
    else:
        response.status_code = status.HTTP_200_OK
    return to_read(row, duplicate=not created)


def last_training_time(models: Any) -> datetime | None:
    bundle = getattr(models, "bundle", None)
    if bundle is None or not bundle.meta.trained_at:
        return None
    try:
        when = datetime.fromisoformat(bundle.meta.trained_at)
    except ValueError:
        logger.warning("served model has an unreadable trained_at")
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@router.get("/stats", response_model=FeedbackStatsResponse)
def read_feedback_stats(
    session: SessionDep, models: ModelsDep, settings: SettingsDep
) -> FeedbackStatsResponse:
    """Feedback counts by verdict, error rates (overall and per predicted class), and whether
    retraining is recommended: at least `HP_RETRAIN_MIN_FEEDBACK` feedback since the served
    model was trained, with an error rate of at least `HP_RETRAIN_ERROR_RATE`."""
    since = last_training_time(models)
    stats = repository.feedback_stats(
        session,
        since=since,
        min_feedback=settings.retrain_min_feedback,
        error_rate_threshold=settings.retrain_error_rate,
    )
    return FeedbackStatsResponse(
        total=stats.total,
        by_verdict=stats.by_verdict,
        error_rate=stats.error_rate,
        diagnosis_error_rate=stats.diagnosis_error_rate,
        treatment_error_rate=stats.treatment_error_rate,
        per_diagnosis={
            k: ClassErrorRead(n=v.n, errors=v.errors, error_rate=v.error_rate)
            for k, v in stats.per_diagnosis.items()
        },
        per_treatment={
            k: ClassErrorRead(n=v.n, errors=v.errors, error_rate=v.error_rate)
            for k, v in stats.per_treatment.items()
        },
        last_training_at=since,
        since_last_training=stats.since_last_training,
        error_rate_since_last_training=stats.error_rate_since_last_training,
        retraining_recommended=stats.retraining_recommended,
        recommendation_reason=stats.recommendation_reason,
        min_feedback=settings.retrain_min_feedback,
        error_rate_threshold=settings.retrain_error_rate,
    )


def export_columns() -> list[str]:
    targets = [ED_COHORT.diagnosis.name] + (
        [ED_COHORT.treatment.name] if ED_COHORT.treatment else []
    )
    return [*ED_COHORT.feature_names, *targets, *repository.META_COLUMNS]


def csv_lines(rows: list[dict[str, Any]], columns: list[str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get(
    "/export",
    response_class=StreamingResponse,
    dependencies=[Depends(require_role("admin"))],
    responses={200: {"content": {"text/csv": {}}, "description": "CSV of corrected rows"}},
)
def export_feedback(session: SessionDep, include_confirmed: bool = False) -> StreamingResponse:
    """Corrected rows as CSV for data scientists (admin role): the audited features in the
    training data's encoding (symptoms `;`-joined, booleans 0/1), the corrected labels, then
    prediction id, feedback id, verdict and time. One row per prediction (latest feedback).
    `include_confirmed=true` adds predictions confirmed `correct`."""
    rows = repository.corrected_rows(session, include_confirmed=include_confirmed)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        csv_lines(rows, export_columns()),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="feedback-{stamp}.csv"'},
    )
