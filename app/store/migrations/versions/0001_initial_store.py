"""Initial store: predictions (audit), feedback, retrain_jobs.

Revision ID: 0001_initial_store
Revises:
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_initial_store"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
VERDICTS = ("correct", "wrong_diagnosis", "wrong_treatment", "both_wrong")
JOB_STATUSES = ("queued", "running", "succeeded", "failed")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("model_source", sa.String(16), nullable=True),
        sa.Column("diagnosis_version", sa.String(32), nullable=True),
        sa.Column("treatment_version", sa.String(32), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("inputs", JSON_TYPE, nullable=False),
        sa.Column("outputs", JSON_TYPE, nullable=False),
        sa.Column("diagnosis_code", sa.String(64), nullable=True),
        sa.Column("treatment_code", sa.String(64), nullable=True),
        sa.Column("quality", sa.String(16), nullable=True),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])

    op.create_table(
        "feedback",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "prediction_id",
            sa.String(36),
            sa.ForeignKey("predictions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "verdict",
            sa.Enum(
                *VERDICTS,
                name="feedback_verdict",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("corrected_diagnosis", sa.String(64), nullable=True),
        sa.Column("corrected_treatment", sa.String(64), nullable=True),
        sa.Column("reason", sa.String(1000), nullable=True),
        sa.Column("clinician_id", sa.String(128), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.UniqueConstraint(
            "prediction_id", "clinician_id", name="uq_feedback_prediction_clinician"
        ),
    )
    op.create_index("ix_feedback_prediction_id", "feedback", ["prediction_id"])
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])

    op.create_table(
        "retrain_jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "status",
            sa.Enum(
                *JOB_STATUSES,
                name="retrain_job_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("executor", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("started_at", _utc(), nullable=True),
        sa.Column("finished_at", _utc(), nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("scores", JSON_TYPE, nullable=True),
        sa.Column("challenger_run_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_retrain_jobs_created_at", "retrain_jobs", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_retrain_jobs_created_at", table_name="retrain_jobs")
    op.drop_table("retrain_jobs")
    op.drop_index("ix_feedback_created_at", table_name="feedback")
    op.drop_index("ix_feedback_prediction_id", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_predictions_created_at", table_name="predictions")
    op.drop_table("predictions")
