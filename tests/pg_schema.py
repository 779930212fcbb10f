"""A throwaway PostgreSQL schema on ``HP_TEST_DATABASE_URL`` for store tests (dropped after).

An unreachable server FAILS the test with the URL tried: these tests never skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from app.store import db

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _create(admin: Any, base: str, statement: str) -> None:
    """Run ``statement`` (CREATE …); an unreachable server fails the test, naming the URL."""
    try:
        with admin.begin() as conn:
            conn.execute(text(statement))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at {base} is not reachable (set HP_TEST_DATABASE_URL): {exc}")


@contextmanager
def empty_pg_schema() -> Iterator[str]:
    """Yield a URL whose search_path is a new, empty, uniquely named schema."""
    base = os.environ.get("HP_TEST_DATABASE_URL", DEFAULT_PG_URL)
    admin = db.make_engine(base)
    schema = f"hp_test_{uuid.uuid4().hex[:12]}"
    _create(admin, base, f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def fresh_pg_database(prefix: str = "hp_test") -> Iterator[str]:
    """Yield the URL of a new, empty, uniquely named database (dropped afterwards), for a
    program that wants a database of its own (an `mlflow server`'s backend store)."""
    base = os.environ.get("HP_TEST_DATABASE_URL", DEFAULT_PG_URL)
    admin = db.make_engine(base).execution_options(isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    _create(admin, base, f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
