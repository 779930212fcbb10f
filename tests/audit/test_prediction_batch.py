"""`app.store.prediction_batch` against the definitions it replaces, on SQLite and PostgreSQL
(``HP_TEST_DATABASE_URL``): a batch's encoded rows, sealed and inserted in one pass, are stored
as SQLAlchemy's own INSERT of the row dicts stores them, carry the MACs `Chain.seal` gives the
row dicts, and pass `audit verify`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, insert, select, text

from app.audit.rows import EncodedRows, batches
from app.store import db
from app.store.audit_verify import verify
from app.store.chain import Chain
from app.store.db import JSONText
from app.store.ids import new_ids
from app.store.prediction_batch import PREDICTIONS_TABLE, save_batches
from app.store.tables import PredictionRow
from tests.unit._store import BACKENDS, fresh_database

KEY = b"k" * 32
SHARED = {
    "model_source": "mlflow",
    "diagnosis_version": "3",
    "treatment_version": None,
    "run_id": "r\u00e9-1",
}


def records(n: int) -> list[dict[str, Any]]:
    """Records whose canonical JSON is not their serialisation in order: unsorted keys, ints
    and floats (shortest repr, tiny), None, lists, text needing escapes."""
    return [
        {
            "temperature": 36.6 + i / 3,
            "age": 18 + i,
            "sex": "F" if i % 2 else "M",
            "wbc": None if i % 3 else 1e-7 * (i + 1),
            "crp": 123456.789 if i == 1 else 0.1 + 0.2,
            "symptoms": ["fever", "cough"][: i % 3],
            "zz_note": 'multi\nline \u00ab\u00e9\u00bb "quoted" \\ \u2028',
            "copd": bool(i % 2),
        }
        for i in range(n)
    ]


def outputs(ids: list[str]) -> list[bytes]:
    """Response items as the batch path serialises them: DESIGN order, not sorted."""
    return [
        orjson.dumps(
            {
                "prediction_id": pid,
                "diagnosis": {
                    "code": "sepsis",
                    "label": "Sepsis (s\u00e9v\u00e8re)",
                    "probability": 0.1 + 0.2,
                },
                "warnings": [
                    {"code": "hypoxia", "severity": "high", "message": "SpO2 88 % < 90 %\n"}
                ],
                "news2": {"score": 7, "band": "high"},
                "explanation": None,
            }
        )
        for pid in ids
    ]


def encoded(n: int, created_at: datetime) -> tuple[EncodedRows, list[dict[str, Any]]]:
    """``n`` rows encoded as `POST /predict/batch` queues them, and the row dicts they stand
    for (outputs as `JSONText`, as the batch path handed them over before)."""
    ids = new_ids(n)
    recs, outs = records(n), outputs(ids)
    codes = [("sepsis", None, "high") if i % 2 else (None, None, "insufficient") for i in range(n)]
    rows = [
        {
            "id": pid,
            "created_at": created_at,
            **SHARED,
            "inputs": rec,
            "outputs": JSONText(out.decode()),
            "diagnosis_code": c[0],
            "treatment_code": c[1],
            "quality": c[2],
        }
        for pid, rec, out, c in zip(ids, recs, outs, codes, strict=True)
    ]
    return EncodedRows.of_batch(created_at, SHARED, ids, codes, recs, outs), rows


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with fresh_database(request.param, tmp_path) as url:
        engine = db.make_engine(url)
        yield engine
        engine.dispose()


def stored(engine: Engine, ids: list[str]) -> list[tuple[Any, ...]]:
    """The rows' columns as the database holds them (JSON as the server's text), in order."""
    as_text = "CAST({} AS TEXT)" if engine.dialect.name == "postgresql" else "{}"
    cols = ", ".join(
        as_text.format(c.key) if c.key in ("inputs", "outputs") else c.key
        for c in PredictionRow.__table__.columns
        if c.key not in ("id", "chain_id", "seq", "mac")
    )
    with engine.connect() as conn:
        by_id = {
            row[0]: tuple(row[1:])
            for row in conn.execute(text(f"SELECT id, {cols} FROM predictions"))
        }
    return [by_id[pid] for pid in ids]


WHEN = [
    datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC),  # no microseconds: orjson leaves them out
    datetime(2026, 3, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
]


@pytest.mark.parametrize("created_at", WHEN, ids=["whole-second", "offset"])
def test_rows_are_stored_as_sqlalchemys_insert_stores_the_row_dicts(
    engine: Engine, created_at: datetime
) -> None:
    rows_encoded, rows = encoded(20, created_at)
    with db.make_sessionmaker(engine)() as session:
        assert save_batches(session, batches([rows_encoded]), None) == 20
    dicts = [{**row, "id": pid} for row, pid in zip(rows, new_ids(20), strict=True)]
    with engine.begin() as conn:
        conn.execute(insert(PredictionRow), dicts)  # SQLAlchemy's own binding of each value
    ours, theirs = stored(engine, [r["id"] for r in rows]), stored(engine, [r["id"] for r in dicts])
    assert ours == theirs
    with db.make_sessionmaker(engine)() as session:
        back = session.scalars(select(PredictionRow).order_by(PredictionRow.id)).all()
    first = next(r for r in back if r.id == rows[0]["id"])
    assert first.inputs == rows[0]["inputs"] and first.created_at == created_at


def test_the_macs_are_the_chains_definition_and_verify_accepts_them(engine: Engine) -> None:
    """Two batches and single rows in one write, then another write: the stored MACs are
    those `Chain.seal` gives the row dicts (the definition `audit verify` recomputes)."""
    first, first_rows = encoded(30, WHEN[1])
    second, second_rows = encoded(5, datetime.now(UTC))
    singles = [{**r, "id": pid} for r, pid in zip(second_rows[:2], new_ids(2), strict=True)]
    chain = Chain(KEY)
    sessions = db.make_sessionmaker(engine)
    with sessions() as session:
        save_batches(session, batches([first, singles, second]), chain)
    later, later_rows = encoded(3, datetime.now(UTC))
    with sessions() as session:
        save_batches(session, batches([later]), chain)
    reference = Chain(KEY, chain.chain_id)
    expected = [dict(r) for r in (*first_rows, *singles, *second_rows, *later_rows)]
    reference.seal(PREDICTIONS_TABLE, expected)
    with engine.connect() as conn:
        got = dict(conn.execute(text("SELECT id, mac FROM predictions")).all())
    assert [got[r["id"]] for r in expected] == [r["mac"] for r in expected]
    assert chain.head.mac == expected[-1]["mac"] and chain.head.seq == 40
    with sessions() as session:
        report = verify(session, KEY)
    assert report.ok, report.summary()
    assert report.rows["predictions"] == 40


def test_a_fresh_chain_skips_rows_already_stored_and_seals_the_rest(engine: Engine) -> None:
    """A write retried by a new child after the old one committed it: no row twice, no hole."""
    rows_encoded, rows = encoded(6, datetime.now(UTC))
    sessions = db.make_sessionmaker(engine)
    with sessions() as session:
        save_batches(session, batches([[rows[0], rows[3]]]), Chain(KEY))
    retry = Chain(KEY)
    with sessions() as session:
        assert save_batches(session, batches([rows_encoded]), retry) == 6
    assert retry.head.seq == 4
    with sessions() as session:
        report = verify(session, KEY)
    assert report.ok and report.rows["predictions"] == 6, report.summary()


@pytest.mark.parametrize("number", [-0.0, 1e20, 1.5e300, 5e-324], ids=repr)
def test_numbers_a_json_column_could_rewrite_still_verify(engine: Engine, number: float) -> None:
    """Negative zero (``crp`` admits it: 0 <= -0.0), and floats with big or tiny exponents:
    stored, read back and sealed as the same JSON (PostgreSQL's JSONB rewrote -0.0 as 0 and
    1e20 as its integer digits, and `audit verify` then called the row altered)."""
    rows_encoded, rows = encoded(2, datetime.now(UTC))
    head = orjson.loads(rows_encoded.head)
    head["records"][0]["crp"] = number
    out = orjson.loads(rows_encoded.outputs.split(b"\n")[0])
    out["diagnosis"]["probability"] = number
    altered = EncodedRows(
        2,
        orjson.dumps(head),
        b"\n".join([orjson.dumps(out), rows_encoded.outputs.split(b"\n")[1]]),
    )
    sessions = db.make_sessionmaker(engine)
    with sessions() as session:
        save_batches(session, batches([altered]), Chain(KEY))
    with sessions() as session:
        report = verify(session, KEY)
        back = session.scalars(select(PredictionRow).where(PredictionRow.id == rows[0]["id"])).one()
    assert report.ok, report.summary()
    assert repr(back.inputs["crp"]) == repr(number)
    assert repr(back.outputs["diagnosis"]["probability"]) == repr(number)
