"""Prediction (audit) rows in a migrated store, on SQLite and on PostgreSQL
(``HP_TEST_DATABASE_URL``): what is stored, read back, refused. Feedback and retrain jobs:
`test_store_repository_feedback.py`.

Each test runs inside an outer transaction rolled back afterwards (repository commits only
release a SAVEPOINT).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.store import db, repository
from app.store.tables import PredictionRow
from tests.unit import _store
from tests.unit._store import audit_record

store_engine = _store.store_engine  # the fixtures, by assignment: no unused import to silence
session = _store.session


def test_saved_prediction_reads_back_with_json_and_utc_time(session: Session) -> None:
    rec = audit_record()
    assert repository.save_predictions(session, [rec, audit_record()]) == 2
    row = repository.get_prediction(session, rec["id"])
    assert row is not None
    assert row.inputs == rec["inputs"]
    assert row.outputs["diagnosis"]["code"] == "pneumonia"
    assert row.created_at.tzinfo is not None
    assert abs(datetime.now(UTC) - row.created_at) < timedelta(minutes=1)
    assert repository.get_prediction(session, "missing") is None


def test_save_predictions_ignores_unknown_keys_and_fills_id(session: Session) -> None:
    assert repository.save_predictions(session, []) == 0
    rec = audit_record()
    del rec["id"]
    rec["not_a_column"] = "x"
    repository.save_predictions(session, [rec])
    assert repository.count_predictions(session) == 1


def _stored(session: Session, prediction_id: str) -> dict[str, Any]:
    """A row's columns as the database holds them (no ORM type processing)."""
    json_text = "CAST({} AS TEXT)" if session.get_bind().dialect.name == "postgresql" else "{}"
    cols = ", ".join(
        json_text.format(c.key) if c.key in ("inputs", "outputs") else c.key
        for c in PredictionRow.__table__.columns
        if c.key != "id"
    )
    stmt = text(f"SELECT {cols} FROM predictions WHERE id = :id")
    return dict(session.execute(stmt, {"id": prediction_id}).mappings().one())


def test_save_predictions_stores_what_the_orm_bulk_insert_stored(session: Session) -> None:
    """The compiled executemany binds each column as the ORM would: same stored text/values."""
    when = datetime(2026, 3, 1, 14, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    outputs = {
        "diagnosis": {"code": "sepsis", "label": "Sepsis (sévère)", "probability": 0.1 + 0.2},
        "warnings": [],
        "explanation": None,
        "news2": {"score": 7, "band": "high"},
    }
    via_orm = audit_record(created_at=when, outputs=outputs, run_id=None)
    via_new = {**via_orm, "id": str(uuid.uuid4())}
    session.execute(insert(PredictionRow), [via_orm])
    repository.save_predictions(session, [via_new])
    assert _stored(session, via_new["id"]) == _stored(session, via_orm["id"])
    row = repository.get_prediction(session, via_new["id"])
    assert row is not None
    assert row.created_at == when and row.created_at.utcoffset() == timedelta(0)
    assert (row.inputs, row.outputs, row.run_id) == (via_new["inputs"], outputs, None)
    assert row.diagnosis_code == "pneumonia" and row.quality == "medium"


def test_pre_serialised_json_is_stored_as_the_serialiser_would_store_it(session: Session) -> None:
    """A `JSONText` (a batch's outputs, serialised once for the response) is stored as is:
    the same stored text as the dict it was made from, alone or among dict rows."""
    outputs = {"diagnosis": {"code": "sepsis", "probability": 0.1 + 0.2}, "warnings": []}
    plain = audit_record(outputs=outputs, id=str(uuid.uuid4()))
    rows = [
        {**plain, "id": str(uuid.uuid4()), "outputs": db.JSONText(db.dumps_json(outputs))},
        {**plain, "id": str(uuid.uuid4())},
        {k: v for k, v in plain.items() if k != "run_id"}
        | {"id": str(uuid.uuid4()), "outputs": db.JSONText(db.dumps_json(outputs))},
    ]
    repository.save_predictions(session, [plain, *rows])
    stored = [_stored(session, r["id"]) for r in rows]
    assert all(s["outputs"] == _stored(session, plain["id"])["outputs"] for s in stored)
    for r in rows:
        got = repository.get_prediction(session, r["id"])
        assert got is not None and got.outputs == outputs


def test_save_predictions_many_rows_fills_missing_columns_and_leaves_records_alone(
    session: Session,
) -> None:
    recs = [audit_record(inputs={"age": i}) for i in range(1000)]
    recs[10] = {"inputs": {"age": 10}, "outputs": {}, "id": None, "created_at": None}
    sparse = dict(recs[10])
    assert repository.save_predictions(session, recs) == 1000
    assert recs[10] == sparse  # ids and times are filled on a copy
    assert repository.count_predictions(session) == 1000
    assert sorted(r["age"] for r in repository.recent_inputs(session, 1000)) == list(range(1000))
    filled = session.scalars(
        select(PredictionRow).where(PredictionRow.model_source.is_(None))
    ).one()
    assert filled.inputs == {"age": 10} and len(filled.id) == 36
    assert abs(datetime.now(UTC) - filled.created_at) < timedelta(minutes=1)
    assert (filled.run_id, filled.diagnosis_code, filled.quality) == (None, None, None)


def test_rows_sharing_a_created_at_object_keep_their_own_times(session: Session) -> None:
    t1, t2 = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    times = [t1, t1, t2, t1, t2, t2]  # a batch shares one object; converted once per run
    recs = [audit_record(created_at=t) for t in times]
    repository.save_predictions(session, recs)
    stored = [repository.get_prediction(session, r["id"]) for r in recs]
    assert [row.created_at for row in stored if row is not None] == times


def test_a_row_written_again_is_stored_once_and_the_others_are_written(
    session: Session,
) -> None:
    """A write retried after its COMMIT went through unconfirmed: the rows it had stored are
    skipped, not refused (the retry would otherwise fail forever)."""
    first = audit_record()
    repository.save_predictions(session, [first])
    changed = {**first, "quality": "low"}  # same id: the stored row stays as it was
    assert repository.save_predictions(session, [changed, audit_record()]) == 2
    assert session.scalar(select(func.count()).select_from(PredictionRow)) == 2
    stored = repository.get_prediction(session, first["id"])
    assert stored is not None and stored.quality == "medium"


def test_save_predictions_without_inputs_is_refused(session: Session) -> None:
    rec = audit_record()
    del rec["inputs"]  # NOT NULL, as with the ORM's INSERT
    with pytest.raises(IntegrityError):
        repository.save_predictions(session, [audit_record(), rec])


def test_recent_inputs_returns_latest_window_oldest_first(session: Session) -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    recs = [
        audit_record(created_at=t0 + timedelta(seconds=i), inputs={"age": 20 + i}) for i in range(5)
    ]
    repository.save_predictions(session, recs)
    assert [r["age"] for r in repository.recent_inputs(session, 3)] == [22, 23, 24]
