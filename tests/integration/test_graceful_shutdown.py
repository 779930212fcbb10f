"""SIGTERM to a real `python -m app`, with one worker (uvicorn) and with two (gunicorn's uvicorn
workers): readiness turns 503 at once, the server serves through the drain, then refuses new
connections (refused, not reset: one poll may meet the instant the listener closes, the next
must be refused), a request in flight at the signal gets its answer and its audit
row, and the process exits 0 well within 30 s."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.settings import DEFAULT_CLINICIAN_KEY, PROJECT_ROOT
from app.store import db
from app.store.tables import PredictionRow
from tests.factories import make_patient
from tests.integration.test_startup_sources import app_process_env, free_port, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DRAIN_S = 2.0


def start_predict(port: int) -> tuple[socket.socket, bytes]:
    """A `/predict` whose headers and first half of the body are sent: in flight, the app
    waiting for the rest; returns the socket and the rest of the body."""
    body = json.dumps(make_patient()).encode()
    head = (
        "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-API-Key: {DEFAULT_CLINICIAN_KEY}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    half = len(body) // 2
    sock.sendall(head + body[:half])
    return sock, body[half:]


def finish(sock: socket.socket, rest: bytes) -> tuple[int, dict[str, Any]]:
    sock.sendall(rest)
    response = http.client.HTTPResponse(sock)
    response.begin()
    status, payload = response.status, json.loads(response.read())
    sock.close()
    return status, payload


RESET = -1
"""`readiness` of a connection reset before any answer: the kernel had queued it in the accept
backlog in the instant the last listener closed (README, "SIGTERM")."""


def readiness(port: int) -> int | None:
    """`/health/ready`'s status on a new connection; None when the connection is refused,
    `RESET` when it was reset before any answer."""
    url, headers = f"http://127.0.0.1:{port}/health/ready", {"Connection": "close"}
    try:
        return httpx.get(url, headers=headers, timeout=5).status_code
    except httpx.ConnectError as exc:
        assert isinstance(exc.__context__, ConnectionRefusedError) or "refused" in str(exc)
        return None
    except httpx.ReadError as exc:
        assert "reset by peer" in str(exc), repr(exc)  # (not a read timeout or another error)
        return RESET


def wait_all_workers_ready(port: int, timeout_s: float) -> None:
    """Ten ready answers in a row on new connections (with two workers, both answered)."""
    deadline, streak = time.monotonic() + timeout_s, 0
    while streak < 10:
        assert time.monotonic() < deadline, "the workers did not all turn ready"
        streak = streak + 1 if readiness(port) == 200 else 0
        time.sleep(0.05 if streak else 0.5)


def audited(database: Path, prediction_id: str) -> bool:
    engine = db.make_engine(f"sqlite:///{database}")
    try:
        with db.make_sessionmaker(engine)() as session:
            return session.get(PredictionRow, prediction_id) is not None
    finally:
        engine.dispose()


@pytest.mark.parametrize("workers", [1, 2], ids=["one-worker", "two-workers"])
def test_sigterm_drains_then_exits_0(trained_store: Any, tmp_path: Path, workers: int) -> None:
    port, database = free_port(), tmp_path / "hp.db"
    env = app_process_env(
        trained_store,
        port,
        database,
        HP_WORKERS=str(workers),
        HP_SHUTDOWN_DRAIN_S=str(DRAIN_S),
        HP_ACCESS_LOG="false",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "app.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app"], env=env, cwd=PROJECT_ROOT, stdout=log, stderr=log
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/health/live", timeout_s=240)
            wait_all_workers_ready(port, timeout_s=240)
            sock, rest = start_predict(port)
            time.sleep(0.5)  # the app has the headers and waits for the body

            os.kill(proc.pid, signal.SIGTERM)
            signalled = time.monotonic()
            while (status := readiness(port)) == 200:  # the signal reaches every worker
                assert time.monotonic() - signalled < 1.0, "still ready 1 s after SIGTERM"
            assert status == 503  # not refused: the drain serves, saying "not ready"
            while (status := readiness(port)) not in (None, RESET):
                assert status == 503, status
                assert time.monotonic() - signalled < DRAIN_S + 10, "still listening"
            refused_after = time.monotonic() - signalled
            if status == RESET:  # at the listener's close (a poll every few ms can meet it) ...
                assert readiness(port) is None  # ... and the very next connection is refused
            assert refused_after >= DRAIN_S * 0.9, f"stopped listening after {refused_after} s"

            code, payload = finish(sock, rest)  # in flight across the listener's close
            assert code == 200, payload
            assert proc.wait(timeout=30) == 0
            exited_after = time.monotonic() - signalled
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log_path.read_text(errors="replace")
    assert exited_after < 30, f"exited after {exited_after:.1f} s"
    assert text.count("audit writer stopped") == workers, text[-3000:]
    assert audited(database, payload["prediction_id"])
    print(f"refused after {refused_after:.2f} s, exit 0 after {exited_after:.2f} s")
