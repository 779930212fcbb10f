"""Migrations on the real PostgreSQL (``HP_TEST_DATABASE_URL``), in a schema made for this run.

An unreachable server FAILS these tests with the URL tried; they never skip. The repository
cases also run on PostgreSQL (tests/unit/test_store_repository.py, ``postgresql`` params).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from app.store import db, repository
from app.store.tables import Base
from tests.pg_schema import empty_pg_schema

pytestmark = pytest.mark.integration

TABLES = {"predictions", "feedback", "retrain_jobs"}


@pytest.fixture
def empty_schema_url() -> Iterator[str]:
    with empty_pg_schema() as url:
        yield url


def test_upgrade_empty_database_then_downgrade(empty_schema_url: str) -> None:
    db.upgrade(empty_schema_url)
    engine = db.make_engine(empty_schema_url)
    try:
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
            kinds = {
                c["name"]: type(c["type"]).__name__
                for c in inspect(conn).get_columns("predictions")
            }
            assert kinds["inputs"] == "JSON"  # the text as written (not JSONB: 0004)
        with db.make_sessionmaker(engine)() as session:
            repository.save_predictions(session, [{"inputs": {"age": 50}, "outputs": {}}])
            assert repository.recent_inputs(session, 5) == [{"age": 50}]
        db.downgrade(empty_schema_url, "base")
        with engine.connect() as conn:
            assert not TABLES & set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
