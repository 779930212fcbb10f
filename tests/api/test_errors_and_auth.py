"""Error shape on every path (404, 405, 500, 401, 403, 429, 503), request ids, open routes,
auth switches and the OpenAPI document's truthfulness."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.security.api_keys import digest
from tests.api.conftest import ADMIN, CLINICIAN, assert_error, make_settings
from tests.factories import make_patient


def test_unknown_route_and_method(degraded_client: TestClient) -> None:
    assert_error(degraded_client.get("/nowhere"), 404, "not_found")
    assert_error(degraded_client.delete("/predict", headers=CLINICIAN), 405, "method_not_allowed")


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/feedback"])
def test_a_body_that_is_not_utf8_is_one_422(degraded_client: TestClient, path: str) -> None:
    # FastAPI answers 400 "There was an error parsing the body"; malformed JSON is a 422.
    response = degraded_client.post(
        path,
        content=b'{"reason": "caf\xe9"}',
        headers={**CLINICIAN, "content-type": "application/json"},
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"] == [
        {
            "field": "body",
            "value": None,
            "reason": "JSON must be UTF-8: byte 0xe9 at position 15 is not",
        }
    ]


def test_request_id_is_echoed_or_generated(degraded_client: TestClient) -> None:
    echoed = degraded_client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = degraded_client.get("/health/live", headers={"X-Request-ID": "bad id\twith tab"})
    assert generated.headers["x-request-id"] not in ("", "bad id\twith tab")
    a, b = degraded_client.get("/health/live"), degraded_client.get("/health/live")
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


def test_health_routes_and_docs_are_open(degraded_client: TestClient) -> None:
    assert degraded_client.get("/health/live").json() == {"status": "alive"}
    ready = assert_error(degraded_client.get("/health/ready"), 503, "model_not_ready")
    assert ready["message"].startswith("Not ready")
    health = degraded_client.get("/health").json()
    assert health["status"] == "degraded" and health["ready"] is False
    assert health["loader"]["state"] == "degraded" and health["fast_paths"] == {}
    assert degraded_client.get("/openapi.json").status_code == 200
    assert degraded_client.get("/docs").status_code == 200
    root = degraded_client.get("/", follow_redirects=False)
    assert root.status_code in (302, 307) and root.headers["location"] == "/docs"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/predict"),
        ("post", "/predict/batch"),
        ("get", "/models"),
        ("get", "/models/signature"),
        ("post", "/models/reload"),
    ],
)
def test_protected_routes_need_a_key(degraded_client: TestClient, method: str, path: str) -> None:
    missing = getattr(degraded_client, method)(path)
    error = assert_error(missing, 401, "unauthorized")
    assert "X-API-Key" in error["message"]
    assert missing.headers["www-authenticate"] == "ApiKey"
    unknown = getattr(degraded_client, method)(path, headers={"X-API-Key": "guess"})
    assert_error(unknown, 401, "unauthorized")


def test_clinician_may_not_reload(degraded_client: TestClient) -> None:
    assert_error(degraded_client.post("/models/reload", headers=CLINICIAN), 403, "forbidden")


def test_admin_may_do_what_a_clinician_may(degraded_client: TestClient) -> None:
    assert degraded_client.get("/models/signature", headers=ADMIN).status_code == 200


def test_signature_comes_from_the_contract(degraded_client: TestClient) -> None:
    from train_pipeline.contract import ED_COHORT

    body = degraded_client.get("/models/signature", headers=CLINICIAN).json()
    assert [f["name"] for f in body["inputs"]] == list(ED_COHORT.feature_names)
    assert body["contract_fingerprint"] == ED_COHORT.fingerprint()
    assert [c["code"] for c in body["diagnosis_classes"]] == list(ED_COHORT.diagnosis.codes)


@pytest.fixture
def small_app_client(tmp_path: Path) -> Iterator[TestClient]:
    """Own app: 2 requests/min, one key given only as its digest, a route that crashes."""
    settings = make_settings(
        tmp_path,
        rate_limit_per_minute=2,
        api_keys=f"sha256={digest('hashed-key')}:clinician,plain-admin:admin",
    )
    app = create_app(settings)

    async def crash() -> None:
        raise RuntimeError("secret internal detail")

    app.add_api_route("/crash", crash, methods=["GET"])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_rate_limit_per_key(small_app_client: TestClient) -> None:
    key = {"X-API-Key": "hashed-key"}
    codes = [small_app_client.get("/models/signature", headers=key).status_code for _ in range(2)]
    assert codes == [200, 200]
    limited = small_app_client.get("/models/signature", headers=key)
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1
    other = small_app_client.get("/models/signature", headers={"X-API-Key": "plain-admin"})
    assert other.status_code == 200  # buckets are per key
    assert small_app_client.get("/health/live").status_code == 200  # open routes: no limit


def test_a_route_with_two_role_checks_takes_one_token(small_app_client: TestClient) -> None:
    """`/feedback/export` is checked twice (the router's clinician role, the route's admin role):
    the caller is authenticated once per request, so 2/min allows two such requests."""
    key = {"X-API-Key": "plain-admin"}
    codes = [small_app_client.get("/feedback/export", headers=key).status_code for _ in range(2)]
    assert codes == [200, 200]
    assert_error(small_app_client.get("/feedback/export", headers=key), 429, "rate_limited")


def test_unhandled_error_is_a_generic_500(
    small_app_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = small_app_client.get("/crash", headers={"X-Request-ID": "req-500"})
    error = assert_error(response, 500, "internal_error")
    assert "secret internal detail" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"] == "req-500"
    assert any(r.exc_info for r in caplog.records)  # the traceback is in the log only
    assert "X-Request-ID" in error["message"]


def test_auth_can_be_disabled(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, auth_enabled=False))
    with TestClient(app) as test_client:
        assert test_client.get("/models/signature").status_code == 200
        # Validation still applies with auth off.
        response = test_client.post("/predict", json=make_patient(age=5))
        assert_error(response, 422, "validation_error")


def test_openapi_declares_every_error(degraded_client: TestClient) -> None:
    spec = degraded_client.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    assert {"401", "403", "422", "429", "503"} <= set(predict["responses"])
    ref = predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ErrorResponse")
    assert "413" in spec["paths"]["/predict/batch"]["post"]["responses"]
    assert "403" in spec["paths"]["/models/reload"]["post"]["responses"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    body = predict["requestBody"]["content"]["application/json"]
    assert {"canonical", "french", "camelCase"} <= set(body["examples"])
    record = spec["components"]["schemas"]["PatientRecord"]
    assert record["additionalProperties"] is False
    assert record["properties"]["sex"]["enum"] == ["M", "F"]
    assert "X-API-Key" in str(spec["components"]["securitySchemes"])


def test_oversized_body_is_413_in_our_shape(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, batch_max_size=1))
    with TestClient(app) as test_client:
        huge = {"records": [make_patient(symptoms=["fever"] * 30)] * 200}  # ~100 KB of JSON
        response = test_client.post("/predict/batch", json=huge, headers=CLINICIAN)
        assert_error(response, 413, "payload_too_large")


def test_oversized_chunked_body_is_413(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, batch_max_size=1))
    chunks = (b" " * 8192 for _ in range(20))  # no Content-Length: counted while read
    with TestClient(app) as test_client:
        response = test_client.post(
            "/predict/batch",
            content=chunks,
            headers={**CLINICIAN, "content-type": "application/json"},
        )
        assert_error(response, 413, "payload_too_large")
