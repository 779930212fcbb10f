"""Repository queries on a migrated store, on SQLite and on PostgreSQL (``HP_TEST_DATABASE_URL``).

Each test runs inside an outer transaction rolled back afterwards (repository commits only
release a SAVEPOINT); the concurrency tests use their own committed database.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.store import db, repository
from app.store.tables import FeedbackRow, PredictionRow
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


def test_add_feedback_is_idempotent_per_clinician(session: Session) -> None:
    rec = audit_record()
    repository.save_predictions(session, [rec])
    first, created = repository.add_feedback(
        session,
        prediction_id=rec["id"],
        verdict="wrong_diagnosis",
        clinician_id="c1",
        corrected_diagnosis="sepsis",
        reason="lactate 5",
    )
    again, created_again = repository.add_feedback(
        session,
        prediction_id=rec["id"],
        verdict="correct",
        clinician_id="c1",
    )
    other, created_other = repository.add_feedback(
        session,
        prediction_id=rec["id"],
        verdict="correct",
        clinician_id="c2",
    )
    assert (created, created_again, created_other) == (True, False, True)
    assert again.id == first.id and again.verdict == "wrong_diagnosis"
    assert other.id != first.id
    assert repository.count_feedback(session) == 2


def test_feedback_on_unknown_prediction_violates_the_foreign_key(session: Session) -> None:
    with pytest.raises(IntegrityError):
        repository.add_feedback(session, prediction_id="nope", verdict="correct", clinician_id="c1")


def test_verdict_outside_the_enum_is_refused_by_the_database(session: Session) -> None:
    rec = audit_record()
    repository.save_predictions(session, [rec])
    with pytest.raises(IntegrityError):
        repository.add_feedback(
            session, prediction_id=rec["id"], verdict="maybe", clinician_id="c1"
        )


def test_feedback_stats_counts_rates_and_recommendation(session: Session) -> None:
    recs = [audit_record(diagnosis_code="pneumonia") for _ in range(6)]
    recs += [
        audit_record(diagnosis_code="sepsis", treatment_code="sepsis_bundle_icu") for _ in range(4)
    ]
    repository.save_predictions(session, recs)
    verdicts = (
        ["correct"] * 4
        + ["wrong_diagnosis", "wrong_treatment"]
        + ["both_wrong", "correct", "correct", "wrong_diagnosis"]
    )
    for rec, verdict in zip(recs, verdicts, strict=True):
        repository.add_feedback(
            session, prediction_id=rec["id"], verdict=verdict, clinician_id="c1"
        )
    stats = repository.feedback_stats(
        session, since=None, min_feedback=10, error_rate_threshold=0.4
    )
    assert stats.total == 10
    assert stats.by_verdict == {
        "correct": 6,
        "wrong_diagnosis": 2,
        "wrong_treatment": 1,
        "both_wrong": 1,
    }
    assert stats.error_rate == pytest.approx(0.4)
    assert stats.diagnosis_error_rate == pytest.approx(0.3)
    assert stats.per_diagnosis["pneumonia"].n == 6
    assert stats.per_diagnosis["pneumonia"].error_rate == pytest.approx(1 / 6)
    assert stats.per_diagnosis["sepsis"].error_rate == pytest.approx(0.5)
    assert stats.per_treatment["iv_antibiotics_admit"].errors == 1
    assert stats.retraining_recommended, stats.recommendation_reason
    later = repository.feedback_stats(
        session,
        since=datetime.now(UTC) + timedelta(hours=1),
        min_feedback=10,
        error_rate_threshold=0.4,
    )
    assert later.since_last_training == 0 and not later.retraining_recommended
    strict = repository.feedback_stats(
        session, since=None, min_feedback=10, error_rate_threshold=0.5
    )
    assert not strict.retraining_recommended and "error rate" in strict.recommendation_reason


def test_corrected_rows_carry_training_encoding_and_corrected_labels(session: Session) -> None:
    a, b, c, d = (audit_record() for _ in range(4))
    repository.save_predictions(session, [a, b, c, d])
    repository.add_feedback(
        session,
        prediction_id=a["id"],
        verdict="wrong_diagnosis",
        clinician_id="c1",
        corrected_diagnosis="sepsis",
    )
    repository.add_feedback(
        session,
        prediction_id=b["id"],
        verdict="both_wrong",
        clinician_id="c1",
        corrected_diagnosis="sepsis",
        corrected_treatment="sepsis_bundle_icu",
    )
    repository.add_feedback(session, prediction_id=c["id"], verdict="correct", clinician_id="c1")
    repository.add_feedback(
        session,
        prediction_id=d["id"],
        verdict="wrong_treatment",
        clinician_id="c1",
        corrected_treatment="oral_antibiotics",
    )
    rows = {r["prediction_id"]: r for r in repository.corrected_rows(session)}
    assert set(rows) == {a["id"], b["id"], d["id"]}
    assert (rows[a["id"]]["diagnosis"], rows[a["id"]]["treatment"]) == (
        "sepsis",
        "iv_antibiotics_admit",
    )
    assert rows[b["id"]]["treatment"] == "sepsis_bundle_icu"
    assert (rows[d["id"]]["diagnosis"], rows[d["id"]]["treatment"]) == (
        "pneumonia",
        "oral_antibiotics",
    )
    row = rows[a["id"]]
    assert row["symptoms"] == "fever;cough"
    assert (row["copd"], row["smoker"], row["diabetes"]) == (1, 0, 0)
    assert row["lactate"] is None and row["age"] == 70
    with_confirmed = repository.corrected_rows(session, include_confirmed=True)
    assert len(with_confirmed) == 4


def test_retrain_job_lifecycle(session: Session) -> None:
    job = repository.create_retrain_job(session, executor="in-process", trigger="api")
    assert job.status == "queued"
    assert repository.active_retrain_job(session).id == job.id  # type: ignore[union-attr]
    repository.mark_retrain_job_running(session, job.id)
    done = repository.finish_retrain_job(
        session,
        job.id,
        succeeded=True,
        decision="promoted",
        scores={"champion": 0.5, "challenger": 0.6},
        challenger_run_id="abc",
    )
    assert done is not None and done.status == "succeeded"
    fetched = repository.get_retrain_job(session, job.id)
    assert fetched is not None and fetched.scores == {"champion": 0.5, "challenger": 0.6}
    assert fetched.finished_at >= fetched.started_at  # type: ignore[operator]
    assert repository.active_retrain_job(session) is None
    assert repository.finish_retrain_job(session, "missing", succeeded=False) is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_repeats_store_exactly_one_row(backend: str, tmp_path: Path) -> None:
    with fresh_database(backend, tmp_path) as url:
        engine = db.make_engine(url)
        factory = db.make_sessionmaker(engine)
        rec = audit_record()
        with factory() as s:
            repository.save_predictions(s, [rec])
        ids: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(16)

        def submit(clinician: str) -> None:
            try:
                barrier.wait()
                with factory() as s:
                    row, _ = repository.add_feedback(
                        s, prediction_id=rec["id"], verdict="correct", clinician_id=clinician
                    )
                    ids.append(row.id)
            except BaseException as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=submit, args=(f"c{i % 2}",)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with factory() as s:
            n = s.scalar(select(func.count()).select_from(FeedbackRow))
            n_pred = s.scalar(select(func.count()).select_from(PredictionRow))
        engine.dispose()
    assert errors == []
    assert n == 2 and n_pred == 1
    assert len(ids) == 16 and len(set(ids)) == 2
