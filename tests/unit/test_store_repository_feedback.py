"""Feedback and retrain jobs in a migrated store, on SQLite and on PostgreSQL
(``HP_TEST_DATABASE_URL``): idempotence, constraints, statistics, corrected rows, job lifecycle.

Each test runs inside an outer transaction rolled back afterwards (repository commits only
release a SAVEPOINT); the concurrency test uses its own committed database.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.store import db, repository, retrain_jobs
from app.store.tables import FeedbackRow, PredictionRow
from tests.unit import _store
from tests.unit._store import BACKENDS, audit_record, fresh_database

store_engine = _store.store_engine  # the fixtures, by assignment: no unused import to silence
session = _store.session


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
    job = retrain_jobs.create_retrain_job(session, executor="in-process", trigger="api")
    assert job.status == "queued"
    assert retrain_jobs.active_retrain_job(session).id == job.id  # type: ignore[union-attr]
    retrain_jobs.mark_retrain_job_running(session, job.id)
    done = retrain_jobs.finish_retrain_job(
        session,
        job.id,
        succeeded=True,
        decision="promoted",
        scores={"champion": 0.5, "challenger": 0.6},
        challenger_run_id="abc",
    )
    assert done is not None and done.status == "succeeded"
    fetched = retrain_jobs.get_retrain_job(session, job.id)
    assert fetched is not None and fetched.scores == {"champion": 0.5, "challenger": 0.6}
    assert fetched.finished_at >= fetched.started_at  # type: ignore[operator]
    assert retrain_jobs.active_retrain_job(session) is None
    assert retrain_jobs.finish_retrain_job(session, "missing", succeeded=False) is None


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
