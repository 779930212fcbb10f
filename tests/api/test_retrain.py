"""`/retrain` without a model to beat: job bookkeeping, one job at a time, roles, errors.

The end-to-end retrains (promotion both ways, Celery worker) are in tests/integration.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api import retrain as retrain_api
from app.api.retrain import InProcessRunner, run_job_process, settings_env
from app.main import create_app
from app.settings import Settings
from app.store import db, retrain_jobs
from retrain.celery_app import RETRAIN_TASK
from tests.api.conftest import ADMIN, CLINICIAN, assert_error, closed_port, make_settings
from tests.pg_schema import empty_pg_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    """The app on each store (the job rows, the 409's lock, the child's status updates); an
    empty MLflow store: the job runs and fails fast with "no champion"."""
    with ExitStack() as stack:
        store = (
            {}
            if request.param == "sqlite"
            else {"database_url": stack.enter_context(empty_pg_schema())}
        )
        settings = make_settings(
            tmp_path,
            mlflow_tracking_uri=f"sqlite:///{tmp_path / 'ml.db'}",
            mlflow_timeout_s=0.5,
            **store,
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
        running = retrain_jobs.create_retrain_job(session, executor="celery", trigger="api")
        retrain_jobs.mark_retrain_job_running(session, running.id)
    error = assert_error(client.post("/retrain", headers=ADMIN), 409, "conflict")
    assert running.id in error["message"]


def test_an_abandoned_job_no_longer_blocks(client: TestClient) -> None:
    with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
        stale = retrain_jobs.create_retrain_job(session, executor="celery", trigger="api")
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


def test_a_control_character_in_a_job_id_is_422_on_postgresql(tmp_path: Path) -> None:
    # PostgreSQL refuses a NUL in a query's text: it answered 500 before the id was validated.
    with empty_pg_schema() as url:
        settings = make_settings(tmp_path, database_url=url)
        with TestClient(create_app(settings), raise_server_exceptions=False) as pg_client:
            response = pg_client.get("/retrain/abc%00def", headers=ADMIN)
            unknown = pg_client.get("/retrain/abc-def", headers=ADMIN)
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "path.job_id"
    assert "U+0000" in error["details"][0]["reason"]
    assert_error(unknown, 404, "retrain_job_not_found")


def test_unreachable_broker_is_503_and_the_job_is_marked_failed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, celery_broker_url=f"redis://127.0.0.1:{closed_port()}/0")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert_error(client.post("/retrain", headers=ADMIN), 503, "broker_unavailable")
        with client.app.state.sessionmaker() as session:  # type: ignore[attr-defined]
            assert retrain_jobs.active_retrain_job(session) is None


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


def test_the_api_sends_the_task_the_worker_registers() -> None:
    assert retrain_api.RETRAIN_TASK == RETRAIN_TASK


def test_settings_env_gives_a_child_process_the_same_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        tmp_path,
        api_keys=SecretStr("k1:admin"),
        auth_enabled=False,
        retrain_margin=0.02,
        retrain_holdout_path=tmp_path / "holdout.csv",
    )
    env = settings_env(settings, base={"PATH": "/bin", "HP_CELERY_BROKER_URL": "redis://x/0"})
    assert env["PATH"] == "/bin" and "HP_CELERY_BROKER_URL" not in env  # None: left out
    for key in [k for k in os.environ if k.startswith("HP_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)  # no .env
    assert Settings() == settings


def _finish_as(job_id: str, url: str, decision: str) -> list[str]:
    """A stand-in for `python -m retrain --job-id`: records ``decision`` on the job, after
    asking the API to reload (and waiting for its answer) when it promoted."""
    code = f"""
import sys
from app.api.retrain import PROMOTED_LINE, RELOADED_LINE
from app.store import db, retrain_jobs
if {decision!r} == "promoted":
    print(PROMOTED_LINE, "run-2", flush=True)
    assert sys.stdin.readline().strip() == RELOADED_LINE
session = db.make_sessionmaker(db.make_engine({url!r}))()
retrain_jobs.finish_retrain_job(
    session, {job_id!r}, succeeded=True, decision={decision!r}, challenger_run_id="run-2"
)
"""
    return [sys.executable, "-c", code]


@pytest.mark.parametrize("decision", ["promoted", "kept"])
def test_job_process_outcome_reloads_only_after_a_promotion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decision: str
) -> None:
    settings = make_settings(tmp_path)
    db.upgrade(settings.database_url)
    make_session = db.make_sessionmaker(db.make_engine(settings.database_url))
    with make_session() as session:
        job = retrain_jobs.create_retrain_job(session, executor="in-process", trigger="api")
    command = _finish_as(job.id, settings.database_url, decision)
    monkeypatch.setattr(retrain_api, "job_command", lambda job_id: command)
    reloaded: list[tuple[str | None, str]] = []

    def reload(run_id: str | None) -> None:  # the job is not recorded yet at this point
        with make_session() as session:
            row = retrain_jobs.get_retrain_job(session, job.id)
            assert row is not None
            reloaded.append((run_id, row.status))

    run_job_process(settings, make_session, job.id, reload)
    assert reloaded == ([("run-2", "queued")] if decision == "promoted" else [])
    with make_session() as session:
        row = retrain_jobs.get_retrain_job(session, job.id)
        assert row is not None and row.status == "succeeded" and row.decision == decision


def test_a_job_process_that_dies_fails_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    db.upgrade(settings.database_url)
    make_session = db.make_sessionmaker(db.make_engine(settings.database_url))
    with make_session() as session:
        job = retrain_jobs.create_retrain_job(session, executor="in-process", trigger="api")
    dies = [sys.executable, "-c", "raise SystemExit(3)"]
    monkeypatch.setattr(retrain_api, "job_command", lambda job_id: dies)
    run_job_process(settings, make_session, job.id, lambda run_id: None)
    with make_session() as session:
        row = retrain_jobs.get_retrain_job(session, job.id)
        assert row is not None and row.status == "failed"
        assert row.error == "retrain process exited with code 3 before recording an outcome"


def test_a_job_process_past_the_timeout_is_killed_and_fails_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path, retrain_job_timeout_s=0.5)
    db.upgrade(settings.database_url)
    make_session = db.make_sessionmaker(db.make_engine(settings.database_url))
    with make_session() as session:
        job = retrain_jobs.create_retrain_job(session, executor="in-process", trigger="api")
    sleeps = [sys.executable, "-c", "import time; time.sleep(60)"]
    monkeypatch.setattr(retrain_api, "job_command", lambda job_id: sleeps)
    started = time.monotonic()
    run_job_process(settings, make_session, job.id, lambda run_id: None)
    assert time.monotonic() - started < 30
    with make_session() as session:
        row = retrain_jobs.get_retrain_job(session, job.id)
        assert row is not None and row.status == "failed"
        assert row.error == "retrain process killed after 0.5 s before recording an outcome"
