"""A real Prometheus server scrapes the running app on loopback and serves our series."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.factories import cohort_payloads, make_patient
from tests.integration._monitoring import (
    CLINICIAN,
    ModelStore,
    Prometheus,
    app_env,
    model_store,  # noqa: F401 (fixture)
    running_app,
    running_prometheus,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
N_PREDICTIONS = 12
JOB = "healthpredict-api"


def value(result: list[dict]) -> float:
    return sum(float(r["value"][1]) for r in result)


def test_prometheus_scrapes_our_series(model_store: ModelStore, tmp_path: Path) -> None:  # noqa: F811
    env = app_env(model_store, tmp_path)
    with running_app(env, tmp_path / "app.log") as app:
        base = app.base
        target = base.removeprefix("http://")
        with running_prometheus(target, tmp_path) as prom:
            wait_for(lambda: value(prom.query(f'up{{job="{JOB}"}}')) == 1, 60, "a first scrape")
            payloads = cohort_payloads(model_store.data_path, N_PREDICTIONS, seed=3)
            assert len(payloads) == N_PREDICTIONS
            half = N_PREDICTIONS // 2
            # Two halves with a scrape in between, so rate() over the counters is not zero.
            diagnoses, version = predict(base, payloads[:half])
            wait_for(
                lambda: value(prom.query("sum(healthpredict_predictions_total)")) >= half,
                60,
                "Prometheus to scrape the first predictions",
            )
            more, version = predict(base, payloads[half:])
            diagnoses += more
            bad = httpx.post(
                f"{base}/predict", json=make_patient(heart_rate=999), headers=CLINICIAN
            )
            assert bad.status_code == 422
            wait_for(
                lambda: (
                    value(prom.query("sum(healthpredict_predictions_total)")) >= N_PREDICTIONS
                    and value(prom.query('sum(healthpredict_http_requests_total{status="422"})'))
                ),
                60,
                "Prometheus to scrape every prediction",
            )
            check_series(prom, target, version, diagnoses)


def predict(base: str, payloads: list[dict]) -> tuple[Counter[str], str]:
    """POST each payload; the count of predicted diagnoses and the model version."""
    diagnoses: Counter[str] = Counter()
    version = ""
    for payload in payloads:
        response = httpx.post(f"{base}/predict", json=payload, headers=CLINICIAN)
        assert response.status_code == 200, response.text
        body = response.json()
        diagnoses[body["diagnosis"]["code"] if body["diagnosis"] else "none"] += 1
        version = body["model"]["diagnosis_version"]
    return diagnoses, version


def check_series(prom: Prometheus, target: str, version: str, diagnoses: Counter[str]) -> None:
    up = prom.query(f'up{{job="{JOB}"}}')
    assert [(r["metric"]["instance"], r["value"][1]) for r in up] == [(target, "1")]

    predictions = prom.query("healthpredict_predictions_total")
    scraped: Counter[str] = Counter()
    for series in predictions:
        labels = series["metric"]
        assert labels["job"] == JOB and labels["instance"] == target
        assert labels["model_version"] == version
        assert {"diagnosis", "treatment"} <= set(labels)
        scraped[labels["diagnosis"]] += int(float(series["value"][1]))
    assert scraped == diagnoses

    requests = 'healthpredict_http_requests_total{route="/predict",method="POST",status="%s"}'
    assert value(prom.query(requests % "200")) == N_PREDICTIONS
    assert value(prom.query(requests % "422")) == 1
    assert prom.query('healthpredict_http_requests_total{route="/predict/{x}"}') == []

    quality = prom.query("sum(healthpredict_prediction_quality_total)")
    assert value(quality) == N_PREDICTIONS

    info = prom.query("healthpredict_model_info == 1")
    assert {(r["metric"]["name"], r["metric"]["source"]) for r in info} == {
        ("healthpredict-diagnosis", "mlflow"),
        ("healthpredict-treatment", "mlflow"),
    }
    assert (
        value(prom.query('healthpredict_model_load_duration_seconds_count{source="mlflow"}')) >= 1
    )

    p99 = prom.query(
        "histogram_quantile(0.99, sum by (le) "
        '(rate(healthpredict_http_request_duration_seconds_bucket{route="/predict"}[1m])))'
    )
    assert p99 and 0 < float(p99[0]["value"][1]) < 10
    stages = {
        r["metric"]["stage"] for r in prom.query("healthpredict_stage_duration_seconds_count")
    }
    assert {"diagnosis", "treatment"} <= stages
