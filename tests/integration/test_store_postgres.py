"""Migrations on the real PostgreSQL (``HP_TEST_DATABASE_URL``), in a schema made for this run.

An unreachable server FAILS these tests with the URL tried; they never skip. The repository
cases also run on PostgreSQL (tests/unit/test_store_repository.py, ``postgresql`` params).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import OperationalError

from app.store import db, repository
from app.store.tables import Base

pytestmark = pytest.mark.integration

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TABLES = {"predictions", "feedback", "retrain_jobs"}


@pytest.fixture
def empty_schema_url() -> Iterator[str]:
    base = os.environ.get("HP_TEST_DATABASE_URL", DEFAULT_PG_URL)
    admin = db.make_engine(base)
    schema = f"hp_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {base} is not reachable (set HP_TEST_DATABASE_URL): {exc}")
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


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
            assert kinds["inputs"] == "JSONB"
        with db.make_sessionmaker(engine)() as session:
            repository.save_predictions(session, [{"inputs": {"age": 50}, "outputs": {}}])
            assert repository.recent_inputs(session, 5) == [{"age": 50}]
        db.downgrade(empty_schema_url, "base")
        with engine.connect() as conn:
            assert not TABLES & set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
