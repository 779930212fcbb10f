"""ORM tables of the store: prediction audit rows, clinician feedback, retraining jobs, the
shadow challenger's answers.

JSON columns are ``JSON`` on every backend: text kept as written (on PostgreSQL ``json``, not
``jsonb``, whose numbers read back rewritten: -0.0 as 0, 1e20 as integer digits, which broke the
audit chain's MACs); timestamps are stored as UTC and always read back timezone-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from app.store.ids import new_id

VERDICTS = ("correct", "wrong_diagnosis", "wrong_treatment", "both_wrong")
JOB_STATUSES = ("queued", "running", "succeeded", "failed")
REASON_MAX_CHARS = 1000
CLINICIAN_ID_MAX_CHARS = 128
CODE_MAX_CHARS = 64

JSONType = JSON()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


MAC_CHARS = 64


class Chained:
    """The columns linking a row into its writer's HMAC chain (`app.store.chain`); NULL only
    on rows stored before the chain existed (migration 0002)."""

    chain_id: Mapped[str | None] = mapped_column(String(36))
    seq: Mapped[int | None] = mapped_column(BigInteger)
    mac: Mapped[str | None] = mapped_column(String(MAC_CHARS))


class Base(DeclarativeBase):
    """Declarative base of every store table."""

    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime}


class PredictionRow(Chained, Base):
    """One served prediction: the audit trail feedback joins to."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model_source: Mapped[str | None] = mapped_column(String(16))
    diagnosis_version: Mapped[str | None] = mapped_column(String(32))
    treatment_version: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(64))
    inputs: Mapped[dict[str, Any]] = mapped_column()
    outputs: Mapped[dict[str, Any]] = mapped_column()
    diagnosis_code: Mapped[str | None] = mapped_column(String(CODE_MAX_CHARS))
    treatment_code: Mapped[str | None] = mapped_column(String(CODE_MAX_CHARS))
    quality: Mapped[str | None] = mapped_column(String(16))


class FeedbackRow(Chained, Base):
    """A clinician's verdict on one prediction (at most one per clinician and prediction)."""

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint("prediction_id", "clinician_id", name="uq_feedback_prediction_clinician"),
        Index("ix_feedback_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    prediction_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("predictions.id", ondelete="CASCADE"), index=True
    )
    verdict: Mapped[str] = mapped_column(
        Enum(
            *VERDICTS, name="feedback_verdict", native_enum=False, create_constraint=True, length=32
        )
    )
    corrected_diagnosis: Mapped[str | None] = mapped_column(String(CODE_MAX_CHARS))
    corrected_treatment: Mapped[str | None] = mapped_column(String(CODE_MAX_CHARS))
    reason: Mapped[str | None] = mapped_column(String(REASON_MAX_CHARS))
    clinician_id: Mapped[str] = mapped_column(String(CLINICIAN_ID_MAX_CHARS))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RetrainJobRow(Base):
    """One retraining job, whichever executor ran it (in-process, Celery, CLI)."""

    __tablename__ = "retrain_jobs"
    __table_args__ = (Index("ix_retrain_jobs_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    status: Mapped[str] = mapped_column(
        Enum(
            *JOB_STATUSES,
            name="retrain_job_status",
            native_enum=False,
            create_constraint=True,
            length=16,
        ),
        default="queued",
    )
    executor: Mapped[str] = mapped_column(String(16), default="in-process")
    trigger: Mapped[str] = mapped_column(String(16), default="api")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    decision: Mapped[str | None] = mapped_column(String(32))
    scores: Mapped[dict[str, Any] | None] = mapped_column()
    challenger_run_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)


AUDIT_EVENT_KINDS = ("model_reload", "retrain_requested", "key_use")


class AuditEventRow(Chained, Base):
    """An audited event that has no row of its own elsewhere: a model reload, a retrain
    request, the use of an API key (by key id). Append-only, like every audit row."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    key_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column()


class ShadowPredictionRow(Base):
    """The shadow challenger's answer to one served prediction (scored after the response).

    No foreign key to ``predictions``: the audit row is written behind, possibly after this
    one. The champion's diagnosis is kept here so agreement never depends on the audit.
    """

    __tablename__ = "shadow_predictions"
    __table_args__ = (
        Index("ix_shadow_predictions_runs", "challenger_run_id", "champion_run_id"),
        Index("ix_shadow_predictions_prediction_id", "prediction_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    prediction_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    champion_run_id: Mapped[str] = mapped_column(String(64))
    challenger_run_id: Mapped[str] = mapped_column(String(64))
    challenger_version: Mapped[str] = mapped_column(String(32))
    champion_diagnosis: Mapped[str] = mapped_column(String(CODE_MAX_CHARS))
    challenger_diagnosis: Mapped[str | None] = mapped_column(String(CODE_MAX_CHARS))
    challenger_probability: Mapped[float | None] = mapped_column(Float)
    challenger_treatment: Mapped[str | None] = mapped_column(String(CODE_MAX_CHARS))
    agree: Mapped[bool] = mapped_column(Boolean)
