"""`/feedback` through the real app (own store, SQLite and the real PostgreSQL; no model needed:
corrections are then checked against the task's codes): bad input table, idempotency, stats, CSV
export, auth."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from app.main import create_app
from app.store import repository
from app.store.tables import FeedbackRow
from tests.api.conftest import ADMIN, CLINICIAN, assert_error, make_settings
from tests.pg_schema import empty_pg_schema
from train_pipeline.contract import ED_COHORT


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app_client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    with ExitStack() as stack:
        store = (
            {}
            if request.param == "sqlite"
            else {"database_url": stack.enter_context(empty_pg_schema())}
        )
        settings = make_settings(
            tmp_path_factory.mktemp("feedback"),
            retrain_min_feedback=3,
            retrain_error_rate=0.5,
            **store,
        )
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield client


def audit_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "model_source": "mlflow",
        "diagnosis_version": "1",
        "treatment_version": "1",
        "run_id": "run-1",
        "inputs": {
            "age": 64,
            "sex": "M",
            "heart_rate": 104.0,
            "systolic_bp": 128.0,
            "temperature": 38.6,
            "symptoms": ["fever", "cough"],
            "copd": False,
        },
        "outputs": {"diagnosis": {"code": "viral_uri"}},
        "diagnosis_code": "viral_uri",
        "treatment_code": "discharge_home",
        "quality": "low",
    }
    return row | overrides


def add_predictions(client: TestClient, *rows: dict[str, Any]) -> list[str]:
    """Audit rows straight into the app's store, as the audit writer would write them."""
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        repository.save_predictions(session, list(rows))
    return [r["id"] for r in rows]


def feedback_count(client: TestClient) -> int:
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        return int(session.scalar(select(func.count()).select_from(FeedbackRow)) or 0)


def body(pid: str, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "prediction_id": pid,
        "verdict": "wrong_diagnosis",
        "corrected_diagnosis": "pneumonia",
        "clinician_id": "clin-01",
        "reason": "crackles, CRP 140",
    }
    for key, value in overrides.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


BAD_INPUTS = [
    ("missing verdict", {"verdict": None}, "verdict", "is required"),
    ("verdict outside the enum", {"verdict": "maybe"}, "verdict", "must be one of"),
    (
        "unknown diagnosis class",
        {"corrected_diagnosis": "flu"},
        "corrected_diagnosis",
        "unknown class",
    ),
    (
        "unknown treatment class",
        {"verdict": "both_wrong", "corrected_treatment": "leeches"},
        "corrected_treatment",
        "unknown class",
    ),
    (
        "corrected label on a correct verdict",
        {"verdict": "correct"},
        "corrected_diagnosis",
        "must be absent",
    ),
    (
        "wrong_diagnosis without its correction",
        {"corrected_diagnosis": None},
        "corrected_diagnosis",
        "is required",
    ),
    (
        "wrong_treatment with a diagnosis correction",
        {"verdict": "wrong_treatment", "corrected_treatment": "oral_antibiotics"},
        "corrected_diagnosis",
        "must be absent",
    ),
    (
        "both_wrong without the treatment",
        {"verdict": "both_wrong"},
        "corrected_treatment",
        "is required",
    ),
    ("oversize reason", {"reason": "x" * 1001}, "reason", "at most 1000"),
    ("missing clinician id", {"clinician_id": None}, "clinician_id", "is required"),
    (
        "clinician id with spaces",
        {"clinician_id": "Dr John Smith"},
        "clinician_id",
        "should match pattern",
    ),
    ("clinician id too long", {"clinician_id": "c" * 129}, "clinician_id", "at most 128"),
    ("unknown field", {"patient_name": "Jane"}, "patient_name", "unknown field"),
    ("missing prediction id", {"prediction_id": None}, "prediction_id", "is required"),
    ("empty corrected code", {"corrected_diagnosis": ""}, "corrected_diagnosis", "at least 1"),
    # Control characters: PostgreSQL refuses a NUL in text (it answered 500), logs must not
    # carry terminal escapes.
    ("NUL in the reason", {"reason": "crackles\x00CRP 140"}, "reason", "U+0000 at position 8"),
    ("escape in the reason", {"reason": "\x1b[31mred"}, "reason", "U+001B"),
    ("NUL in the prediction id", {"prediction_id": "abc\x00def"}, "prediction_id", "U+0000"),
    (
        "NUL in a corrected code",
        {"corrected_diagnosis": "pneu\x00monia"},
        "corrected_diagnosis",
        "U+0000",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [case[1:] for case in BAD_INPUTS],
    ids=[c[0] for c in BAD_INPUTS],
)
def test_bad_feedback_is_a_clear_422_and_writes_nothing(
    app_client: TestClient, overrides: dict[str, Any], field: str, reason: str
) -> None:
    [pid] = add_predictions(app_client, audit_row())
    before = feedback_count(app_client)
    response = app_client.post("/feedback", json=body(pid, **overrides), headers=CLINICIAN)
    error = assert_error(response, 422, "validation_error")
    fields = {d["field"]: d["reason"] for d in error["details"]}
    assert field in fields, error
    assert reason in fields[field], fields[field]
    assert feedback_count(app_client) == before


def test_tabs_and_line_breaks_stay_allowed_in_the_reason(app_client: TestClient) -> None:
    [pid] = add_predictions(app_client, audit_row())
    reason = "crackles\tCRP 140\r\nlactate 4.1"
    response = app_client.post("/feedback", json=body(pid, reason=reason), headers=CLINICIAN)
    assert response.status_code == 201, response.text
    assert response.json()["reason"] == reason


def test_unknown_prediction_is_404(app_client: TestClient) -> None:
    response = app_client.post("/feedback", json=body(str(uuid.uuid4())), headers=CLINICIAN)
    error = assert_error(response, 404, "prediction_not_found")
    assert error["details"][0]["field"] == "prediction_id"


def test_body_that_is_not_json_is_422(app_client: TestClient) -> None:
    response = app_client.post("/feedback", content=b"verdict=correct", headers=CLINICIAN)
    assert_error(response, 422, "validation_error")


def test_confirming_an_abstention_is_422(app_client: TestClient) -> None:
    [pid] = add_predictions(
        app_client, audit_row(diagnosis_code=None, treatment_code=None, quality="insufficient")
    )
    response = app_client.post(
        "/feedback", headers=CLINICIAN, json=body(pid, verdict="correct", corrected_diagnosis=None)
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "verdict"


def test_feedback_is_stored_once_per_clinician(app_client: TestClient) -> None:
    [pid] = add_predictions(app_client, audit_row())
    first = app_client.post("/feedback", json=body(pid), headers=CLINICIAN)
    assert first.status_code == 201, first.text
    stored = first.json()
    assert stored["duplicate"] is False and stored["verdict"] == "wrong_diagnosis"
    assert stored["corrected_diagnosis"] == "pneumonia" and stored["prediction_id"] == pid
    repeat = app_client.post(
        "/feedback", json=body(pid, verdict="correct", corrected_diagnosis=None), headers=CLINICIAN
    )
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["id"] == stored["id"] and repeat.json()["duplicate"] is True
    assert repeat.json()["verdict"] == "wrong_diagnosis"  # the first write wins
    camel = {"predictionId": pid, "verdict": "correct", "clinicianId": "clin-02"}
    other = app_client.post("/feedback", json=camel, headers=CLINICIAN)
    assert other.status_code == 201 and other.json()["id"] != stored["id"]


def test_auth_and_roles(app_client: TestClient) -> None:
    [pid] = add_predictions(app_client, audit_row())
    assert_error(app_client.post("/feedback", json=body(pid)), 401, "unauthorized")
    assert_error(app_client.get("/feedback/export", headers=CLINICIAN), 403, "forbidden")
    assert app_client.get("/feedback/stats", headers=CLINICIAN).status_code == 200


def test_stats_and_export(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, retrain_min_feedback=3, retrain_error_rate=0.5)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        pids = add_predictions(
            client,
            *(audit_row() for _ in range(3)),
            audit_row(diagnosis_code="sepsis", treatment_code="sepsis_bundle_icu"),
        )
        sent = [
            body(pids[0]),
            body(pids[1], verdict="both_wrong", corrected_treatment="iv_antibiotics_admit"),
            body(pids[2], verdict="correct", corrected_diagnosis=None),
            body(
                pids[3],
                verdict="wrong_treatment",
                corrected_diagnosis=None,
                corrected_treatment="iv_antibiotics_admit",
            ),
        ]
        for payload in sent:
            assert client.post("/feedback", json=payload, headers=CLINICIAN).status_code == 201
        stats = client.get("/feedback/stats", headers=CLINICIAN).json()
        assert stats["total"] == 4
        assert stats["by_verdict"] == {
            "correct": 1,
            "wrong_diagnosis": 1,
            "wrong_treatment": 1,
            "both_wrong": 1,
        }
        assert stats["error_rate"] == pytest.approx(0.75)
        assert stats["per_diagnosis"]["viral_uri"] == {
            "n": 3,
            "errors": 2,
            "error_rate": pytest.approx(2 / 3),
        }
        assert stats["per_diagnosis"]["sepsis"]["errors"] == 0
        assert stats["per_treatment"]["sepsis_bundle_icu"]["errors"] == 1
        assert stats["last_training_at"] is None  # no model served: all feedback counts
        assert stats["since_last_training"] == 4
        assert stats["retraining_recommended"] is True, stats["recommendation_reason"]

        export = client.get("/feedback/export", headers=ADMIN)
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert [r["prediction_id"] for r in rows] == [pids[0], pids[1], pids[3]]
        assert list(rows[0])[: len(ED_COHORT.feature_names)] == list(ED_COHORT.feature_names)
        assert (rows[0]["diagnosis"], rows[0]["treatment"]) == ("pneumonia", "discharge_home")
        assert rows[1]["treatment"] == "iv_antibiotics_admit"
        assert (rows[2]["diagnosis"], rows[2]["treatment"]) == ("sepsis", "iv_antibiotics_admit")
        assert rows[0]["symptoms"] == "fever;cough" and rows[0]["copd"] == "0"
        with_confirmed = client.get("/feedback/export?include_confirmed=true", headers=ADMIN)
        assert len(list(csv.DictReader(io.StringIO(with_confirmed.text)))) == 4
