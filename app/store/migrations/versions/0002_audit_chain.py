"""Tamper-evident audit: chain columns (chain_id, seq, mac) on predictions and feedback, and
the audit_events table (model reloads, retrain requests, key use).

Revision ID: 0002_audit_chain
Revises: 0001_initial_store
Create Date: 2026-12-06 05:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_audit_chain"
down_revision: str | Sequence[str] | None = "0001_initial_store"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
CHAINED = ("predictions", "feedback")


def _chain_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("chain_id", sa.String(36), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("mac", sa.String(64), nullable=True),
    ]


def upgrade() -> None:
    for table in CHAINED:
        for column in _chain_columns():
            op.add_column(table, column)
    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=True),
        sa.Column("detail", JSON_TYPE, nullable=False),
        *_chain_columns(),
    )
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_created_at", table_name="audit_events")
    op.drop_table("audit_events")
    for table in CHAINED:
        with op.batch_alter_table(table) as batch:
            for name in ("mac", "seq", "chain_id"):
                batch.drop_column(name)
