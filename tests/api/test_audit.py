"""AuditWriter over a real store (SQLite; PostgreSQL too where the store matters): batching,
coalescing, backpressure, retry, drain on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from app.audit.writer import AuditWriter
from app.store import db
from tests.api.conftest import count_rows
from tests.pg_schema import empty_pg_schema


def _row(i: int) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{i:012d}",
        "model_source": "mlflow",
        "diagnosis_version": "1",
        "treatment_version": "1",
        "run_id": "run",
        "inputs": {"age": 40 + i % 50, "sex": "F"},
        "outputs": {"prediction_quality": "high"},
        "diagnosis_code": "pneumonia",
        "treatment_code": "oral_antibiotics",
        "quality": "high",
    }


def _store(tmp_path: Path, migrate: bool = True) -> tuple[str, Any]:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    if migrate:
        db.upgrade(url)
    return url, db.make_sessionmaker(db.make_engine(url))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A migrated store on each backend: its URL and a session factory."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            yield _store(tmp_path)
            return
        url = stack.enter_context(empty_pg_schema())
        db.upgrade(url)
        engine = db.make_engine(url)
        stack.callback(engine.dispose)
        yield url, db.make_sessionmaker(engine)


async def test_every_row_is_written_and_the_queue_drains_on_stop(store: tuple[str, Any]) -> None:
    url, sessions = store
    depths: list[int] = []
    writer = AuditWriter(sessions, max_queue=50, batch_size=20, on_depth=depths.append)
    writer.start()
    # 500 rows through a 50-row queue: enqueue must wait for room (backpressure), never drop.
    await asyncio.gather(*(writer.enqueue(_row(i)) for i in range(500)))
    await writer.stop()
    assert writer.enqueued == writer.written == 500 and writer.lost == 0
    assert count_rows(url) == 500
    assert depths and max(depths) <= 50


async def test_flush_waits_until_rows_are_readable(store: tuple[str, Any]) -> None:
    url, sessions = store
    writer = AuditWriter(sessions)
    writer.start()
    await writer.enqueue_many([_row(i) for i in range(3)])
    await writer.flush()
    assert count_rows(url) == 3
    await writer.stop()


async def test_a_failing_store_is_retried_until_it_works(tmp_path: Path) -> None:
    url, sessions = _store(tmp_path, migrate=False)  # no tables yet: inserts fail
    writer = AuditWriter(sessions, retry_delay_s=0.05)
    writer.start()
    await writer.enqueue(_row(1))
    await asyncio.sleep(0.3)
    assert writer.written == 0
    await asyncio.to_thread(db.upgrade, url)  # the store comes back
    await asyncio.wait_for(writer.flush(), timeout=30)
    await writer.stop()
    assert count_rows(url) == 1 and writer.lost == 0


async def test_rows_are_given_up_only_at_shutdown_and_counted(tmp_path: Path) -> None:
    _, sessions = _store(tmp_path, migrate=False)
    writer = AuditWriter(sessions, retry_delay_s=0.01)
    writer.start()
    await writer.enqueue(_row(1))
    await asyncio.wait_for(writer.stop(), timeout=30)
    assert writer.lost == 1 and writer.written == 0


NEVER_S = 3600.0  # a linger no test waits out: only a full batch, flush or stop ends it


async def test_single_rows_are_coalesced_into_full_batches(tmp_path: Path) -> None:
    url, sessions = _store(tmp_path)
    writer = AuditWriter(sessions, batch_size=10, linger_s=NEVER_S)
    writer.start()
    for i in range(25):  # one request at a time, the writer free to run in between
        await writer.enqueue(_row(i))
        await asyncio.sleep(0)
    async with asyncio.timeout(60):  # the two full batches are written without a flush
        while writer.written < 20:
            await asyncio.sleep(0.01)
    assert (writer.written, writer.batches) == (20, 2)
    await asyncio.wait_for(writer.stop(), timeout=60)  # ends the linger, writes the last 5
    assert (writer.enqueued, writer.written, writer.batches, writer.lost) == (25, 25, 3, 0)
    assert count_rows(url) == 25


async def test_flush_and_stop_do_not_wait_out_the_linger(tmp_path: Path) -> None:
    url, sessions = _store(tmp_path)
    writer = AuditWriter(sessions, linger_s=NEVER_S)
    writer.start()
    await writer.enqueue_many([_row(i) for i in range(3)])
    await asyncio.wait_for(writer.flush(), timeout=60)
    assert count_rows(url) == 3 and writer.batches == 1
    await writer.enqueue_many([_row(i) for i in range(3, 10)])
    await asyncio.wait_for(writer.stop(), timeout=60)
    assert (writer.written, writer.batches, writer.lost) == (10, 2, 0)
    assert count_rows(url) == 10


async def test_a_full_queue_ends_the_linger(tmp_path: Path) -> None:
    url, sessions = _store(tmp_path)
    writer = AuditWriter(sessions, max_queue=3, batch_size=100, linger_s=NEVER_S)
    writer.start()
    # 30 rows through a 3-row queue: only possible if a full queue makes the writer write.
    await asyncio.wait_for(writer.enqueue_many([_row(i) for i in range(30)]), timeout=60)
    await asyncio.wait_for(writer.stop(), timeout=60)
    # the writer holds at most one queue's worth (3 rows) while 3 more wait: 6 rows a batch
    assert writer.written == 30 and writer.lost == 0 and writer.batches >= 5
    assert count_rows(url) == 30


async def test_enqueue_many_wakes_a_lingering_writer(tmp_path: Path) -> None:
    url, sessions = _store(tmp_path)
    writer = AuditWriter(sessions, max_queue=1000, batch_size=10, linger_s=NEVER_S)
    writer.start()
    await writer.enqueue(_row(0))
    await asyncio.sleep(0.05)  # the writer holds row 0 and lingers for more
    await writer.enqueue_many([_row(i) for i in range(1, 21)])
    async with asyncio.timeout(30):  # full batches are written without waiting out the linger
        while writer.written < 20:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(writer.stop(), timeout=60)
    assert (writer.enqueued, writer.written, writer.lost) == (21, 21, 0)
    assert count_rows(url) == 21


async def test_a_batch_is_one_queue_item_and_its_rows_count_toward_the_bound(
    tmp_path: Path,
) -> None:
    url, sessions = _store(tmp_path)
    depths: list[int] = []
    writer = AuditWriter(
        sessions, max_queue=100, batch_size=40, linger_s=NEVER_S, on_depth=depths.append
    )
    await writer.enqueue_many([_row(i) for i in range(60)])  # not started: stays queued
    assert writer.depth == 60 and len(writer._queue._queue) == 1  # one chunk
    await writer.enqueue_many([_row(i) for i in range(60, 100)])
    assert writer.depth == 100
    writer.start()
    # 150 more than the room: split to fit, the rest waits; a 60-row chunk is written 40 + 20
    await asyncio.wait_for(writer.enqueue_many([_row(i) for i in range(100, 250)]), timeout=60)
    await asyncio.wait_for(writer.stop(), timeout=60)
    assert (writer.enqueued, writer.written, writer.lost) == (250, 250, 0)
    assert max(depths) <= 100
    assert count_rows(url) == 250


def test_lifespan_migration_runs_once(tmp_path: Path) -> None:
    from app.main import migrate_if_needed

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert migrate_if_needed(url) is True  # a fresh store is migrated
    assert count_rows(url) == 0  # tables exist
    assert migrate_if_needed(url) is False  # already at head: nothing to do
