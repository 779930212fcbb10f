"""The API image's entry command, run here outside Docker with the image's own environment
(the `ENV` lines of the Dockerfile's api stage, its paths moved under a temporary directory, the
port moved to a free one), plus the tracking URI compose gives it: gunicorn with the image's
2 workers, both answering `/health/ready`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import PROJECT_ROOT
from tests.integration.test_gunicorn_workers import child_pids
from tests.integration.test_startup_sources import free_port, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
IMAGE_HOME = "/home/app"


def api_stage() -> str:
    return DOCKERFILE.split(" AS api\n", 1)[1].split("\nFROM ", 1)[0]


def image_env() -> dict[str, str]:
    """The api stage's ``ENV key=value …`` instructions (continuation lines joined)."""
    text = api_stage().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", text, re.M):
        for item in shlex.split(line):
            key, _, value = item.partition("=")
            env[key] = value
    return env


def image_cmd() -> list[str]:
    match = re.search(r"^CMD (\[.+\])$", api_stage(), re.M)
    assert match, "the api stage has no exec-form CMD"
    return list(json.loads(match.group(1)))


def test_image_command_serves_ready_with_two_workers(trained_store: Any, tmp_path: Path) -> None:
    env = image_env()
    assert env["HP_WORKERS"] == "2" and image_cmd() == ["python", "-m", "app"]
    port = free_port()
    moved = {k: v.replace(IMAGE_HOME, str(tmp_path)) for k, v in env.items() if k != "PATH"}
    for name in ("data", "bentoml"):
        (tmp_path / name).mkdir()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("HP_", "MLFLOW_"))}
    base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    run_env = {
        **base_env,
        **moved,
        "HP_PORT": str(port),
        "MLFLOW_TRACKING_URI": trained_store.tracking_uri,  # what compose's app-env adds
    }
    command = [sys.executable if image_cmd()[0] == "python" else image_cmd()[0], *image_cmd()[1:]]
    log_path = tmp_path / "image.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, env=run_env, cwd=tmp_path, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/health/ready", timeout_s=300)
            workers = child_pids(proc.pid)
            assert len(workers) == 2, workers
            # A new connection each time, so both workers answer; the second may load a
            # little after the first: wait for 20 ready answers in a row.
            deadline, streak = time.monotonic() + 180, 0
            while streak < 20 and time.monotonic() < deadline:
                response = httpx.get(f"{base}/health/ready", headers={"Connection": "close"})
                ready = response.status_code == 200 and response.json()["source"] == "mlflow"
                streak = streak + 1 if ready else 0
                time.sleep(0 if ready else 0.5)
            assert streak == 20, response.text
        finally:
            proc.terminate()
            code = proc.wait(timeout=60)
    assert code == 0, log_path.read_text(errors="replace")[-3000:]
