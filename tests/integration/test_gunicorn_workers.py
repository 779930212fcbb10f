"""`python -m app` with HP_WORKERS=2: gunicorn + uvicorn workers, a fresh
PROMETHEUS_MULTIPROC_DIR, and `/metrics` counting the requests of every worker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.settings import PROJECT_ROOT
from tests.api.conftest import closed_port
from tests.integration.test_startup_sources import free_port, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def child_pids(pid: int, command: str | None = None) -> list[str]:
    """The direct children of ``pid`` (gunicorn's workers), those whose command line holds
    ``command`` when given."""
    match = ["-f", command] if command else []
    found = subprocess.run(
        ["pgrep", "-P", str(pid), *match], capture_output=True, text=True, check=False
    )
    return found.stdout.split()


def test_two_workers_share_metrics(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "HP_PORT": str(port),
        "HP_WORKERS": "2",
        "HP_ENVIRONMENT": "test",
        "HP_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}",
        "HP_MLFLOW_TIMEOUT_S": "2",
        "HP_BENTOML_HOME": str(tmp_path / "bentoml_empty"),
        "HP_MODEL_RETRY_INTERVAL_S": "3600",
        "HP_DATABASE_URL": f"sqlite:///{tmp_path / 'hp.db'}",
        "HP_ACCESS_LOG": "false",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/health/live", timeout_s=240)
            workers = child_pids(proc.pid)
            assert len(workers) == 2, workers
            for _ in range(40):  # new connection each time: both workers get some
                response = httpx.get(f"{base}/health/live", headers={"Connection": "close"})
                assert response.status_code == 200
            metrics = httpx.get(f"{base}/metrics").text
            served = [
                float(m.group(1))
                for m in re.finditer(
                    r'healthpredict_http_requests_total\{[^}]*route="/health/live"[^}]*\} (\S+)',
                    metrics,
                )
            ]
            assert sum(served) >= 40, metrics[:2000]
        finally:
            proc.terminate()
            code = proc.wait(timeout=60)
    assert code == 0, log_path.read_text(errors="replace")[-3000:]
