"""The audit writer process (a real child) over real SQLite (and PostgreSQL,
``HP_TEST_DATABASE_URL``) stores: what it stores, how it fails, how it is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from app.audit.process import AuditProcess, AuditProcessError
from app.audit.writer import AuditWriter
from app.store import db
from app.store.tables import PredictionRow
from tests.api.conftest import count_rows
from tests.api.test_audit_rows import NEVER_S, batch, plain_rows, sqlite_store
from tests.pg_schema import empty_pg_schema


class _ExitOnLoad:
    """Unpickled in the child, ends it: a child that dies in the middle of a write."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os._exit, (3,))


def test_the_child_stores_what_the_thread_stores(tmp_path: Path) -> None:
    """The same items through the child process and through `save_predictions` in-process:
    byte-identical rows (JSON text, times, codes)."""
    encoded, _ = batch(40)
    single = plain_rows(3)
    child_url, thread_url = sqlite_store(tmp_path / "a"), sqlite_store(tmp_path / "b")
    proc = AuditProcess(db.make_engine(child_url))
    try:
        proc.save([single, encoded])
    finally:
        proc.close()
    assert proc.pid is None
    engine = db.make_engine(thread_url)
    writer = AuditWriter(db.make_sessionmaker(engine))
    writer._save([single, encoded])
    engine.dispose()

    def dump(url: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute("SELECT * FROM predictions ORDER BY id").fetchall()

    assert dump(child_url) == dump(thread_url) and len(dump(child_url)) == 43


def test_a_row_stored_twice_is_stored_once(tmp_path: Path) -> None:
    """A write retried after the child committed it and died before answering."""
    url = sqlite_store(tmp_path)
    encoded, _ = batch(10)
    proc = AuditProcess(db.make_engine(url))
    try:
        proc.save([encoded])
        proc.save([encoded, batch(5)[0]])
    finally:
        proc.close()
    assert count_rows(url) == 15


def test_a_refused_write_names_the_error_and_never_the_rows(tmp_path: Path) -> None:
    url = sqlite_store(tmp_path, migrate=False)  # no tables
    proc = AuditProcess(db.make_engine(url))
    try:
        with pytest.raises(AuditProcessError) as caught:
            proc.save([batch(2)[0]])
        assert str(caught.value) == "OperationalError"
        db.upgrade(url)
        proc.save([batch(2)[0]])  # the same child, the store back
    finally:
        proc.close()
    assert count_rows(url) == 2


def test_a_child_dying_in_a_write_fails_it_and_is_replaced(tmp_path: Path) -> None:
    url = sqlite_store(tmp_path)
    proc = AuditProcess(db.make_engine(url))
    try:
        proc.start()
        first = proc.pid
        with pytest.raises(AuditProcessError, match="died"):
            proc.save([_ExitOnLoad()])  # type: ignore[list-item]
        assert proc.pid is None  # reaped
        proc.save([batch(3)[0]])
        assert proc.pid not in (None, first)
        os.kill(proc.pid, signal.SIGKILL)  # type: ignore[arg-type]  # killed between writes: the next one starts anew
        encoded = batch(4)[0]
        try:
            proc.save([encoded])
        except AuditProcessError:  # it was still being reaped: retried, as the writer does
            proc.save([encoded])
    finally:
        proc.close()
    assert count_rows(url) == 7


async def test_the_writer_drains_through_the_child_and_stops_it(tmp_path: Path) -> None:
    url = sqlite_store(tmp_path)
    engine = db.make_engine(url)
    proc = AuditProcess(engine)
    writer = AuditWriter(
        db.make_sessionmaker(engine), max_queue=100, batch_size=40, linger_s=NEVER_S, process=proc
    )
    writer.start()
    assert proc.pid is not None
    await writer.enqueue(plain_rows(1)[0])
    await writer.enqueue_encoded(batch(60)[0])
    await writer.flush()
    assert count_rows(url) == 61
    os.kill(proc.pid, signal.SIGKILL)  # the next write fails once, then a new child stores it
    for _ in range(3):
        await writer.enqueue_encoded(batch(30)[0])
    await asyncio.wait_for(writer.stop(), timeout=60)
    assert (writer.enqueued, writer.written, writer.lost) == (151, 151, 0)
    assert count_rows(url) == 151 and proc.pid is None
    engine.dispose()


@pytest.mark.integration
def test_postgresql_from_the_child_and_from_a_thread() -> None:
    with empty_pg_schema() as url:
        db.upgrade(url)
        engine = db.make_engine(url)
        AuditWriter(db.make_sessionmaker(engine))._save([batch(25)[0], plain_rows(2)])
        proc = AuditProcess(engine)
        try:
            proc.save([batch(25)[0], plain_rows(2)])
        finally:
            proc.close()
        with engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(PredictionRow)).scalar_one()
        engine.dispose()
        assert n == 54
