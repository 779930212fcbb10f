"""Logs are JSON lines with the request id, and never carry patient data."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from app.log_config import REDACTED, JsonFormatter, RedactionFilter
from tests.api.conftest import CLINICIAN
from tests.factories import make_patient


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.makeLogRecord({"msg": msg, "args": args or None, "levelno": 20})
    record.__dict__.update(extra)
    return record


def test_json_formatter_writes_one_object_with_extras() -> None:
    line = JsonFormatter().format(_record("request", status=200, latency_ms=1.5))
    out = json.loads(line)
    assert out["message"] == "request" and out["status"] == 200 and out["latency_ms"] == 1.5
    assert "\n" not in line


@pytest.mark.parametrize(
    ("msg", "args"),
    [
        ("patient heart_rate=%s", (131,)),
        ('payload {"spo2": 88, "sex": "F"}', ()),
        ("glycemie: 2.1 g/L", ()),
        ("symptoms=['fever', 'cough'] seen", ()),
    ],
)
def test_redaction_masks_patient_values_in_messages(msg: str, args: tuple[object, ...]) -> None:
    record = _record(msg, *args)
    RedactionFilter().filter(record)
    text = record.getMessage()
    assert REDACTED in text
    for value in ("131", "88", '"F"', "2.1", "fever"):
        assert value not in text


def test_redaction_masks_patient_extras() -> None:
    record = _record("x", age=77, heartRate=140, status=200)
    RedactionFilter().filter(record)
    assert record.age == REDACTED and record.heartRate == REDACTED and record.status == 200


def test_a_prediction_logs_no_patient_value(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    marker = 123.456  # a value that appears nowhere else
    with caplog.at_level(logging.DEBUG):
        response = client.post("/predict", json=make_patient(heart_rate=marker), headers=CLINICIAN)
        invalid = client.post("/predict", json=make_patient(crp=987.654), headers=CLINICIAN)
    assert response.status_code == 200 and invalid.status_code == 422  # crp above its range
    text = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert str(marker) not in text and "987.654" not in text
    access = [r for r in caplog.records if r.name == "app.access"]
    assert access and all(getattr(r, "request_id", None) for r in access)
    assert any(getattr(r, "route", None) == "/predict" for r in access)
    assert any(getattr(r, "model_version", None) for r in access)
