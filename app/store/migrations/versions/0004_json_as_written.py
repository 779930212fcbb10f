"""JSON columns keep the text they were written with on PostgreSQL (``json``, not ``jsonb``).

JSONB stores numbers as ``numeric``: -0.0 came back as 0 and 1e20 as its integer digits, so a
row's MAC'd JSON no longer matched its stored JSON and `audit verify` called the row altered
(or could not re-serialise it). ``json`` keeps the text as written. SQLite stores text already:
nothing changes there. Rows written before this revision keep the text JSONB gave them.

Revision ID: 0004_json_as_written
Revises: 0003_shadow_predictions
Create Date: 2026-12-06 14:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_json_as_written"
down_revision: str | Sequence[str] | None = "0003_shadow_predictions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("predictions", "inputs", False),
    ("predictions", "outputs", False),
    ("retrain_jobs", "scores", True),
    ("audit_events", "detail", False),
)


def _retype(to: sa.types.TypeEngine[object], cast: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=to,
            existing_nullable=nullable,
            postgresql_using=f"{column}::text::{cast}",
        )


def upgrade() -> None:
    _retype(postgresql.JSON(), "json")


def downgrade() -> None:
    _retype(postgresql.JSONB(), "jsonb")
