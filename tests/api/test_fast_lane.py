"""`POST /predict` through the fast lane answers exactly as through Starlette's full stack.

One app with a trained model; each request is sent twice, with ``app.fast_lane`` on and off,
under the same ``X-Request-ID``: status, headers and body must match (the prediction id aside),
and the metrics, the access log and the audit trail must see both alike.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.fast_lane import FastLaneApp
from app.main import create_app
from app.monitoring import metrics
from app.settings import DEFAULT_ADMIN_KEY, Settings
from app.store.repository import get_prediction
from tests.api.conftest import CLINICIAN
from tests.api.test_direct_route import CASES
from tests.factories import cohort_payloads


@pytest.fixture(scope="module")
def payloads(trained_store: Any) -> list[dict[str, Any]]:
    return cohort_payloads(trained_store.data_path, 24, seed=5)


@pytest.fixture(scope="module")
def lane_client(trained_settings: Settings) -> Iterator[TestClient]:
    app = create_app(trained_settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def app_of(client: TestClient) -> FastLaneApp:
    app = client.app
    assert isinstance(app, FastLaneApp)
    return app


def both(client: TestClient, **kwargs: Any) -> tuple[httpx.Response, httpx.Response]:
    """The same request through the lane, then the normal path."""
    app = app_of(client)
    answers = []
    for lane in (True, False):
        app.fast_lane = lane
        try:
            answers.append(client.post("/predict", **kwargs))
        finally:
            app.fast_lane = True
    assert app.lane_route is not None, "the lane was not built"
    return answers[0], answers[1]


def same(lane: httpx.Response, normal: httpx.Response) -> None:
    assert lane.status_code == normal.status_code, (lane.text, normal.text)
    a, b = lane.json(), normal.json()
    if isinstance(a, dict) and "prediction_id" in a:
        assert a.pop("prediction_id") != b.pop("prediction_id")
    assert a == b
    assert dict(lane.headers) == dict(normal.headers)


def test_predictions_identical(lane_client: TestClient, payloads: list[dict[str, Any]]) -> None:
    for i, payload in enumerate(payloads[:20]):
        headers = {**CLINICIAN, "X-Request-ID": f"lane-{i}"}
        lane, normal = both(lane_client, json=payload, headers=headers)
        assert lane.status_code == 200
        same(lane, normal)


def test_explanations_identical(lane_client: TestClient, payloads: list[dict[str, Any]]) -> None:
    payload = payloads[20]
    headers = {**CLINICIAN, "X-Request-ID": "explain"}
    lane, normal = both(lane_client, json=payload, headers=headers, params={"explain": "true"})
    assert lane.json()["explanation"]
    same(lane, normal)


@pytest.mark.parametrize("name", list(CASES))
def test_errors_identical(lane_client: TestClient, name: str) -> None:
    case = CASES[name]
    headers = {**CLINICIAN, "X-Request-ID": "err", **case.get("headers", {})}
    kwargs: dict[str, Any] = {"headers": headers, "params": case.get("params")}
    if "json" in case:
        kwargs["json"] = case["json"]
    else:
        kwargs["content"] = case["content"]
    same(*both(lane_client, **kwargs))


@pytest.mark.parametrize(
    "key", [{}, {"X-API-Key": "nope"}, {"X-API-Key": DEFAULT_ADMIN_KEY}], ids=str
)
def test_auth_answers_identical(
    lane_client: TestClient, payloads: list[dict[str, Any]], key: dict[str, str]
) -> None:
    payload = payloads[21]
    same(*both(lane_client, json=payload, headers={**key, "X-Request-ID": "auth"}))


def test_body_too_large_identical(lane_client: TestClient) -> None:
    limit = app_of(lane_client).state.settings.batch_max_size * 4096 + 64 * 1024
    body = b'{"age": ' + b" " * limit + b"50}"
    headers = {**CLINICIAN, "X-Request-ID": "big", "Content-Type": "application/json"}
    lane, normal = both(lane_client, content=body, headers=headers)
    assert lane.status_code == 413
    same(lane, normal)


def test_unhandled_error_identical(
    lane_client: TestClient, payloads: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault inside the handler: the app's 500 handler answers on both paths."""

    async def broken(record: Any) -> Any:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(app_of(lane_client).state.batcher, "submit", broken)
    payload = payloads[22]
    lane, normal = both(lane_client, json=payload, headers={**CLINICIAN, "X-Request-ID": "500"})
    assert lane.status_code == 500
    same(lane, normal)


def test_metrics_access_log_and_audit_see_both(
    lane_client: TestClient, payloads: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    m = metrics.current()
    ok = m.http_requests.labels("POST", "/predict", "200")
    before = ok._value.get()
    unmatched = m.http_requests.labels("POST", metrics.UNMATCHED_ROUTE, "200")._value.get()
    payload = payloads[23]
    with caplog.at_level(logging.INFO, logger="app.access"):
        lane, normal = both(lane_client, json=payload, headers=CLINICIAN)
    assert ok._value.get() - before == 2
    assert m.http_requests.labels("POST", metrics.UNMATCHED_ROUTE, "200")._value.get() == unmatched
    routes = [r.route for r in caplog.records if getattr(r, "route", None)]
    assert routes[-2:] == ["/predict", "/predict"]
    state = app_of(lane_client).state
    assert lane_client.portal is not None
    lane_client.portal.call(state.audit.flush)
    with state.sessionmaker() as session:
        for answer in (lane, normal):
            row = get_prediction(session, answer.json()["prediction_id"])
            assert row is not None and row.outputs == answer.json()
