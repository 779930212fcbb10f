"""A batch's encoded audit rows and the writer's items, over real SQLite (and PostgreSQL,
``HP_TEST_DATABASE_URL``) stores."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.audit.rows import EncodedRows, batches
from app.audit.writer import AuditWriter, _writes
from app.store import db
from app.store.db import JSONText
from app.store.ids import new_ids
from tests.api.conftest import count_rows

SHARED = {
    "model_source": "mlflow",
    "diagnosis_version": "3",
    "treatment_version": "2",
    "run_id": "abc",
}
NEVER_S = 3600.0


def batch(n: int, created_at: datetime | None = None) -> tuple[EncodedRows, list[dict[str, Any]]]:
    """``n`` rows as `POST /predict/batch` encodes them, and the row dicts they stand for."""
    created_at = created_at or datetime.now(UTC)
    ids = new_ids(n)
    records = [
        {
            "age": 40 + i,  # an int stays an int, a float a float
            "temperature": 37.25 + i / 7,
            "symptoms": ["fever", "cough"][: i % 3],
            "copd": bool(i % 2),
            "lactate": None,
            "note": "multi\nline «é»",
        }
        for i in range(n)
    ]
    codes = [
        ("pneumonia", "oral_antibiotics", "high") if i % 4 else (None, None, "insufficient")
        for i in range(n)
    ]
    outputs = [
        orjson.dumps({"prediction_id": pid, "warnings": [{"message": "SpO2 88 % < 90 %\n"}]})
        for pid in ids
    ]
    rows = [
        {
            "id": pid,
            "created_at": created_at,
            **SHARED,
            "inputs": rec,
            "outputs": out,
            "diagnosis_code": c[0],
            "treatment_code": c[1],
            "quality": c[2],
        }
        for pid, rec, out, c in zip(ids, records, outputs, codes, strict=True)
    ]
    return EncodedRows.of_batch(created_at, SHARED, ids, codes, records, outputs), rows


def plain_rows(n: int) -> list[dict[str, Any]]:
    """Rows as single predictions queue them (outputs as a dict)."""
    return [{**r, "outputs": orjson.loads(r["outputs"])} for r in batch(n)[1]]


def test_encoded_rows_give_back_their_columns() -> None:
    """The records come back as the chain's canonical JSON (keys sorted, compact: the stored
    and sealed text) with their values and types; the outputs as the response items."""
    encoded, rows = batch(50)
    assert len(encoded) == 50
    back = encoded.batch()
    assert len(back) == 50 and back.created_at == rows[0]["created_at"]
    assert back.created_at.tzinfo is not None
    assert back.model == tuple(SHARED.values())
    assert list(back.ids) == [r["id"] for r in rows]
    assert [tuple(c) for c in back.codes] == [
        (r["diagnosis_code"], r["treatment_code"], r["quality"]) for r in rows
    ]
    for text, out, row in zip(back.inputs, back.outputs, rows, strict=True):
        assert out == row["outputs"].decode()  # the response item, byte for byte
        assert text is not None
        record = orjson.loads(text)
        assert record == row["inputs"] and list(record) == sorted(row["inputs"])
        assert [type(record[k]) for k in row["inputs"]] == [type(v) for v in row["inputs"].values()]
        assert text == orjson.dumps(row["inputs"], option=orjson.OPT_SORT_KEYS).decode()


def test_encoded_rows_refuse_columns_of_different_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        EncodedRows.of_batch(datetime.now(UTC), SHARED, ["a"], [], [{}], [b"{}"])


def test_batches_keep_the_order_of_lists_and_batches() -> None:
    first, first_rows = batch(3)
    second, second_rows = batch(2)
    single = plain_rows(1)
    got = batches([single, first, [], second])
    assert [pid for b in got for pid in b.ids] == [
        single[0]["id"],
        *(r["id"] for r in first_rows),
        *(r["id"] for r in second_rows),
    ]
    empty = batches([EncodedRows.of_batch(datetime.now(UTC), SHARED, [], [], [], [])])
    assert [len(b) for b in empty] == [0]


def test_writes_split_lists_but_never_a_batch() -> None:
    big, _ = batch(7)
    small, _ = batch(2)
    rows = [{"id": str(i)} for i in range(5)]
    sizes = [[len(i) for i in w] for w in _writes([rows, big, small, rows[:1]], 4)]
    assert sizes == [[4], [1], [7], [2, 1]]
    assert [[len(i) for i in w] for w in _writes([rows[:3], small, rows], 4)] == [
        [3],
        [2, 2],
        [3],
    ]


def sqlite_store(tmp_path: Path, migrate: bool = True) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    if migrate:
        db.upgrade(url)
    return url


def test_encoded_rows_are_stored_as_the_row_dicts_are(tmp_path: Path) -> None:
    """The same batch queued encoded (what `POST /predict/batch` queues) and as row dicts
    with serialised outputs: byte-identical rows (JSON text, times, codes)."""
    encoded, rows = batch(40)
    single = plain_rows(3)
    as_rows = [*single, *({**r, "outputs": JSONText(r["outputs"].decode())} for r in rows)]
    encoded_url, rows_url = sqlite_store(tmp_path / "a"), sqlite_store(tmp_path / "b")
    for url, items in ((encoded_url, [single, encoded]), (rows_url, [as_rows])):
        engine = db.make_engine(url)
        AuditWriter(db.make_sessionmaker(engine))._save(items)
        engine.dispose()

    def dump(url: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            return conn.execute("SELECT * FROM predictions ORDER BY id").fetchall()

    assert dump(encoded_url) == dump(rows_url) and len(dump(encoded_url)) == 43


async def test_the_writer_drains_rows_and_encoded_batches(tmp_path: Path) -> None:
    url = sqlite_store(tmp_path)
    engine = db.make_engine(url)
    writer = AuditWriter(
        db.make_sessionmaker(engine), max_queue=100, batch_size=40, linger_s=NEVER_S
    )
    writer.start()
    await writer.enqueue(plain_rows(1)[0])
    await writer.enqueue_encoded(batch(60)[0])
    await writer.flush()
    assert count_rows(url) == 61
    for _ in range(3):
        await writer.enqueue_encoded(batch(30)[0])
    await writer.enqueue_many(plain_rows(50))
    await asyncio.wait_for(writer.stop(), timeout=60)
    assert (writer.enqueued, writer.written, writer.lost) == (201, 201, 0)
    assert count_rows(url) == 201
    engine.dispose()


async def test_an_encoded_batch_waits_for_room_and_an_oversized_one_for_an_empty_queue(
    tmp_path: Path,
) -> None:
    url = sqlite_store(tmp_path)
    engine = db.make_engine(url)
    depths: list[int] = []
    writer = AuditWriter(
        db.make_sessionmaker(engine),
        max_queue=100,
        batch_size=1000,
        linger_s=NEVER_S,
        on_depth=depths.append,
    )
    await writer.enqueue_encoded(batch(60)[0])  # not started: stays queued
    pending = asyncio.ensure_future(writer.enqueue_encoded(batch(60)[0]))
    await asyncio.sleep(0.05)
    assert not pending.done() and writer.depth == 60  # 60 + 60 > 100: waits
    writer.start()
    await asyncio.wait_for(pending, timeout=30)
    await asyncio.wait_for(writer.enqueue_encoded(batch(250)[0]), timeout=30)  # > the bound
    await asyncio.wait_for(writer.stop(), timeout=60)
    assert (writer.enqueued, writer.written, writer.lost) == (370, 370, 0)
    assert count_rows(url) == 370 and max(depths) <= 250
    with pytest.raises(RuntimeError, match="stopped"):
        await writer.enqueue_encoded(batch(1)[0])
    engine.dispose()
