"""`/retrain` without a model to beat: job bookkeeping, one job at a time, roles, errors.

The end-to-end retrains (promotion both ways, Celery worker) are in tests/integration.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.store import repository
from retrain.runner import InProcessRunner
from tests.api.conftest import ADMIN, CLINICIAN, assert_error, closed_port, make_settings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    # An empty MLflow store: the job runs and fails fast with "no champion".
    settings = make_settings(
        tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'ml.db'}", mlflow_timeout_s=0.5
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def wait_for(client: TestClient, url: str, timeout_s: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = client.get(url, headers=ADMIN).json()
        if job["status"] in ("succeeded", "failed"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.5)
    raise AssertionError(f"job at {url} did not finish in {timeout_s} s")


def test_retrain_needs_the_admin_role(client: TestClient) -> None:
    assert_error(client.post("/retrain", headers=CLINICIAN), 403, "forbidden")
    assert_error(client.post("/retrain"), 401, "unauthorized")


def test_in_process_job_without_champion_fails_and_says_why(client: TestClient) -> None:
    accepted = client.post("/retrain", headers=ADMIN)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    assert body["executor"] == "in-process" and body["status"] == "queued"
    assert body["status_url"] == f"/retrain/{body['job_id']}"
    job = wait_for(client, body["status_url"])
    assert job["status"] == "failed" and job["trigger"] == "api"
    assert "NoChampionError" in job["error"] and "make train" in job["error"]
    assert job["decision"] is None and job["finished_at"] >= job["started_at"]


def test_a_second_job_while_one_is_active_is_409(client: TestClient) -> None:
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        running = repository.create_retrain_job(session, executor="celery", trigger="api")
        repository.mark_retrain_job_running(session, running.id)
    error = assert_error(client.post("/retrain", headers=ADMIN), 409, "conflict")
    assert running.id in error["message"]


def test_an_abandoned_job_no_longer_blocks(client: TestClient) -> None:
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        stale = repository.create_retrain_job(session, executor="celery", trigger="api")
        stale.created_at = datetime.now(UTC) - timedelta(days=1)
        session.commit()
    accepted = client.post("/retrain", headers=ADMIN)
    assert accepted.status_code == 202, accepted.text
    old = client.get(f"/retrain/{stale.id}", headers=ADMIN).json()
    assert old["status"] == "failed" and "abandoned" in old["error"]
    wait_for(client, accepted.json()["status_url"])


def test_unknown_job_is_404(client: TestClient) -> None:
    error = assert_error(client.get("/retrain/nope", headers=ADMIN), 404, "retrain_job_not_found")
    assert error["details"][0]["field"] == "job_id"


def test_unreachable_broker_is_503_and_the_job_is_marked_failed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, celery_broker_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert_error(client.post("/retrain", headers=ADMIN), 503, "broker_unavailable")
        with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
            assert repository.active_retrain_job(session) is None


def test_in_process_runner_runs_one_job_at_a_time() -> None:
    runner = InProcessRunner()
    release = threading.Event()
    assert runner.submit("job-1", release.wait)
    assert runner.busy and runner.current_job == "job-1"
    assert not runner.submit("job-2", lambda: None)
    release.set()
    runner.join(5)
    assert not runner.busy and runner.current_job is None
    assert runner.submit("job-3", lambda: None)
    runner.join(5)
