"""Shadow challenger answers: one row per served prediction the challenger scored.

Revision ID: 0003_shadow_predictions
Revises: 0002_audit_chain
Create Date: 2026-12-06 05:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_shadow_predictions"
down_revision: str | Sequence[str] | None = "0002_audit_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shadow_predictions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("prediction_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("champion_run_id", sa.String(64), nullable=False),
        sa.Column("challenger_run_id", sa.String(64), nullable=False),
        sa.Column("challenger_version", sa.String(32), nullable=False),
        sa.Column("champion_diagnosis", sa.String(64), nullable=False),
        sa.Column("challenger_diagnosis", sa.String(64), nullable=True),
        sa.Column("challenger_probability", sa.Float(), nullable=True),
        sa.Column("challenger_treatment", sa.String(64), nullable=True),
        sa.Column("agree", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_shadow_predictions_runs",
        "shadow_predictions",
        ["challenger_run_id", "champion_run_id"],
    )
    op.create_index("ix_shadow_predictions_prediction_id", "shadow_predictions", ["prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_shadow_predictions_prediction_id", table_name="shadow_predictions")
    op.drop_index("ix_shadow_predictions_runs", table_name="shadow_predictions")
    op.drop_table("shadow_predictions")
