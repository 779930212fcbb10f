"""The redaction filter on what reaches the configured handler: tracebacks, stacks, SQL bound
parameters and nested extras, not only the message (message cases: tests/api/test_logging.py)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from app.log_config import REDACTED, JsonFormatter, RedactionFilter, configure_logging

PATIENT_VALUES = ("131.5", "Lactate 4.8 after fluids", "clin-7f3a")


@pytest.fixture
def configured_stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What `configure_logging()` writes, with the root logger restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO")
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def _raise_with_patient_value() -> None:
    heart_rate = 131.5
    raise ValueError({"heart_rate": heart_rate, "note": "x"})


def test_a_traceback_is_redacted_before_the_configured_handler_writes_it(
    configured_stderr: io.StringIO,
) -> None:
    try:
        _raise_with_patient_value()
    except ValueError:
        logging.getLogger("app.errors").exception("unhandled error")
    (line,) = _lines(configured_stderr)
    assert "131.5" not in configured_stderr.getvalue()
    exception = str(line["exception"])
    assert "Traceback (most recent call last)" in exception
    assert f"ValueError: {{'heart_rate': {REDACTED}" in exception


def test_the_configured_handler_carries_the_filter(configured_stderr: io.StringIO) -> None:
    (handler,) = [h for h in logging.getLogger().handlers if getattr(h, "_healthpredict", False)]
    assert any(isinstance(f, RedactionFilter) for f in handler.filters)
    assert isinstance(handler.formatter, JsonFormatter)


def test_uvicorn_errors_go_through_the_same_handler(configured_stderr: io.StringIO) -> None:
    try:
        _raise_with_patient_value()
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    (line,) = _lines(configured_stderr)
    assert line["logger"] == "uvicorn.error" and "Traceback" in str(line["exception"])
    assert "131.5" not in configured_stderr.getvalue()


def test_sqlalchemy_bound_parameters_are_redacted(configured_stderr: io.StringIO) -> None:
    engine = sa.create_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE feedback (reason TEXT, clinician_id TEXT, hr REAL)")
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON feedback BEGIN SELECT RAISE(ABORT, 'no'); END"
        )
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO feedback VALUES (:reason, :clinician, :hr)"),
            {"reason": PATIENT_VALUES[1], "clinician": PATIENT_VALUES[2], "hr": 131.5},
        )
    assert PATIENT_VALUES[1] in str(caught.value)  # what SQLAlchemy puts in its message
    logging.getLogger("app.errors").error("unhandled error", exc_info=caught.value)
    text = configured_stderr.getvalue()
    assert f"[parameters: {REDACTED}]" in text and "INSERT INTO feedback" in text
    assert not [v for v in PATIENT_VALUES if v in text]


def test_stack_info_is_redacted_and_written(configured_stderr: io.StringIO) -> None:
    logging.getLogger("app").warning("odd value", stack_info=True)
    (line,) = _lines(configured_stderr)
    assert "test_stack_info_is_redacted_and_written" in str(line["stack"])
    record = logging.makeLogRecord({"msg": "x", "stack_info": "Stack:\n  spo2=88, sex='F'"})
    RedactionFilter().filter(record)
    assert record.stack_info == f"Stack:\n  spo2={REDACTED}, sex={REDACTED}"


def test_nested_extras_are_redacted(configured_stderr: io.StringIO) -> None:
    logging.getLogger("app").info(
        "x",
        extra={"payload": {"heart_rate": 131.5, "ok": 1}, "errors": ["spo2=88"], "status": 200},
    )
    (line,) = _lines(configured_stderr)
    assert line["payload"] == {"heart_rate": REDACTED, "ok": 1}
    assert line["errors"] == [f"spo2={REDACTED}"] and line["status"] == 200


def test_an_already_formatted_exc_text_is_redacted_too() -> None:
    record = logging.makeLogRecord(
        {"msg": "x", "exc_text": "Traceback ...\nValueError: temperature=39.4"}
    )
    RedactionFilter().filter(record)
    assert record.exc_text == f"Traceback ...\nValueError: temperature={REDACTED}"
    assert json.loads(JsonFormatter().format(record))["exception"] == record.exc_text
