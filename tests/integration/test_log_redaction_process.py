"""No patient value in what a real server process writes: `python -m app` over the trained store,
normal requests and two error paths whose exceptions quote patient data, output read back.

1. `python -m app` itself, on SQLite and on the real PostgreSQL: predictions, a 422, feedback with
   a free-text reason and a clinician id, then the same feedback insert refused by the database
   (a trigger): the database error answers 409 (SQLite: a constraint) or 503 with Retry-After
   (PostgreSQL: an error raised by the server), in the error shape, and no line quotes the
   statement's values (engines hide their parameters; the handler logs the error's type only).
2. The same entry point with one extra route raising ``ValueError({'heart_rate': 131.5, ...})``
   (`tests/integration/_raising_app.py`): a message and a traceback quoting a record.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.log_config import REDACTED
from app.settings import PROJECT_ROOT
from app.store import db
from tests.api.conftest import CLINICIAN
from tests.factories import make_patient
from tests.integration import _raising_app
from tests.integration.test_startup_sources import app_process_env, free_port, wait_http
from tests.pg_schema import empty_pg_schema

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HEART_RATE = 131.5  # in range, and a value no log line has any other reason to print
REASON = "Says the zebra-umbrella pain began at breakfast"
CLINICIAN_ID = "clin-owl-4711"
PATIENT_VALUES = (str(HEART_RATE), REASON, "zebra-umbrella", CLINICIAN_ID)


@dataclass
class Served:
    base: str
    database_url: str
    output: Path  # the process's stdout and stderr, interleaved

    def log_lines(self) -> list[dict[str, Any]]:
        lines = self.output.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]


def _serve(
    module: str, trained_store: Any, tmp_path: Path, database_url: str | None = None
) -> Iterator[Served]:
    port = free_port()
    database_url = database_url or f"sqlite:///{tmp_path / 'hp.db'}"
    # DEBUG with the access log: the most the service can be made to write
    env = app_process_env(
        trained_store,
        port,
        tmp_path / "unused.db",
        HP_ACCESS_LOG="true",
        HP_LOG_LEVEL="DEBUG",
        HP_DATABASE_URL=database_url,
    )
    output = tmp_path / "process.out"
    with output.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", module], env=env, cwd=PROJECT_ROOT, stdout=sink, stderr=sink
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/health/ready", timeout_s=180)
            yield Served(base, database_url, output)
        finally:
            proc.terminate()
            try:
                assert proc.wait(timeout=60) == 0  # graceful shutdown
            finally:
                if proc.poll() is None:
                    proc.kill()


@pytest.fixture(params=["sqlite", "postgresql"])
def served_app(
    request: pytest.FixtureRequest, trained_store: Any, tmp_path: Path
) -> Iterator[Served]:
    if request.param == "sqlite":
        yield from _serve("app", trained_store, tmp_path)
        return
    with empty_pg_schema() as url:
        yield from _serve("app", trained_store, tmp_path, url)


@pytest.fixture
def served_raising_app(trained_store: Any, tmp_path: Path) -> Iterator[Served]:
    yield from _serve("tests.integration._raising_app", trained_store, tmp_path)


def _assert_no_patient_value(served: Served, values: tuple[str, ...]) -> None:
    text = served.output.read_text(errors="replace")
    leaked = [v for v in values if v in text]
    assert not leaked, f"{leaked} in the process output:\n{text[-4000:]}"


def _tracebacks(served: Served, expected: set[str] | None = None) -> dict[str, str]:
    """logger name -> the logged exception text, for every line that carries one; waits up to
    10 s for the ``expected`` loggers (uvicorn logs its traceback after the 500 has been sent)."""
    deadline = time.monotonic() + 10
    while True:
        found = {
            line["logger"]: line["exception"] for line in served.log_lines() if "exception" in line
        }
        if expected is None or set(found) >= expected or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _feedback(pid: str) -> dict[str, Any]:
    return {
        "prediction_id": pid,
        "verdict": "correct",
        "reason": REASON,
        "clinician_id": CLINICIAN_ID,
    }


def _refuse_feedback_inserts(database_url: str) -> None:
    """A database that refuses the next feedback row, as a full disk or a lost lock would
    (SQLite's trigger can only raise a constraint error; PostgreSQL's raises a server error)."""
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
            conn.execute(
                "CREATE TRIGGER refuse_feedback BEFORE INSERT ON feedback"
                " BEGIN SELECT RAISE(ABORT, 'feedback refused'); END"
            )
        return
    engine = db.make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION refuse_feedback() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'feedback refused'; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER refuse_feedback BEFORE INSERT ON feedback"
                " FOR EACH ROW EXECUTE FUNCTION refuse_feedback()"
            )
        )
    engine.dispose()


def test_python_m_app_logs_no_patient_value_even_in_a_database_error(
    served_app: Served,
) -> None:
    with httpx.Client(base_url=served_app.base, headers=CLINICIAN, timeout=60) as client:
        pids = []
        for _ in range(2):
            response = client.post("/predict", json=make_patient(heart_rate=HEART_RATE))
            assert response.status_code == 200, response.text
            pids.append(response.json()["prediction_id"])
        invalid = client.post("/predict", json=make_patient(heart_rate=HEART_RATE, crp=987.654))
        assert invalid.status_code == 422
        batch = client.post(
            "/predict/batch", json={"records": [make_patient(heart_rate=HEART_RATE)] * 3}
        )
        assert batch.status_code == 200, batch.text
        stored = client.post("/feedback", json=_feedback(pids[0]))
        assert stored.status_code == 201, stored.text
        _refuse_feedback_inserts(served_app.database_url)
        started = time.monotonic()
        refused = client.post("/feedback", json=_feedback(pids[1]))
        elapsed = time.monotonic() - started
    error = refused.json()["error"]
    if served_app.database_url.startswith("sqlite"):
        assert (refused.status_code, error["code"]) == (409, "conflict"), refused.text
    else:
        assert (refused.status_code, error["code"]) == (503, "store_unavailable"), refused.text
        assert refused.headers["Retry-After"] == "5"
    assert refused.headers["X-Request-ID"] and elapsed < 10
    _assert_no_patient_value(served_app, PATIENT_VALUES)
    logged = [line for line in served_app.log_lines() if line["message"] == "database error"]
    assert logged and logged[0]["error_type"] in ("IntegrityError", "ProgrammingError")
    assert "exception" not in logged[0]  # no traceback: it would quote the statement
    assert "feedback refused" not in served_app.output.read_text(errors="replace")
    access = [line for line in served_app.log_lines() if line["logger"] == "app.access"]
    assert {line["route"] for line in access} >= {"/predict", "/predict/batch", "/feedback"}


def test_an_exception_quoting_a_record_is_logged_redacted(served_raising_app: Served) -> None:
    with httpx.Client(base_url=served_raising_app.base, timeout=60) as client:
        response = client.get(_raising_app.RAISING_ROUTE)
    assert response.status_code == 500
    assert str(_raising_app.HEART_RATE) not in response.text
    _assert_no_patient_value(
        served_raising_app, (str(_raising_app.HEART_RATE), _raising_app.CLINICIAN_ID)
    )
    tracebacks = _tracebacks(served_raising_app, {"app.errors", "uvicorn.error"})
    assert set(tracebacks) >= {"app.errors", "uvicorn.error"}  # ours, then uvicorn's own
    for logged in tracebacks.values():
        assert "Traceback (most recent call last)" in logged
        assert f"ValueError: {{'heart_rate': {REDACTED}, 'clinician_id': {REDACTED}}}" in logged
