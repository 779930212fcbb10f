"""The service call and its feedback, through the real app and the session's trained bundle."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.settings import Settings
from app.store import db, repository
from app.store.tables import FeedbackRow, PredictionRow
from tests.api.conftest import CLINICIAN, assert_error
from tests.cds import fhir_data as fd
from tests.cds.conftest import SERVICE_URL, TokenFactory, bearer

FEEDBACK_URL = f"{SERVICE_URL}/feedback"
Call = Callable[[dict[str, Any]], Any]


def _predict(client: TestClient, record: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/predict?explain=true", json=record, headers=CLINICIAN)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _audit_row(settings: Settings, prediction_id: str) -> PredictionRow:
    """The audit row, once the write-behind writer stored it (within 10 s)."""
    engine = db.make_engine(settings.database_url)
    try:
        for _ in range(200):
            with db.make_sessionmaker(engine)() as session:
                row = session.get(PredictionRow, prediction_id)
                if row is not None:
                    session.expunge(row)
                    return row
            time.sleep(0.05)
        raise AssertionError(f"no audit row {prediction_id}")
    finally:
        engine.dispose()


def _feedback_rows(settings: Settings, prediction_id: str) -> list[FeedbackRow]:
    engine = db.make_engine(settings.database_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            stmt = select(FeedbackRow).where(FeedbackRow.prediction_id == prediction_id)
            rows = list(session.scalars(stmt))
            session.expunge_all()
            return rows
    finally:
        engine.dispose()


def _card(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    response = call(body)
    assert response.status_code == 200, response.text
    cards = response.json()["cards"]
    assert cards
    return cards[0]  # type: ignore[no-any-return]


def test_same_patient_as_fhir_and_as_json_gets_the_same_answer(
    call: Call, cds_client: TestClient, cds_settings: Settings
) -> None:
    card = _card(call, fd.hook_request())
    direct = _predict(cds_client, fd.PNEUMONIA_RECORD)
    row = _audit_row(cds_settings, card["uuid"])
    assert row.inputs == _audit_row(cds_settings, direct["prediction_id"]).inputs
    outputs = row.outputs
    for key in ("diagnosis", "treatment", "prediction_quality", "news2", "warnings", "explanation"):
        assert outputs[key] == direct[key], key
    assert outputs["cds"] == {
        "user_id": "Practitioner/example",
        "hook_instance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    }
    diagnosis, treatment = direct["diagnosis"], direct["treatment"]
    assert card["summary"].startswith(diagnosis["label"])
    assert f"{diagnosis['probability'] * 100:.0f} %" in card["summary"]
    assert treatment["label"] in card["summary"]
    assert len(card["summary"]) < 140


def test_units_converted_from_fhir_give_the_same_answer_as_canonical_json(call: Call) -> None:
    converted = fd.pneumonia_observations()
    converted[2] = fd.observation("8310-5", 102.02, "[degF]")  # 38.9 °C
    converted[7] = fd.observation("2345-7", 129.7152, "mg/dL", category=fd.LAB)  # 7.2 mmol/L
    converted[8] = fd.observation("6690-2", 16.5, "10*3/uL", category=fd.LAB)
    converted[9] = fd.observation("1988-5", 18.0, "mg/dL", category=fd.LAB)  # 180 mg/L
    prefetch = fd.pneumonia_prefetch()
    canonical = _card(call, fd.hook_request(prefetch))
    prefetch["observations"] = fd.bundle(converted)
    from_units = _card(call, fd.hook_request(prefetch))
    assert from_units["summary"] == canonical["summary"]
    assert from_units["indicator"] == canonical["indicator"]


def test_the_card_says_what_it_rests_on(call: Call) -> None:
    card = _card(call, fd.hook_request())
    assert card["indicator"] in ("info", "warning", "critical")
    assert card["source"]["label"].startswith("HealthPredict (diagnosis model v")
    assert "**Warnings**" in card["detail"]
    assert "SpO2" in card["detail"]
    assert "**Main factors**" in card["detail"]
    assert "(weighs for " in card["detail"] or "(weighs against " in card["detail"]
    assert card["selectionBehavior"] == "at-most-one"
    codes = [r["code"] for r in card["overrideReasons"]]
    assert codes[-3:] == ["wrong-diagnosis", "wrong-treatment", "other"]
    assert codes[:-3] and all(c.startswith("diagnosis-is-") for c in codes[:-3])
    assert all(r["display"] and r["system"] for r in card["overrideReasons"])


def test_hypoxic_hypotensive_patient_is_a_critical_card(call: Call) -> None:
    observations = fd.pneumonia_observations()
    observations[3] = fd.observation("59408-5", 84, "%")
    observations[4] = fd.bp_panel(84, 50)
    prefetch = fd.pneumonia_prefetch() | {"observations": fd.bundle(observations)}
    assert _card(call, fd.hook_request(prefetch))["indicator"] == "critical"


def test_unusable_observation_is_named_and_counts_as_missing(call: Call) -> None:
    observations = fd.pneumonia_observations()
    observations[2] = fd.observation("8310-5", 312.0, "K", display="Body temperature")
    observations[0]["status"] = "entered-in-error"
    prefetch = fd.pneumonia_prefetch() | {"observations": fd.bundle(observations)}
    card = _card(call, fd.hook_request(prefetch))
    assert (
        "Body temperature (LOINC 8310-5): not used, unit 'K' cannot be converted"
        in (card["detail"])
    )
    assert "Body temperature: not available" in card["detail"]
    assert "Heart rate: not available" in card["detail"]
    assert "Prediction quality: low." in card["detail"]


def test_insufficient_data_is_an_info_card_without_a_diagnosis(call: Call) -> None:
    only_hr = fd.bundle([fd.observation("8867-4", 90, "/min")])
    card = _card(call, fd.hook_request(fd.pneumonia_prefetch() | {"observations": only_hr}))
    assert card["indicator"] == "info"
    assert card["summary"] == "HealthPredict: not enough data for a diagnosis"
    assert "proposes no diagnosis" in card["detail"]
    assert "suggestions" not in card and "overrideReasons" not in card
    assert card["uuid"]  # audited like any prediction


def test_observations_null_means_no_data_not_a_412(call: Call) -> None:
    card = _card(call, fd.hook_request(fd.pneumonia_prefetch() | {"observations": None}))
    assert card["summary"] == "HealthPredict: not enough data for a diagnosis"


def test_a_child_cannot_be_assessed(call: Call) -> None:
    prefetch = fd.pneumonia_prefetch() | {"patient": fd.patient(birth_date="2015-01-01")}
    card = _card(call, fd.hook_request(prefetch))
    assert card["summary"] == "HealthPredict cannot assess this patient"
    assert "Patient.birthDate" in card["detail"]
    assert "uuid" not in card


@pytest.mark.parametrize(
    "prefetch",
    [
        {},
        {"patient": fd.patient()},
        {"observations": fd.bundle([])},
        {"patient": None, "observations": fd.bundle([])},
        {
            "patient": {"resourceType": "OperationOutcome", "issue": []},
            "observations": fd.bundle([]),
        },
    ],
    ids=["nothing", "no-observations", "no-patient", "patient-null", "operation-outcome"],
)
def test_data_that_cannot_be_had_is_412(call: Call, prefetch: dict[str, Any]) -> None:
    error = assert_error(call(fd.hook_request(prefetch)), 412, "precondition_failed")
    assert {d["field"] for d in error["details"]} <= {"prefetch.patient", "prefetch.observations"}


def test_a_patient_other_than_the_context_one_is_never_used(call: Call) -> None:
    prefetch = fd.pneumonia_prefetch()
    prefetch["patient"]["id"] = "someone-else"
    error = assert_error(call(fd.hook_request(prefetch)), 412, "precondition_failed")
    assert error["details"][0]["reason"] == "Patient.id is not context.patientId"


def test_a_body_that_is_not_a_hook_request_is_422(call: Call) -> None:
    assert_error(call({"hook": "patient-view"}), 422, "validation_error")
    assert_error(call(fd.hook_request(hook="order-sign")), 422, "validation_error")


def _feedback(client: TestClient, make_token: TokenFactory, items: list[dict[str, Any]]) -> Any:
    headers = bearer(make_token(FEEDBACK_URL))
    return client.post(
        "/cds-services/healthpredict-ed-triage/feedback", json={"feedback": items}, headers=headers
    )


def test_feedback_lands_in_the_feedback_table_as_the_hook_user(
    call: Call, cds_client: TestClient, make_token: TokenFactory, cds_settings: Settings
) -> None:
    accepted = _card(call, fd.hook_request())["uuid"]
    overridden = _card(call, fd.hook_request())["uuid"]
    other = _card(call, fd.hook_request())["uuid"]
    reason = {
        "code": "wrong-diagnosis",
        "system": "https://healthpredict.example/cds/override-reason",
    }
    items = [
        {
            "card": accepted,
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "x"}],
            "outcomeTimestamp": "2026-11-30T09:20:00Z",
        },
        {
            "card": overridden,
            "outcome": "overridden",
            "overrideReason": {"reason": reason, "userComment": "Looks like a PE to me"},
            "outcomeTimestamp": "2026-11-30T09:21:00Z",
        },
        {"card": other, "outcome": "overridden", "outcomeTimestamp": "2026-11-30T09:22:00Z"},
    ]
    response = _feedback(cds_client, make_token, items)
    assert response.status_code == 200, response.text
    assert [r["verdict"] for r in response.json()["feedback"]] == [
        "correct",
        "wrong_diagnosis",
        None,
    ]
    (row,) = _feedback_rows(cds_settings, accepted)
    assert (row.verdict, row.clinician_id) == ("correct", "Practitioner/example")
    (row,) = _feedback_rows(cds_settings, overridden)
    assert (row.verdict, row.reason) == ("wrong_diagnosis", "Looks like a PE to me")
    assert _feedback_rows(cds_settings, other) == []
    again = _feedback(cds_client, make_token, items[:1])  # a repeat is idempotent
    assert again.json()["feedback"][0]["stored"] is False
    assert len(_feedback_rows(cds_settings, accepted)) == 1
    stats = cds_client.get("/feedback/stats", headers=CLINICIAN).json()
    assert stats["by_verdict"]["wrong_diagnosis"] >= 1


def test_feedback_on_an_unknown_card_is_404_and_stores_nothing(
    call: Call, cds_client: TestClient, make_token: TokenFactory, cds_settings: Settings
) -> None:
    known = _card(call, fd.hook_request())["uuid"]
    direct = _predict(cds_client, fd.PNEUMONIA_RECORD)["prediction_id"]  # not a card
    items = [
        {"card": c, "outcome": "accepted", "outcomeTimestamp": "2026-11-30T09:20:00Z"}
        for c in (known, "4e0a3a1e-3283-4575-ab82-028d55fe2719", direct)
    ]
    error = assert_error(_feedback(cds_client, make_token, items), 404, "card_not_found")
    assert [d["value"] for d in error["details"]] == [items[1]["card"], direct]
    assert _feedback_rows(cds_settings, known) == []


def test_an_override_naming_another_diagnosis_is_a_training_row(
    call: Call, cds_client: TestClient, make_token: TokenFactory, cds_settings: Settings
) -> None:
    card = _card(call, fd.hook_request())
    reason = card["overrideReasons"][0]  # the second most probable diagnosis
    corrected = reason["code"].removeprefix("diagnosis-is-")
    item = {
        "card": card["uuid"],
        "outcome": "overridden",
        "overrideReason": {"reason": reason},
        "outcomeTimestamp": "2026-11-30T09:20:00Z",
    }
    response = _feedback(cds_client, make_token, [item])
    assert response.json()["feedback"][0]["verdict"] == "wrong_diagnosis"
    (row,) = _feedback_rows(cds_settings, card["uuid"])
    assert (row.verdict, row.corrected_diagnosis) == ("wrong_diagnosis", corrected)
    engine = db.make_engine(cds_settings.database_url)
    try:
        with db.make_sessionmaker(engine)() as session:
            rows = repository.corrected_rows(session)
    finally:
        engine.dispose()
    (training,) = [r for r in rows if r["prediction_id"] == card["uuid"]]
    assert training["diagnosis"] == corrected
    assert training["heart_rate"] == 112.0
