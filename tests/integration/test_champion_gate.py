"""The champion gate, end to end through `python -m train_pipeline train` run as a command (a
child process, real SQLite MLflow store, real training on the real Pima CSV): shuffled labels
carry no signal, so the versions are registered WITHOUT the alias and the command exits
non-zero with a message saying why; `--allow-no-signal` overrides; the real labels pass."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from train_pipeline.__main__ import PROJECT_ROOT
from train_pipeline.gate import NO_SIGNAL_EXIT
from train_pipeline.task_config import load_task_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TASK = "pima_diabetes"
NAME = f"healthpredict-{TASK}-diagnosis"


def _csv(tmp: Path, shuffle: bool) -> Path:
    src = load_task_config(TASK).resolve_csv()
    if not src.is_file():  # the shared data is part of this machine's setup: fail, never skip
        pytest.fail(f"real CSV for {TASK} missing at {src}")
    df = pd.read_csv(src)
    if shuffle:
        df["Outcome"] = np.random.default_rng(0).permutation(df["Outcome"].to_numpy())
    out = tmp / ("shuffled.csv" if shuffle else "real.csv")
    df.to_csv(out, index=False)
    return out


def _run(tmp: Path, csv: Path, *extra: str) -> tuple[int, str, str]:
    """``python -m train_pipeline train ...`` in a child process: (exit code, URI, output)."""
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    args = [
        *("--task", TASK, "--data", str(csv), "--model", "catboost"),
        *("--iterations", "40", "--threads", "1", "--tracking-uri", uri),
        *("--bentoml-home", str(tmp / "bentoml"), *extra),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HP_", "MLFLOW_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "train_pipeline", "train", *args],
        cwd=PROJECT_ROOT,
        env={**env, "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, uri, proc.stdout + proc.stderr


def _alias_version(uri: str) -> str | None:
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        return str(client.get_model_version_by_alias(NAME, "champion").version)
    except MlflowException:
        return None


def test_shuffled_labels_do_not_get_the_champion_alias(tmp_path: Path) -> None:
    code, uri, output = _run(tmp_path, _csv(tmp_path, shuffle=True))
    assert code == NO_SIGNAL_EXIT, output
    assert "'champion' NOT set: the diagnosis model has no demonstrable signal" in output
    assert "--allow-no-signal sets it anyway" in output
    assert _alias_version(uri) is None
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions(f"name='{NAME}'")
    assert len(versions) == 1  # registered, just not aliased
    run = client.get_run(versions[0].run_id)
    assert run.data.tags["gate.passed"] == "false"
    assert "no demonstrable signal" in run.data.tags["gate.reason"]
    assert run.data.metrics["diagnosis_gate_passed"] == 0.0
    assert not (tmp_path / "bentoml" / "models").exists() or not any(
        (tmp_path / "bentoml" / "models").iterdir()
    )
    # the explicit override aliases the next (equally signal-less) version and exits 0
    code, _, output = _run(tmp_path, _csv(tmp_path, shuffle=True), "--allow-no-signal")
    assert code == 0, output
    assert _alias_version(uri) == "2"
    tags = (
        MlflowClient(tracking_uri=uri).get_run(client.get_model_version(NAME, "2").run_id).data.tags
    )
    assert tags["gate.overridden"] == "true"


def test_real_labels_pass_the_gate(tmp_path: Path) -> None:
    code, uri, output = _run(tmp_path, _csv(tmp_path, shuffle=False))
    assert code == 0, output
    assert _alias_version(uri) == "1"
