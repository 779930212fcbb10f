"""Two `python -m app` replicas over one PostgreSQL database and one real `mlflow server`
(PostgreSQL backend store, an artifact directory) serve interchangeably.

- Feedback given through one replica is counted in the other's `/feedback/stats` (the state is
  in the database, not in a process).
- A promotion (the `champion` alias moved to new versions in the shared registry) is served by
  both once their next poll (`HP_MODEL_POLL_INTERVAL_S`) has seen it, with no restart and no
  reload call, and no failed request from the clients predicting on both meanwhile.

A freshly created database holds the MLflow server's store and a fresh schema the service's;
both are dropped afterwards. PostgreSQL unreachable: the test fails, it never skips.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from app.serving.sources import FINGERPRINT_TAG
from tests.api.conftest import CLINICIAN
from tests.conftest import TINY_SEED
from tests.factories import make_patient
from tests.integration._monitoring import running_app
from tests.integration.test_startup_sources import (
    app_process_env,
    free_port,
    running_mlflow_server,
)
from tests.pg_schema import empty_pg_schema, fresh_pg_database
from train_pipeline.train import train

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POLL_S = 2.0
NAMES = ("healthpredict-diagnosis", "healthpredict-treatment")


def promote_copy(tracking_uri: str) -> tuple[str, str]:
    """Register the champion's models again (same run, new versions) and move the alias to
    them: a promotion, as the retrain job's `promote` makes one. Returns the new versions."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    new = []
    for name in NAMES:
        current = client.get_model_version_by_alias(name, "champion")
        version = client.create_model_version(
            name,
            current.source,
            run_id=current.run_id,
            tags={FINGERPRINT_TAG: current.tags[FINGERPRINT_TAG]},
            # MLflow 3: a `models:/m-…` source must name its logged model.
            model_id=current.model_id or current.source.removeprefix("models:/"),
        )
        client.set_registered_model_alias(name, "champion", version.version)
        new.append(str(version.version))
    return new[0], new[1]


def served_versions(base: str) -> tuple[str | None, str | None]:
    health = httpx.get(f"{base}/health", timeout=10).json()
    return health["diagnosis_version"], health["treatment_version"]


def test_two_replicas_share_feedback_and_follow_a_promotion(
    tmp_path: Path, cohort_csv: Path
) -> None:
    with ExitStack() as stack:
        mlflow_db = stack.enter_context(fresh_pg_database("hp_mlflow"))
        store_url = stack.enter_context(empty_pg_schema())
        tracking = stack.enter_context(running_mlflow_server(mlflow_db, tmp_path))
        train(
            data_path=cohort_csv, tracking_uri=tracking, bentoml_home=tmp_path / "bento",
            seed=TINY_SEED, iterations=20, threads=1,
        )  # fmt: skip
        store = SimpleNamespace(tracking_uri=tracking, bentoml_home=tmp_path / "bento")
        a, b = (
            # One after the other: the first one migrates the shared schema.
            stack.enter_context(
                running_app(
                    app_process_env(
                        store, free_port(), tmp_path / "unused.db",
                        HP_DATABASE_URL=store_url, HP_MODEL_POLL_INTERVAL_S=str(POLL_S),
                        HP_MLFLOW_TIMEOUT_S="60",
                    ),
                    tmp_path / f"{name}.log",
                )
            ).base
            for name in ("a", "b")
        )  # fmt: skip
        assert served_versions(a) == served_versions(b) == ("1", "1")
        assert_feedback_is_shared(a, b)
        statuses: list[int] = []
        stop = threading.Event()
        clients = [
            threading.Thread(target=keep_predicting, args=(base, stop, statuses)) for base in (a, b)
        ]
        for client in clients:
            client.start()
        try:
            new = promote_copy(tracking)
            assert_both_follow(a, b, new)
        finally:
            stop.set()
            for client in clients:
                client.join()
        # The swaps happened under traffic: none of its requests failed.
        assert len(statuses) > 20 and set(statuses) == {200}, statuses


def keep_predicting(base: str, stop: threading.Event, statuses: list[int]) -> None:
    with httpx.Client(base_url=base, headers=CLINICIAN, timeout=60) as client:
        while not stop.is_set():
            statuses.append(client.post("/predict", json=make_patient()).status_code)


def assert_feedback_is_shared(a: str, b: str) -> None:
    predicted = httpx.post(f"{a}/predict", json=make_patient(), headers=CLINICIAN, timeout=30)
    assert predicted.status_code == 200, predicted.text
    feedback = {
        "prediction_id": predicted.json()["prediction_id"],
        "verdict": "wrong_diagnosis",
        "corrected_diagnosis": "pneumonia",
        "clinician_id": "clin-replica",
        "reason": "crackles",
    }
    deadline = time.monotonic() + 30  # the audit row is written behind the answer
    while True:
        response = httpx.post(f"{b}/feedback", json=feedback, headers=CLINICIAN, timeout=30)
        if response.status_code != 404 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert response.status_code in (200, 201), response.text
    stats: dict[str, Any] = httpx.get(f"{a}/feedback/stats", headers=CLINICIAN).json()
    assert stats["total"] == 1 and stats["by_verdict"].get("wrong_diagnosis") == 1


def assert_both_follow(a: str, b: str, new: tuple[str, str]) -> None:
    moved = time.monotonic()
    waited: dict[str, float] = {}
    # One poll interval, plus the load of the new pair (a few seconds on a busy machine).
    while len(waited) < 2 and time.monotonic() - moved < POLL_S + 60:
        for base in (a, b):
            if base not in waited and served_versions(base) == new:
                waited[base] = time.monotonic() - moved
        time.sleep(0.1)
    assert set(waited) == {a, b}, f"not both serving {new}: {waited}"
    for base in (a, b):
        registry = httpx.get(f"{base}/health", timeout=10).json()["registry"]
        assert (registry["diagnosis_version"], registry["treatment_version"]) == new
        # (>= 1: a poll between the two alias moves may swap to a fallback pair first)
        assert registry["checked_at"] and registry["swaps"] >= 1
        body = httpx.post(f"{base}/predict", json=make_patient(), headers=CLINICIAN).json()
        assert body["model"]["diagnosis_version"] == new[0]
