"""Celery on the local Redis: a real worker process (and Beat) run retraining end-to-end.

Redis at 127.0.0.1:6379 is required: unreachable -> the test FAILS saying so (never skips).
The test takes a free database number for itself and empties it afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import DEFAULT_ADMIN_KEY, PROJECT_ROOT, Settings
from app.store import db
from retrain.celery_app import BEAT_ENTRY, RETRAIN_TASK, beat_schedule, make_celery, parse_cron
from tests.api.conftest import ADMIN, make_settings
from tests.integration.test_promotion import register_champion, write_cohort

pytestmark = pytest.mark.integration

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
LOCK_KEY = "healthpredict:test-lock"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """``redis://…/<n>`` on a database nobody uses; emptied afterwards."""
    try:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_HOST}:{REDIS_PORT} is not reachable: {exc}")
    for number in range(15, 0, -1):
        conn = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
        if conn.dbsize() == 0 and conn.set(LOCK_KEY, os.getpid(), nx=True, ex=3600):
            try:
                yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
            finally:
                conn.flushdb()
            return
    pytest.fail("no free Redis database number (1-15) for the Celery test")


class Process:
    """A subprocess whose merged output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def wait_for(self, text: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        tail = "\n".join(self.lines[-40:])
        raise AssertionError(f"{text!r} not seen within {timeout_s} s; output tail:\n{tail}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def worker_env(settings: Settings) -> dict[str, str]:
    return os.environ | {
        "HP_ENVIRONMENT": "test",
        "HP_LOG_LEVEL": "INFO",
        "HP_DATABASE_URL": settings.database_url,
        "HP_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
        "HP_BENTOML_HOME": str(settings.bentoml_home),
        "HP_TRAINING_DATA_PATH": str(settings.training_data_path),
        "HP_CELERY_BROKER_URL": str(settings.celery_broker_url),
        "HP_API_KEYS": f"{DEFAULT_ADMIN_KEY}:admin",
        "HP_RETRAIN_SCHEDULE_CRON": "* * * * *",  # Beat fires every minute in this test
    }


def test_worker_and_beat_run_retraining_and_the_api_reports_it(
    tmp_path: Path, redis_url: str
) -> None:
    data = tmp_path / "cohort.csv"
    write_cohort(data, 500, 31)
    uri, home = f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "bentoml"
    register_champion(uri, home, data)
    settings = make_settings(
        tmp_path,
        mlflow_tracking_uri=uri,
        bentoml_home=home,
        mlflow_timeout_s=60.0,
        training_data_path=data,
        celery_broker_url=redis_url,
    )
    db.upgrade(settings.database_url)
    env = worker_env(settings)
    celery = [sys.executable, "-m", "celery", "-A", "retrain.celery_app"]
    worker = Process(
        [
            *celery,
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "-n",
            f"hp-test-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        env,
    )
    beat = None
    try:
        worker.wait_for("ready", 240)
        beat = Process([*celery, "beat", "--schedule", str(tmp_path / "beat-schedule")], env)
        # No feedback yet: Beat's run finds retraining not recommended and skips it.
        worker.wait_for("scheduled retrain skipped", 150)
        beat.stop()
        beat = None
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            accepted = client.post("/retrain", headers=ADMIN)
            assert accepted.status_code == 202, accepted.text
            assert accepted.json()["executor"] == "celery"
            url = accepted.json()["status_url"]
            deadline, job = time.monotonic() + 600, {}
            while time.monotonic() < deadline:
                job = client.get(url, headers=ADMIN).json()
                if job["status"] in ("succeeded", "failed"):
                    break
                time.sleep(1)
            assert job.get("status") == "succeeded", (job, "\n".join(worker.lines[-40:]))
        assert job["executor"] == "celery" and job["decision"] in ("promoted", "kept")
        scores = job["scores"]
        assert set(scores["champion"]) == set(scores["challenger"])
        assert scores["metric"] in scores["champion"] and job["challenger_run_id"]
        worker.wait_for("retrain job finished", 30)
    finally:
        if beat is not None:
            beat.stop()
        worker.stop()


def test_beat_schedule_is_loadable_and_names_the_task(tmp_path: Path) -> None:
    env = os.environ | {"HP_RETRAIN_SCHEDULE_CRON": "30 2 * * 1-5"}
    code = (
        "import json; from retrain.celery_app import app; e = app.conf.beat_schedule; "
        "print(json.dumps({k: [v['task'], repr(v['schedule']), v['kwargs']] "
        "for k, v in e.items()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    schedule = json.loads(out.stdout.strip().splitlines()[-1])
    task, cron, kwargs = schedule[BEAT_ENTRY]
    assert task == RETRAIN_TASK == "retrain.tasks.retrain"
    assert "30" in cron and "2" in cron and "1-5" in cron
    assert kwargs == {"trigger": "beat", "only_if_recommended": True}
    app = make_celery(Settings(environment="test", celery_broker_url="redis://x:1/0"))
    assert app.conf.beat_schedule == beat_schedule("0 3 * * *")
    assert app.conf.broker_url == "redis://x:1/0"


@pytest.mark.parametrize("cron", ["", "0 3 * *", "61 3 * * *", "0 3 * * * *"])
def test_bad_cron_is_refused(cron: str) -> None:
    with pytest.raises(ValueError):
        parse_cron(cron)
