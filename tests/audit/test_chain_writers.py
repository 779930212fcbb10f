"""The chain under the writers' real conditions: the audit writer's thread path, several
writers (child processes, as gunicorn workers each have one) sharing one store, a write
retried into a new chain after a child died, a feedback repeat that stores nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.audit.process import AuditProcess
from app.audit.writer import AuditWriter
from app.store import db, repository
from app.store.audit_verify import verify
from app.store.chain import Chain
from app.store.ids import new_id
from tests.factories import make_patient
from tests.pg_schema import empty_pg_schema

KEY = b"test-audit-key"


def audit_row(i: int) -> dict[str, Any]:
    return {
        "id": new_id(),
        "model_source": "mlflow",
        "diagnosis_version": "1",
        "treatment_version": "1",
        "run_id": "run-1",
        "inputs": make_patient(age=20 + i % 60, temperature=36.5 + i / 100),
        "outputs": {"diagnosis": {"code": "pneumonia", "probability": 0.1 + i / 1000}},
        "diagnosis_code": "pneumonia",
        "treatment_code": "admit_ward",
        "quality": "high",
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'store.db'}"
            if request.param == "sqlite"
            else stack.enter_context(empty_pg_schema())
        )
        db.upgrade(url)
        engine = db.make_engine(url)
        stack.callback(engine.dispose)
        yield db.make_sessionmaker(engine)


def check(sessions: sessionmaker[Session], chains: int, predictions: int) -> None:
    with sessions() as session:
        report = verify(session, KEY)
    assert report.ok, report.summary()
    assert report.chains == chains and report.rows["predictions"] == predictions


async def test_the_thread_path_chains_rows_in_order(sessions: sessionmaker[Session]) -> None:
    writer = AuditWriter(sessions, batch_size=7, chain_key=KEY)
    writer.start()
    for i in range(5):
        await writer.enqueue_many([audit_row(10 * i + k) for k in range(10)])
    await writer.stop()
    check(sessions, chains=1, predictions=50)
    with sessions() as session:
        seqs = list(session.scalars(text("SELECT seq FROM predictions ORDER BY seq")))
    assert seqs == list(range(1, 51))


async def test_several_writer_processes_share_one_store(sessions: sessionmaker[Session]) -> None:
    """Three writers, each with its child process (as three gunicorn workers), interleaved."""
    engine = sessions.kw["bind"]
    writers = [AuditWriter(sessions, process=AuditProcess(engine, KEY)) for _ in range(3)]
    for writer in writers:
        writer.start()

    async def feed(writer: AuditWriter, offset: int) -> None:
        for i in range(6):
            await writer.enqueue_many([audit_row(offset + 10 * i + k) for k in range(10)])
            await asyncio.sleep(0.01)

    await asyncio.gather(*(feed(w, 100 * n) for n, w in enumerate(writers)))
    await asyncio.gather(*(w.stop() for w in writers))
    check(sessions, chains=3, predictions=180)


def test_a_write_retried_into_a_new_chain_skips_the_rows_stored(
    sessions: sessionmaker[Session],
) -> None:
    """The child died after its COMMIT, before answering: the writer sends the same rows to a
    new child (a new chain), which must not leave a hole by sealing rows it then skips."""
    rows = [audit_row(i) for i in range(4)]
    first, second = Chain(KEY), Chain(KEY)
    with sessions() as session:
        repository.save_predictions(session, rows[:3], first)
    with sessions() as session:
        repository.save_predictions(session, rows, second)  # the retry, plus one row
    with sessions() as session:
        repository.save_predictions(session, [audit_row(9)], second)
    assert second.head.seq == 2
    check(sessions, chains=2, predictions=5)


def test_a_feedback_repeat_does_not_advance_the_chain(sessions: sessionmaker[Session]) -> None:
    row = audit_row(0)
    chain = Chain(KEY)
    with sessions() as session:
        repository.save_predictions(session, [row])  # unchained: only feedback is checked here
        session.execute(text("UPDATE predictions SET chain_id = 'x', seq = 1, mac = 'x'"))
        session.commit()
    with sessions() as session:
        for clinician in ("c1", "c1", "c2"):
            repository.add_feedback(
                session,
                prediction_id=row["id"],
                verdict="correct",
                clinician_id=clinician,
                chain=chain,
            )
    assert chain.head.seq == 2
    with sessions() as session:
        report = verify(session, KEY)
    assert [p.table for p in report.problems] == ["predictions"]  # only the hand-made row
