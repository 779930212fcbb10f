"""Monitoring routes over HTTP: importance, explanations, drift (report, errors), `/metrics`
protection."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.monitoring import metrics
from app.monitoring.drift import DriftSummary
from app.monitoring.monitor import DriftUnavailableError
from tests.api.conftest import CLINICIAN, assert_error, client_for, make_settings
from tests.factories import cohort_payloads, make_patient
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


def test_drift_report_comes_from_a_child_process_as_json_and_html(
    tmp_path: Path, trained_store: Any
) -> None:
    """Own app and store: the window is exactly the 40 inputs posted here."""
    settings = make_settings(
        tmp_path,
        mlflow_tracking_uri=trained_store.tracking_uri,
        bentoml_home=Path(trained_store.bentoml_home),
        mlflow_timeout_s=30.0,
        drift_min_window=30,
    )
    records = cohort_payloads(Path(trained_store.data_path), 40, seed=3)
    with TestClient(create_app(settings)) as client:
        state = client.app.state  # type: ignore[attr-defined]
        few = client.post("/predict/batch", json={"records": records[:20]}, headers=CLINICIAN)
        assert few.status_code == 200, few.text
        client.portal.call(state.audit.flush)  # type: ignore[union-attr]
        with pytest.raises(DriftUnavailableError, match="not enough data: 20 live inputs"):
            client.portal.call(state.drift.refresh)  # what the background loop runs
        response = client.post("/predict/batch", json={"records": records[20:]}, headers=CLINICIAN)
        assert response.status_code == 200, response.text
        client.portal.call(state.audit.flush)  # type: ignore[union-attr]
        client.portal.call(state.drift.refresh)  # the background refresh, run now
        response = client.get("/monitoring/drift", headers=CLINICIAN)
        assert response.status_code == 200, response.text
        body = response.json()
        child = state.drift.worker.pid
        page = client.get("/monitoring/drift", params={"format": "html"}, headers=CLINICIAN)
        state.drift.latest_result = None  # as if no refresh had run: a request never computes
        unrefreshed = client.get("/monitoring/drift", params={"format": "html"}, headers=CLINICIAN)
    assert_error(unrefreshed, 503, "drift_unavailable")
    assert child is not None and child != os.getpid()
    assert set(body) == {f.name for f in dataclasses.fields(DriftSummary)}
    assert (body["window_size"], body["run_id"]) == (40, trained_store.run_id)
    assert body["n_features"] == len(body["features"]) > 0
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="healthpredict-drift-summary"' in page.text
    assert f"computed {body['computed_at']}" in page.text  # the same cached report
    assert state.drift.worker.pid is None  # the lifespan's end stopped the child


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
