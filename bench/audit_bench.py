"""CPU of the audit insert: the ORM bulk insert (before) vs `save_predictions` (after).

Usage: ``python bench/audit_bench.py [--reps 7] [--postgres]``. Rows are real audit rows: an
in-process app (TestClient, real lifespan, models from the environment's settings) answers one
``POST /predict/batch`` of 1,000 cohort patients and its audit store is read back. Each variant
then writes them, in the same process, alternating order, into a fresh SQLite file (or a
throwaway PostgreSQL schema): 1,000 rows in one transaction, and single-row and 12-row
transactions (12 = 50 ms of coalescing at 250 req/s). Reported: medians over ``--reps`` of the
writing thread's CPU (`time.thread_time`) and wall time. Then the whole `AuditWriter` before
(no linger, ORM insert) and after, fed one row every 1/``--rate`` s for ``--seconds``: process
CPU per row and the number of transactions.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.factories

N_ROWS = 1000
SMALL_BATCH_ROWS = 240  # rows written per rep in single-row and 12-row transactions
COALESCED = 12


def audit_rows(n: int) -> list[dict[str, Any]]:
    """``n`` audit rows as `POST /predict/batch` enqueues them, read back from its store."""
    tmp = Path(tempfile.mkdtemp(prefix="audit-bench-rows-"))
    os.environ["HP_DATABASE_URL"] = f"sqlite:///{tmp / 'rows.db'}"
    os.environ.setdefault("HP_RATE_LIMIT_PER_MINUTE", "1000000")
    os.environ.setdefault("HP_ACCESS_LOG", "false")
    os.environ.setdefault("HP_LOG_LEVEL", "WARNING")

    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from app.main import create_app
    from app.settings import DEFAULT_CLINICIAN_KEY, get_settings
    from app.store.tables import PredictionRow
    from tests.factories import cohort_payloads

    settings = get_settings()
    payloads = cohort_payloads(settings.training_data_path, n, seed=1)
    headers = {"X-API-Key": DEFAULT_CLINICIAN_KEY}
    with TestClient(create_app(settings)) as client:
        response = client.post("/predict/batch", json={"records": payloads}, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"POST /predict/batch: {response.status_code} {response.text[:500]}")
        app_state = client.app.state  # type: ignore[attr-defined]
        client.portal.call(app_state.audit.flush)  # type: ignore[union-attr]
        keys = [c.key for c in PredictionRow.__table__.columns]
        with app_state.sessionmaker() as session:
            rows = [
                {k: getattr(row, k) for k in keys} for row in session.scalars(select(PredictionRow))
            ]
    # One batch's rows share one datetime object in the app (`_assemble(..., now)`): again here.
    same: dict[Any, Any] = {}
    for row in rows:
        row["created_at"] = same.setdefault(row["created_at"], row["created_at"])
    return rows


def save_predictions_orm(session: Any, records: Sequence[dict[str, Any]]) -> int:
    """`save_predictions` before d5b16e7: the ORM bulk insert."""
    from sqlalchemy import insert

    from app.store.ids import new_id
    from app.store.tables import PredictionRow, utcnow

    columns = frozenset(c.key for c in PredictionRow.__table__.columns)
    rows = []
    for record in records:
        row = {k: v for k, v in record.items() if k in columns}
        if "id" not in row:
            row["id"] = new_id()
        if "created_at" not in row:
            row["created_at"] = utcnow()
        rows.append(row)
    session.execute(insert(PredictionRow), rows)
    session.commit()
    return len(rows)


@contextmanager
def store(postgres: bool) -> Iterator[str]:
    from app.store import db

    if postgres:
        from tests.pg_schema import empty_pg_schema

        with empty_pg_schema() as url:
            db.upgrade(url)
            yield url
        return
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='audit-bench-')) / 'audit.db'}"
    db.upgrade(url)
    yield url


def fresh(src: list[dict[str, Any]], own_times: bool = False) -> list[dict[str, Any]]:
    """The rows under new ids (each variant inserts its own copies); ``own_times``: a datetime
    object per row, as single requests have (a batch's rows share one)."""
    from app.store.ids import new_id

    if own_times:
        step = timedelta(microseconds=1)
        return [
            {**r, "id": new_id(), "created_at": r["created_at"] + i * step}
            for i, r in enumerate(src)
        ]
    return [{**r, "id": new_id()} for r in src]


def chunks(src: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [src[i : i + size] for i in range(0, len(src), size)]


def timed(save: Callable[[Any, Sequence[dict[str, Any]]], int], sessions: Any, batches: Any) -> Any:
    cpu, wall = time.thread_time(), time.perf_counter()
    for batch in batches:
        with sessions() as session:
            save(session, batch)
    return time.thread_time() - cpu, time.perf_counter() - wall


async def stream(
    writer_cls: Any, sessions: Any, rows: list[dict[str, Any]], rate: float, seconds: float
) -> tuple[float, int, int]:
    """One row every 1/rate s for ``seconds`` into a writer, then stop it: (process CPU of the
    whole run, rows written, transactions). The producer's own cost is the same for both."""
    writer = writer_cls(sessions, max_queue=10_000, retry_delay_s=0.2)
    writer.start()
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    batch = fresh(rows[:n], own_times=True)
    cpu, start = time.process_time(), loop.time()
    for i, row in enumerate(batch):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        await writer.enqueue(row)
    await writer.stop()
    return time.process_time() - cpu, writer.written, writer.batches


def writer_classes() -> dict[str, Any]:
    from app.audit.writer import AuditWriter

    class BeforeWriter(AuditWriter):
        """The writer before this change: no linger, the ORM bulk insert."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "linger_s": 0.0})

        def _save(self, batch: list[dict[str, Any]]) -> None:
            with self._make_session() as session:
                save_predictions_orm(session, batch)

    class NoWriter:
        """The producer alone (its pacing and bookkeeping): subtract it from the writers."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.written = self.batches = 0

        def start(self) -> None:
            pass

        async def enqueue(self, row: dict[str, Any]) -> None:
            self.written += 1

        async def stop(self) -> None:
            pass

    return {
        "producer alone (no writer)": NoWriter,
        "writer before (1 txn/row, ORM)": BeforeWriter,
        "no linger, new insert": functools.partial(AuditWriter, linger_s=0.0),
        "writer after (linger 50 ms)": AuditWriter,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--postgres", action="store_true", help="HP_TEST_DATABASE_URL's server")
    parser.add_argument("--rate", type=float, default=250.0, help="single requests per second")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one stream run")
    args = parser.parse_args()

    rows = audit_rows(N_ROWS)
    from app.store import db, repository

    variants = {"ORM bulk insert (before)": save_predictions_orm}
    variants["compiled executemany (after)"] = repository.save_predictions
    shapes: dict[str, Callable[[], list[list[dict[str, Any]]]]] = {
        f"{N_ROWS} rows, 1 txn": lambda: [fresh(rows)],
        f"{SMALL_BATCH_ROWS} rows, {COALESCED}-row txns": lambda: chunks(
            fresh(rows[:SMALL_BATCH_ROWS], own_times=True), COALESCED
        ),
        f"{SMALL_BATCH_ROWS} rows, 1-row txns": lambda: chunks(
            fresh(rows[:SMALL_BATCH_ROWS], own_times=True), 1
        ),
    }

    results: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    with store(args.postgres) as url:
        engine = db.make_engine(url)
        sessions = db.make_sessionmaker(engine)
        for save in variants.values():  # warm-up: compile, connect
            timed(save, sessions, [fresh(rows[:10])])
        for rep in range(args.reps):
            order = list(variants.items())
            if rep % 2:
                order.reverse()
            for shape, make in shapes.items():
                for name, save in order:
                    batches = make()
                    n = sum(len(b) for b in batches)
                    cpu, wall = timed(save, sessions, batches)
                    results.setdefault((shape, name), []).append((cpu, wall, n))
        streams: dict[str, list[tuple[float, int, int]]] = {}
        writers = writer_classes()
        for rep in range(args.reps):
            order = list(writers.items())
            if rep % 2:
                order.reverse()
            for name, cls in order:
                run = stream(cls, sessions, rows, args.rate, args.seconds)
                streams.setdefault(name, []).append(asyncio.run(run))
        engine.dispose()

    backend = "PostgreSQL" if args.postgres else "SQLite file (WAL)"
    print(f"\n{backend}, {len(rows)} real audit rows, medians of {args.reps} reps (thread CPU)")
    print(f"{'shape':28} {'variant':30} {'CPU ms':>8} {'wall ms':>8} {'CPU us/row':>11}")
    for (shape, name), samples in results.items():
        cpu = statistics.median(s[0] for s in samples) * 1e3
        wall = statistics.median(s[1] for s in samples) * 1e3
        per_row = statistics.median(s[0] / s[2] for s in samples) * 1e6
        print(f"{shape:28} {name:30} {cpu:8.1f} {wall:8.1f} {per_row:11.0f}")
    print(
        f"\n{args.rate:g} single rows/s for {args.seconds:g} s through AuditWriter, process CPU"
        " (producer included), medians"
    )
    print(f"{'writer':32} {'rows':>6} {'txns':>6} {'CPU ms':>8} {'CPU us/row':>11}")
    for name, runs in streams.items():
        cpu = statistics.median(r[0] for r in runs) * 1e3
        per_row = statistics.median(r[0] / r[1] for r in runs) * 1e6
        txns = statistics.median(r[2] for r in runs)
        print(f"{name:32} {runs[0][1]:6d} {txns:6.0f} {cpu:8.1f} {per_row:11.0f}")


if __name__ == "__main__":
    main()
