"""Two gunicorn workers (`HP_WORKERS=2 python -m app`): `/metrics` sums every worker, whichever
worker answers the scrape, and a dead worker's live gauges go while its counts stay."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import cohort_payloads
from tests.integration._monitoring import (
    CLINICIAN,
    AppProcess,
    ModelStore,
    app_env,
    model_store,  # noqa: F401 (fixture)
    running_app,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
N_REQUESTS = 48
MAX_REQUESTS = 10 * N_REQUESTS


def workers(master: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True)
    return sorted(int(p) for p in out.stdout.split())


def sample_sum(text: str, metric: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


def per_worker(prom_dir: Path, pid: int, metric: str, **labels: str) -> float:
    """What one worker's own mmap file holds for a metric (no merging across workers)."""
    total = 0.0
    for path in prom_dir.glob(f"*_{pid}.db"):
        for family in MultiProcessCollector.merge([str(path)], accumulate=True):
            for s in family.samples:
                if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
    return total


def scrape(base: str) -> str:
    response = httpx.get(f"{base}/metrics", headers={"Connection": "close"})
    assert response.status_code == 200
    return response.text


INFO = "healthpredict_model_info"
REQUESTS = "healthpredict_http_requests_total"
OK = {"route": "/predict", "method": "POST", "status": "200"}


def test_counters_sum_across_two_workers(model_store: ModelStore, tmp_path: Path) -> None:  # noqa: F811
    prom_dir = tmp_path / "prom"
    env = app_env(
        model_store,
        tmp_path,
        HP_WORKERS="2",
        PROMETHEUS_MULTIPROC_DIR=str(prom_dir),
        HP_MLFLOW_TIMEOUT_S="60",  # two workers loading at once on a busy machine
    )
    with running_app(env, tmp_path / "app.log", timeout_s=300) as app:
        pids = wait_for_two_loaded_workers(app, prom_dir)
        payloads = cohort_payloads(model_store.data_path, MAX_REQUESTS, seed=9)
        sent, counts = send_until_both_workers_served(app, prom_dir, pids, payloads)
        assert sum(counts) == sent
        assert all(c > 0 for c in counts), f"one worker served all {sent} requests: {counts}"

        for _ in range(6):  # whichever worker answers, the totals are the same
            assert_totals(scrape(app.base), sent)

        # A worker dies: gunicorn replaces it; its counts stay, its live gauges go.
        kill_and_wait_for_replacement(app, prom_dir, pids[0])
        text = scrape(app.base)
        assert sample_sum(text, REQUESTS, **OK) == sent
        assert sample_sum(text, "healthpredict_http_requests_in_flight") == 1


def wait_for_two_loaded_workers(app: AppProcess, prom_dir: Path) -> list[int]:
    """The pids of the 2 current workers once both serve a model."""

    def loaded_workers() -> list[int] | None:
        """Gunicorn may have replaced a worker that was slow to start: pids read each time."""
        pids = workers(app.pid)
        if len(pids) == 2 and all(per_worker(prom_dir, p, INFO) >= 2 for p in pids):
            return pids
        return None

    return list(wait_for(loaded_workers, 300, "2 workers serving a model"))


def send_until_both_workers_served(
    app: AppProcess, prom_dir: Path, pids: list[int], payloads: list[dict]
) -> tuple[int, list[float]]:
    """Rounds of `N_REQUESTS` predictions, each on a new connection, until both workers have
    served some (or `MAX_REQUESTS` were sent); returns how many were sent and each worker's
    own count of them."""

    def post(payload: dict) -> int:
        headers = {**CLINICIAN, "Connection": "close"}  # a new connection: any worker
        return httpx.post(f"{app.base}/predict", json=payload, headers=headers).status_code

    # The kernel hands each new connection to whichever worker accepts first, so one busy
    # round can land on one worker (CI saw it): send rounds until both have served some.
    sent = 0
    with ThreadPoolExecutor(max_workers=6) as pool:
        while sent < MAX_REQUESTS:
            round_ = payloads[sent : sent + N_REQUESTS]
            assert list(pool.map(post, round_)) == [200] * len(round_)
            sent += len(round_)
            counts = settled_counts(prom_dir, pids, sent)
            if all(c > 0 for c in counts):
                break
    return sent, counts


def settled_counts(prom_dir: Path, pids: list[int], sent: int) -> list[float]:
    """Each worker's count once they add up to ``sent`` (up to 5 s): the middleware counts a
    request after its response has been sent, so the client can read the files first."""
    deadline = time.monotonic() + 5
    while True:
        counts = [per_worker(prom_dir, p, REQUESTS, **OK) for p in pids]
        if sum(counts) >= sent or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


def assert_totals(text: str, sent: int) -> None:
    """One scrape holds the totals of every worker, and no per-worker series."""
    assert sample_sum(text, REQUESTS, **OK) == sent
    assert sample_sum(text, "healthpredict_predictions_total") == sent
    assert sample_sum(text, "healthpredict_prediction_quality_total") == sent
    assert (
        sample_sum(text, "healthpredict_http_request_duration_seconds_count", route="/predict")
        == sent
    )
    assert sample_sum(text, "healthpredict_http_requests_in_flight") == 1  # this scrape
    assert 'pid="' not in text
    assert sample_sum(text, INFO, name="healthpredict-diagnosis") == 1


def kill_and_wait_for_replacement(app: AppProcess, prom_dir: Path, victim: int) -> None:
    """SIGKILL one worker; wait until gunicorn replaced it and its live gauges are gone."""
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: victim not in workers(app.pid) and len(workers(app.pid)) == 2,
        60,
        "gunicorn to replace the killed worker",
    )
    wait_for(
        lambda: not list(prom_dir.glob(f"gauge_live*_{victim}.db")),
        30,
        "the dead worker's live gauges to be removed",
    )
