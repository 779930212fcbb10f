"""Every bad input is a 422 (or 413) in the one error shape, naming the field — through HTTP.

Runs on the degraded app: validation happens before the model is needed, so a client learns
about its bad input even while the service waits for a model. Parametrised over the contract.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import CLINICIAN, assert_error
from tests.factories import DROP, make_patient
from train_pipeline.contract import ED_COHORT, Feature

BOUNDED = [f for f in ED_COHORT.features if f.kind in ("numeric", "integer")]


def _post(client: TestClient, payload: Any, path: str = "/predict") -> Any:
    return client.post(path, json=payload, headers=CLINICIAN)


def _bound_cases() -> list[Any]:
    cases = []
    for f in BOUNDED:
        step = 1 if f.kind == "integer" else 0.1
        assert f.minimum is not None and f.maximum is not None
        cases.append(pytest.param(f, f.minimum - step, f"must be at least {f.minimum:g}",
                                  id=f"{f.name}-below"))  # fmt: skip
        cases.append(pytest.param(f, f.maximum + step, f"must be at most {f.maximum:g}",
                                  id=f"{f.name}-above"))  # fmt: skip
    return cases


@pytest.mark.parametrize(("feat", "value", "reason"), _bound_cases())
def test_every_bound(degraded_client: TestClient, feat: Feature, value: float, reason: str) -> None:
    value = int(value) if feat.kind == "integer" else round(value, 6)
    payload = make_patient(**{feat.name: value})
    if feat.name == "diastolic_bp":
        payload["systolic_bp"] = 300
    error = assert_error(_post(degraded_client, payload), 422, "validation_error")
    assert error["details"][0] == {"field": feat.name, "value": value, "reason": reason}
    assert feat.name in error["message"]


def _type_cases() -> list[Any]:
    cases: list[Any] = []
    for f in ED_COHORT.features:
        bad: Any = {
            "numeric": "12",
            "integer": 7.5,
            "boolean": "true",
            "categorical": "unknown",
            "multilabel": ["not-a-code"],
        }[f.kind]
        cases.append(pytest.param(f, bad, id=f"{f.name}={bad!r}"))
    return cases


@pytest.mark.parametrize(("feat", "value"), _type_cases())
def test_wrong_type_or_enum(degraded_client: TestClient, feat: Feature, value: Any) -> None:
    error = assert_error(
        _post(degraded_client, make_patient(**{feat.name: value})), 422, "validation_error"
    )
    assert error["details"][0]["field"].split("[")[0] == feat.name


@pytest.mark.parametrize(
    "feat", [f for f in ED_COHORT.features if f.tier == "required"], ids=lambda f: f.name
)
def test_missing_required_field(degraded_client: TestClient, feat: Feature) -> None:
    error = assert_error(
        _post(degraded_client, make_patient(**{feat.name: DROP})), 422, "validation_error"
    )
    assert error["details"][0] == {"field": feat.name, "value": None, "reason": "is required"}


def test_unknown_field(degraded_client: TestClient) -> None:
    error = assert_error(_post(degraded_client, make_patient(pulse=80)), 422, "validation_error")
    assert error["details"][0]["field"] == "pulse"
    assert error["details"][0]["value"] == 80


def test_field_given_twice(degraded_client: TestClient) -> None:
    payload = make_patient(heart_rate=80, frequence_cardiaque=80)
    error = assert_error(_post(degraded_client, payload), 422, "validation_error")
    assert error["details"][0]["field"] == "heart_rate"
    assert "frequence_cardiaque" in error["details"][0]["reason"]


def test_cross_field_rule(degraded_client: TestClient) -> None:
    payload = make_patient(systolic_bp=90, diastolic_bp=95)
    error = assert_error(_post(degraded_client, payload), 422, "validation_error")
    assert error["details"] == [
        {"field": "diastolic_bp", "value": 95, "reason": "must be below systolic_bp (90)"}
    ]


def test_cross_field_rule_applies_to_french_names(degraded_client: TestClient) -> None:
    payload = make_patient(systolic_bp=DROP, diastolic_bp=DROP)
    payload.update(pression_systolique=90, pression_diastolique=95)
    error = assert_error(_post(degraded_client, payload), 422, "validation_error")
    assert error["details"][0]["field"] == "diastolic_bp"


@pytest.mark.parametrize(
    ("content", "content_type", "reason_part"),
    [
        (b"", "application/json", "is required"),
        (b"", None, "is required"),
        (b'{"age": 40, "sex": ', "application/json", "not valid JSON"),
        (b"age=40&sex=M", "application/x-www-form-urlencoded", "Content-Type: application/json"),
        (b'{"age": 40, "sex": "M"}', "text/plain", "Content-Type: application/json"),
        (b"[1, 2]", "application/json", "JSON object"),
        (b'"text"', "application/json", "JSON object"),
        (b"null", "application/json", None),
    ],
    ids=["empty", "empty-no-type", "malformed", "form", "text-plain", "array", "string", "null"],
)
def test_bad_bodies(
    degraded_client: TestClient, content: bytes, content_type: str | None, reason_part: str | None
) -> None:
    headers = dict(CLINICIAN)
    if content_type:
        headers["content-type"] = content_type
    response = degraded_client.post("/predict", content=content, headers=headers)
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "body"
    if reason_part:
        assert reason_part in error["details"][0]["reason"]


@pytest.mark.parametrize(
    ("literal", "shown"),
    [("NaN", None), ("Infinity", None), ("18446744073709551616", 1.8446744073709552e19)],
    ids=["nan", "infinity", "int-past-64-bits"],
)
def test_numbers_json_cannot_carry_name_the_field(
    degraded_client: TestClient, literal: str, shown: float | None
) -> None:
    """The bodies orjson hands back to `json.loads` (NaN, Infinity) and the one it reads
    differently (an integer past 64 bits, as a float): still a 422 naming the field."""
    body = json.dumps(make_patient(heart_rate=1)).replace(
        '"heart_rate": 1', f'"heart_rate": {literal}'
    )
    response = degraded_client.post(
        "/predict", content=body, headers={**CLINICIAN, "content-type": "application/json"}
    )
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "heart_rate"
    if shown is not None:
        assert error["details"][0]["value"] == shown


def test_oversized_batch_is_413_before_any_item_is_validated(degraded_client: TestClient) -> None:
    limit = degraded_client.app.state.settings.batch_max_size  # type: ignore[attr-defined]
    records = [{"age": 1000}] * (limit + 1)  # every item invalid: 413 must win over 422
    response = _post(degraded_client, {"records": records}, "/predict/batch")
    error = assert_error(response, 413, "batch_too_large")
    assert error["details"][0]["field"] == "records"


def test_batch_errors_name_the_item(degraded_client: TestClient) -> None:
    records = [make_patient(), make_patient(spo2=150)]
    error = assert_error(
        _post(degraded_client, {"records": records}, "/predict/batch"), 422, "validation_error"
    )
    assert error["details"][0]["field"] == "records[1].spo2"


def test_empty_batch(degraded_client: TestClient) -> None:
    error = assert_error(
        _post(degraded_client, {"records": []}, "/predict/batch"), 422, "validation_error"
    )
    assert error["details"][0]["field"] == "records"


def test_valid_input_while_degraded_is_503(degraded_client: TestClient) -> None:
    for path, payload in (("/predict", make_patient()),
                          ("/predict/batch", {"records": [make_patient()]})):  # fmt: skip
        error = assert_error(_post(degraded_client, payload, path), 503, "model_not_ready")
        assert "retrying" in error["message"]
