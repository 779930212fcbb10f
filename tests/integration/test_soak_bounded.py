"""A bounded `make soak` (20 s instead of 10 minutes): the script itself, against a real
`python -m app` over the trained store, answers no 5xx and loses no feedback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.settings import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_short_soak_has_no_5xx_and_loses_no_feedback(trained_store: Any, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "HP_MLFLOW_TRACKING_URI": trained_store.tracking_uri,
        "HP_BENTOML_HOME": str(trained_store.bentoml_home),
    }
    args = ["--minutes", "0.34", "--rate", "15", "--data", str(trained_store.data_path)]
    done = subprocess.run(
        [sys.executable, "bench/soak.py", *args, "--out", str(tmp_path)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [report] = tmp_path.glob("*-soak.md")
    text = report.read_text()
    assert "5xx: 0;" in text and "lost: 0;" in text, text
    assert "| 1 |" in text  # one minute row, with its statuses and RSS
