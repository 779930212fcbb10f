"""The chain heads a real `python -m app` logs anchor its chains' ends outside the database:
`audit verify --heads LOG` names rows deleted at a chain's end, and a chain deleted whole, which
the store alone cannot show."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import PROJECT_ROOT
from app.store.audit_verify import read_heads
from tests.api.conftest import CLINICIAN
from tests.audit.test_audit_chain import run_verify as run_verify_url
from tests.factories import make_patient
from tests.integration.test_startup_sources import app_process_env, free_port, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

AUDIT_TABLES = ("predictions", "feedback", "audit_events")


@pytest.fixture(scope="module")
def served_store(trained_store: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A SQLite store written by a real `python -m app` (predictions, feedback), stopped by
    SIGTERM, and its log (stderr: the service's and its audit child's JSON lines)."""
    root = tmp_path_factory.mktemp("heads")
    database, log_path, port = root / "hp.db", root / "app.log", free_port()
    env = app_process_env(trained_store, port, database, HP_LOG_LEVEL="WARNING")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/health/ready", timeout_s=180)
            with httpx.Client(base_url=base, headers=CLINICIAN, timeout=30) as client:
                ids = [
                    client.post("/predict", json=make_patient(age=30 + i)).json()["prediction_id"]
                    for i in range(6)
                ]
                feedback = {"prediction_id": ids[0], "verdict": "correct", "clinician_id": "c-1"}
                assert client.post("/feedback", json=feedback).status_code == 201
            os.kill(proc.pid, signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    return database, log_path


def run_verify(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_verify_url(f"sqlite:///{database}", *args)


def copy_with(database: Path, tmp_path: Path, *statements: str) -> Path:
    """A copy of the store with ``statements`` applied (what someone with database access did)."""
    copy = tmp_path / "tampered.db"
    with sqlite3.connect(database) as source, sqlite3.connect(copy) as target:
        source.backup(target)
        for statement in statements:
            target.execute(statement)
    return copy


def longest_prediction_chain(database: Path) -> tuple[str, int]:
    with sqlite3.connect(database) as conn:
        row = conn.execute(
            "SELECT chain_id, MAX(seq) FROM predictions GROUP BY chain_id ORDER BY 2 DESC"
        ).fetchone()
    return str(row[0]), int(row[1])


def test_the_log_holds_each_chains_head_even_at_warning_level(
    served_store: tuple[Path, Path],
) -> None:
    database, log_path = served_store
    heads = read_heads(log_path.read_text().splitlines())
    chain_id, last = longest_prediction_chain(database)
    assert heads[chain_id].seq == last
    assert len(heads) >= 2  # the audit child's chain and the serving process's (feedback)
    assert "clin" not in log_path.read_text() and "c-1" not in log_path.read_text()


def test_the_intact_store_verifies_against_the_heads(served_store: tuple[Path, Path]) -> None:
    database, log_path = served_store
    result = run_verify(database, "--heads", str(log_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit verify: OK" in result.stdout


def test_rows_deleted_at_a_chains_end_are_named_only_with_the_heads(
    served_store: tuple[Path, Path], tmp_path: Path
) -> None:
    database, log_path = served_store
    chain_id, last = longest_prediction_chain(database)
    tampered = copy_with(
        database,
        tmp_path,
        "DELETE FROM feedback",  # the feedback pointed at a prediction; not the point here
        f"DELETE FROM predictions WHERE chain_id = '{chain_id}' AND seq > {last - 2}",
    )
    blind = run_verify(tampered)
    assert "row(s) deleted at the chain's end" not in blind.stdout  # the store alone: blind
    result = run_verify(tampered, "--heads", str(log_path))
    assert result.returncode == 1, result.stdout
    assert (
        f"deleted: chain {chain_id} seq {last - 1} 2 row(s) deleted at the chain's end"
        in result.stdout
    ), result.stdout


def test_a_chain_deleted_whole_is_named(served_store: tuple[Path, Path], tmp_path: Path) -> None:
    database, log_path = served_store
    with sqlite3.connect(database) as conn:
        [chain_id] = conn.execute("SELECT chain_id FROM feedback").fetchone()
    tampered = copy_with(
        database,
        tmp_path,
        *(f"DELETE FROM {table} WHERE chain_id = '{chain_id}'" for table in AUDIT_TABLES),
    )
    result = run_verify(tampered, "--heads", str(log_path))
    assert result.returncode == 1, result.stdout
    assert f"chain {chain_id} seq 1" in result.stdout and "the whole chain" in result.stdout


def test_rows_from_before_the_chain_are_counted_not_failed_when_the_operator_says_when(
    served_store: tuple[Path, Path], tmp_path: Path
) -> None:
    database, _ = served_store
    tampered = copy_with(
        database,
        tmp_path,
        "INSERT INTO audit_events (id, created_at, kind, detail) "
        "VALUES ('before-0002', '2026-01-01 08:00:00.000000', 'model_reload', '{}')",
        "INSERT INTO audit_events (id, created_at, kind, detail) "
        "VALUES ('forged-later', '2026-03-01 08:00:00.000000', 'model_reload', '{}')",
    )
    failed = run_verify(tampered)
    assert failed.returncode == 1 and "unchained: audit_events row before-0002" in failed.stdout
    result = run_verify(tampered, "--chained-since", "2026-02-01T00:00")
    assert result.returncode == 1, result.stdout  # the later one is still named
    assert "1 pre-chain rows, not verifiable" in result.stdout
    assert "unchained: audit_events row forged-later" in result.stdout
    assert "before-0002" not in result.stdout
