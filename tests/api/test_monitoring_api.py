"""Monitoring routes over HTTP: importance, explanations, drift errors, `/metrics` protection."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.monitoring import metrics
from tests.api.conftest import CLINICIAN, assert_error, client_for, make_settings
from tests.factories import make_patient
from train_pipeline.contract import ED_COHORT


def test_importance_is_the_training_importance_largest_first(client: TestClient) -> None:
    response = client.get("/models/importance", headers=CLINICIAN)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["run_id"] == client.get("/models", headers=CLINICIAN).json()["run_id"]
    values = [item["importance"] for item in body["importance"]]
    assert values == sorted(values, reverse=True) and values[0] > 0
    assert {item["feature"] for item in body["importance"]} <= set(ED_COHORT.feature_names)


def test_explain_true_adds_top_contributions_in_contract_names(client: TestClient) -> None:
    plain = client.post("/predict", json=make_patient(), headers=CLINICIAN).json()
    assert plain["explanation"] is None
    response = client.post("/predict?explain=true", json=make_patient(), headers=CLINICIAN)
    assert response.status_code == 200, response.text
    explanation = response.json()["explanation"]
    assert explanation and len(explanation) <= 5
    assert {e["feature"] for e in explanation} <= set(ED_COHORT.feature_names)
    sizes = [abs(e["contribution"]) for e in explanation]
    assert sizes == sorted(sizes, reverse=True)
    patient = make_patient()
    for e in explanation:
        if e["feature"] in patient and isinstance(e["value"], (int, float)):
            assert e["value"] == pytest.approx(patient[e["feature"]])


@pytest.mark.parametrize(
    ("path", "code"),
    [("/models/importance", "model_not_ready"), ("/monitoring/drift", "drift_unavailable")],
)
def test_degraded_service_answers_503_in_the_error_shape(
    degraded_client: TestClient, path: str, code: str
) -> None:
    assert_error(degraded_client.get(path, headers=CLINICIAN), 503, code)


def test_drift_needs_an_api_key(degraded_client: TestClient) -> None:
    assert_error(degraded_client.get("/monitoring/drift"), 401, "unauthorized")


def test_drift_format_is_validated(degraded_client: TestClient) -> None:
    response = degraded_client.get("/monitoring/drift?format=pdf", headers=CLINICIAN)
    assert_error(response, 422, "validation_error")


@pytest.fixture
def protected_client(tmp_path: Path) -> Iterator[TestClient]:
    yield from client_for(make_settings(tmp_path, metrics_protected=True))


def test_metrics_can_require_a_key(
    protected_client: TestClient, degraded_client: TestClient
) -> None:
    assert_error(protected_client.get("/metrics"), 401, "unauthorized")
    response = protected_client.get("/metrics", headers=CLINICIAN)
    assert response.status_code == 200
    assert "healthpredict_http_requests_total" in response.text
    assert degraded_client.get("/metrics").status_code == 200  # open by default


def test_requests_are_counted_by_route_template(degraded_client: TestClient) -> None:
    metrics.reset_for_tests()
    degraded_client.get("/monitoring/drift", headers=CLINICIAN)
    text = degraded_client.get("/metrics").text
    assert (
        'healthpredict_http_requests_total{method="GET",route="/monitoring/drift",status="503"} 1.0'
        in text
    )
