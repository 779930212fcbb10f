"""Metrics module: middleware labels, recording helpers and the `/metrics` exposition."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.deps import require_role
from app.errors import install_error_handlers
from app.monitoring import metrics, wiring
from app.security.api_keys import ApiKeyStore
from app.security.rate_limit import TokenBucketLimiter
from app.settings import Settings


@pytest.fixture(autouse=True)
def fresh_metrics() -> Iterator[metrics.Metrics]:
    yield metrics.reset_for_tests()
    metrics.reset_for_tests()


def _toy_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/retrain/{job_id}")
    def read_job(job_id: str) -> dict[str, str]:
        return {"job_id": job_id}

    @app.post("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    wiring.install(app, settings or Settings(metrics_protected=False))
    return app


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(text: str, metric: str, **labels: str) -> float:
    return _samples(text).get((metric, frozenset(labels.items())), 0.0)


def test_requests_are_labelled_by_route_template_not_raw_path() -> None:
    client = TestClient(_toy_app())
    for job in ("a1", "b2", "c3"):
        assert client.get(f"/retrain/{job}").status_code == 200
    text = client.get("/metrics").text
    assert (
        _value(
            text,
            "healthpredict_http_requests_total",
            method="GET",
            route="/retrain/{job_id}",
            status="200",
        )
        == 3
    )
    assert "/retrain/a1" not in text
    assert (
        _value(
            text,
            "healthpredict_http_request_duration_seconds_count",
            method="GET",
            route="/retrain/{job_id}",
        )
        == 3
    )


def test_unmatched_paths_share_one_label_and_errors_count_as_500() -> None:
    client = TestClient(_toy_app(), raise_server_exceptions=False)
    for path in ("/nope", "/other/thing", "/x/y/z"):
        assert client.get(path).status_code == 404
    assert client.post("/boom").status_code == 500
    text = client.get("/metrics").text
    assert (
        _value(
            text,
            "healthpredict_http_requests_total",
            method="GET",
            route="<unmatched>",
            status="404",
        )
        == 3
    )
    assert (
        _value(
            text, "healthpredict_http_requests_total", method="POST", route="/boom", status="500"
        )
        == 1
    )
    assert _value(text, "healthpredict_http_requests_in_flight") == 1  # the scrape itself


def test_method_not_allowed_keeps_the_template() -> None:
    client = TestClient(_toy_app())
    assert client.delete("/retrain/x").status_code == 405
    text = client.get("/metrics").text
    assert (
        _value(
            text,
            "healthpredict_http_requests_total",
            method="DELETE",
            route="/retrain/{job_id}",
            status="405",
        )
        == 1
    )


def test_recording_helpers_export_expected_series() -> None:
    metrics.observe_prediction("pneumonia", "iv_antibiotics_admit", "high", "3")
    metrics.observe_prediction(None, None, "insufficient", "3")
    metrics.observe_stage("predict", 0.002)
    metrics.observe_model_load("mlflow", 1.5)
    metrics.count_fallback("mlflow_timeout")
    metrics.fast_path_disabled("oblivious")
    metrics.fast_path_disabled("oblivious")
    metrics.count_feedback("correct")
    metrics.set_audit_queue_depth(7)
    metrics.set_drift(0.25, 4)
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert (
        _value(
            text,
            "healthpredict_predictions_total",
            model_version="3",
            diagnosis="pneumonia",
            treatment="iv_antibiotics_admit",
        )
        == 1
    )
    assert (
        _value(
            text,
            "healthpredict_predictions_total",
            model_version="3",
            diagnosis="none",
            treatment="none",
        )
        == 1
    )
    assert _value(text, "healthpredict_prediction_quality_total", quality="insufficient") == 1
    assert _value(text, "healthpredict_stage_duration_seconds_count", stage="predict") == 1
    assert _value(text, "healthpredict_model_load_duration_seconds_sum", source="mlflow") == 1.5
    assert _value(text, "healthpredict_model_fallbacks_total", reason="mlflow_timeout") == 1
    assert _value(text, "healthpredict_fast_path_disabled_total", path="oblivious") == 2
    assert _value(text, "healthpredict_feedback_total", verdict="correct") == 1
    assert _value(text, "healthpredict_audit_queue_depth") == 7
    assert _value(text, "healthpredict_drift_share") == 0.25
    assert _value(text, "healthpredict_drifted_features") == 4


def test_model_info_moves_to_the_new_version() -> None:
    metrics.set_model_info("diagnosis", "1", "bentoml")
    metrics.set_model_info("treatment", "1", "bentoml")
    metrics.set_model_info("diagnosis", "2", "mlflow")
    text = metrics.render()[0].decode()
    info = "healthpredict_model_info"
    assert _value(text, info, name="diagnosis", version="2", source="mlflow") == 1
    assert _value(text, info, name="diagnosis", version="1", source="bentoml") == 0
    assert _value(text, info, name="treatment", version="1", source="bentoml") == 1


def test_time_stage_records_even_when_the_block_raises() -> None:
    with pytest.raises(ValueError), metrics.time_stage("explain"):
        raise ValueError("x")
    text = metrics.render()[0].decode()
    assert _value(text, "healthpredict_stage_duration_seconds_count", stage="explain") == 1


def test_reset_for_tests_zeroes_counters() -> None:
    metrics.count_feedback("wrong_diagnosis")
    metrics.fast_path_disabled("oblivious")
    metrics.reset_for_tests()
    text = metrics.render()[0].decode()
    assert _value(text, "healthpredict_feedback_total", verdict="wrong_diagnosis") == 0
    assert _value(text, "healthpredict_fast_path_disabled_total", path="oblivious") == 0


def test_fast_path_disabled_sums_over_worker_processes(tmp_path: Path) -> None:
    """Multiprocess mode: two processes count, a third one's exposition has the sum."""
    env = os.environ | {metrics.MULTIPROC_ENV: str(tmp_path)}
    count = "from app.monitoring import metrics; metrics.fast_path_disabled('oblivious')"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=120)
    show = "from app.monitoring import metrics; print(metrics.render()[0].decode())"
    out = subprocess.run(
        [sys.executable, "-c", show], env=env, check=True, timeout=120, capture_output=True
    )
    text = out.stdout.decode()
    assert _value(text, "healthpredict_fast_path_disabled_total", path="oblivious") == 2


def test_protected_metrics_need_the_auth_dependency() -> None:
    app = FastAPI()
    with pytest.raises(ValueError, match="auth dependency"):
        wiring.install(app, Settings(metrics_protected=True))
    wiring.install(app, Settings(metrics_protected=True), auth=require_role("clinician"))
    install_error_handlers(app)
    app.state.settings = Settings()
    app.state.api_keys = ApiKeyStore.from_spec("k1:clinician")
    app.state.rate_limiter = TokenBucketLimiter(60)
    client = TestClient(app, raise_server_exceptions=False)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": "k1"}).status_code == 200


def test_nested_router_prefixes_are_part_of_the_template() -> None:
    from fastapi import APIRouter

    inner = APIRouter(prefix="/retrain")

    @inner.get("/{job_id}")
    def read_job(job_id: str) -> dict[str, str]:
        return {"job_id": job_id}

    outer = APIRouter(prefix="/v1")
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer)
    wiring.install(app, Settings())
    client = TestClient(app)
    assert client.get("/v1/retrain/abc").status_code == 200
    text = client.get("/metrics").text
    assert (
        _value(
            text,
            "healthpredict_http_requests_total",
            method="GET",
            route="/v1/retrain/{job_id}",
            status="200",
        )
        == 1
    )
