"""A migrated store per backend for the repository tests: SQLite, and PostgreSQL
(``HP_TEST_DATABASE_URL``); a session rolled back per test; a valid audit record.

Each test runs inside an outer transaction rolled back afterwards (repository commits only
release a SAVEPOINT).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.store import db
from tests.pg_schema import empty_pg_schema

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A migrated empty store: a SQLite file, or a uniquely named PostgreSQL schema (dropped)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
        db.upgrade(url)
        yield url
        return
    with empty_pg_schema() as url:
        db.upgrade(url)
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def store_engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    with fresh_database(request.param, tmp_path_factory.mktemp("store")) as url:
        engine = db.make_engine(url)
        yield engine
        engine.dispose()


@pytest.fixture
def session(store_engine: Engine) -> Iterator[Session]:
    """A session whose every commit is rolled back at the end of the test."""
    with store_engine.connect() as conn:
        outer = conn.begin()
        sess = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
        yield sess
        sess.close()
        outer.rollback()


def audit_record(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "model_source": "mlflow",
        "diagnosis_version": "1",
        "treatment_version": "1",
        "run_id": "r1",
        "inputs": {
            "age": 70,
            "sex": "F",
            "heart_rate": 118.0,
            "temperature": 39.1,
            "symptoms": ["fever", "cough"],
            "copd": True,
            "smoker": None,
        },
        "outputs": {"diagnosis": {"code": "pneumonia"}},
        "diagnosis_code": "pneumonia",
        "treatment_code": "iv_antibiotics_admit",
        "quality": "medium",
    }
    record.update(overrides)
    return record
