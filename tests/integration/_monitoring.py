"""Shared parts of the monitoring integration tests: trained models, `python -m app` and a real
Prometheus server as subprocesses on loopback, free ports, polling."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.settings import DEFAULT_CLINICIAN_KEY, PROJECT_ROOT

CLINICIAN = {"X-API-Key": DEFAULT_CLINICIAN_KEY}
INSTALL_HINT = "install it with `make install-system` (apt-get install -y prometheus chromium)"


@dataclass(frozen=True)
class ModelStore:
    """Where a trained pair of pipelines lives (the fields of H2's `trained_store`)."""

    tracking_uri: str
    bentoml_home: Path
    run_id: str
    data_path: Path


@pytest.fixture(scope="session")
def model_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ModelStore:
    """H2's session `trained_store` when the suite provides it, else a tiny run of our own."""
    try:
        store = request.getfixturevalue("trained_store")
    except pytest.FixtureLookupError:
        from train_pipeline.data.generate import write_cohort
        from train_pipeline.train import train

        tmp = tmp_path_factory.mktemp("monitoring_models")
        csv = write_cohort(tmp / "cohort.csv", n_rows=3000, seed=5)
        cwd = Path.cwd()
        os.chdir(tmp)  # MLflow's default artifact root is relative to the working directory
        try:
            result = train(
                data_path=csv,
                tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
                bentoml_home=tmp / "bentoml",
                n_rows=2000,
                iterations=60,
                threads=1,
                cv_folds=2,
            )
        finally:
            os.chdir(cwd)
        return ModelStore(result.tracking_uri, Path(result.bentoml_home), result.run_id, csv)
    return ModelStore(
        store.tracking_uri, Path(store.bentoml_home), store.run_id, Path(store.data_path)
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ProcessExitedError(RuntimeError):
    """The process a test waits for has exited: stop waiting at once."""


def wait_for(check: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy (exceptions count as not yet, except
    `ProcessExitedError`)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except ProcessExitedError:
            raise
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}; last: {last!r}")


def app_env(store: ModelStore, tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "HP_ENVIRONMENT": "test",
        "HP_HOST": "127.0.0.1",
        "HP_PORT": str(free_port()),
        "HP_MLFLOW_TRACKING_URI": store.tracking_uri,
        "HP_BENTOML_HOME": str(store.bentoml_home),
        "HP_DATABASE_URL": f"sqlite:///{tmp / 'hp.db'}",
        "HP_TRAINING_DATA_PATH": str(store.data_path),
        "HP_ACCESS_LOG": "false",
        "HP_LOG_LEVEL": "WARNING",
        "DO_NOT_TRACK": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


@dataclass(frozen=True)
class AppProcess:
    base: str
    pid: int


@contextmanager
def running_app(
    env: dict[str, str], log_path: Path, timeout_s: float = 240
) -> Iterator[AppProcess]:
    """`python -m app` with ``env``, once it answers `/health/ready` with 200 (model loaded)."""
    base = f"http://127.0.0.1:{env['HP_PORT']}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
        )
        try:

            def ready() -> bool:
                if proc.poll() is not None:
                    raise ProcessExitedError(f"python -m app exited with {proc.returncode}")
                return httpx.get(f"{base}/health/ready", timeout=5).status_code == 200

            wait_for(ready, timeout_s, f"{base}/health/ready")
            yield AppProcess(base, proc.pid)
        except BaseException as exc:
            tail = log_path.read_text(errors="replace").splitlines()[-40:]
            exc.add_note("app log tail:\n" + "\n".join(line[:300] for line in tail))
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@dataclass(frozen=True)
class Prometheus:
    url: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])


@contextmanager
def running_prometheus(target: str, tmp: Path, scrape_s: float = 1.0) -> Iterator[Prometheus]:
    """A real Prometheus (Debian package) scraping ``target`` (host:port) every ``scrape_s``."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(f"prometheus not found: {INSTALL_HINT}")
    config = yaml.safe_load((PROJECT_ROOT / "docker/prometheus/prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    job["static_configs"][0]["targets"] = [target]
    job["scrape_interval"] = f"{scrape_s:g}s"
    config["global"]["evaluation_interval"] = f"{scrape_s:g}s"
    shutil.copy(PROJECT_ROOT / "docker/prometheus/alerts.yml", tmp / "alerts.yml")
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log_path = tmp / "prometheus.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=log,
        )
        url = f"http://127.0.0.1:{port}"
        try:

            def ready() -> bool:
                if proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-3000:]
                    raise ProcessExitedError(f"prometheus exited: {tail}")
                return httpx.get(f"{url}/-/ready", timeout=5).status_code == 200

            wait_for(ready, 60, "prometheus /-/ready")
            yield Prometheus(url)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
