"""The shadow challenger in a child process, so its scoring never holds the serving GIL.

Scored in a thread of the serving process, each batch held the GIL for milliseconds, and every
time the event loop came back from a socket call it waited for it (up to the 5 ms switch
interval): `make bench-shadow` measured /predict at 8 connections at 479 req/s and p99 +24 %
with the thread, against 888 req/s without a challenger. The child loads the challenger itself
(same `load_challenger`), runs at a lower CPU priority (best effort: when the machine is busy
its queue fills and drops are counted), and answers each pickled batch with an `Outcome`.

Started like the audit writer (``python -m app.serving.shadow_process FD PARENT_PID``, a socket
pair; settings through the socket, never the command line) and stopped with the service.
"""

from __future__ import annotations

import contextlib
import json
import logging
import pickle
import subprocess
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from app.audit.child_process import child_args, spawn
from app.serving.shadow import Outcome, Pending
from app.settings import Settings

logger = logging.getLogger(__name__)

NICENESS = 10
STOP = b""
POLL_S = 1.0
LOAD_TIMEOUT_S = 300.0
SETTINGS_FIELDS = (
    "mlflow_tracking_uri",
    "mlflow_timeout_s",
    "diagnosis_model_name",
    "treatment_model_name",
    "shadow_alias",
    "top_k",
    "database_url",
)


class ShadowProcessError(RuntimeError):
    """The child could not load the challenger, or died."""


def serve(conn: Connection, parent_pid: int) -> None:
    """The child: settings in, (kind, value) of the load out, then an `Outcome` per batch."""
    from app.audit.child_process import init_child

    init_child(parent_pid, niceness=NICENESS)
    from app.serving.shadow import load_challenger, score_and_store
    from app.store import db

    settings = Settings(**json.loads(conn.recv_bytes()))
    engine = db.make_engine(settings.database_url)
    sessions = db.make_sessionmaker(engine)
    try:
        challenger = load_challenger(settings)
        info = challenger.bundle.info() if challenger else None
        conn.send_bytes(pickle.dumps(("ok", info)))
    except Exception as exc:
        conn.send_bytes(pickle.dumps(("error", f"{type(exc).__name__}: {str(exc)[:300]}")))
        challenger = None
    try:
        while True:
            try:
                payload = conn.recv_bytes()
            except EOFError:
                break
            if payload == STOP:
                break
            batch = pickle.loads(payload)
            outcome = score_and_store(challenger, sessions, batch) if challenger else Outcome()
            conn.send_bytes(pickle.dumps(outcome))
    finally:
        engine.dispose()


class ProcessBackend:
    """The `Backend` of `ShadowScorer` in a child process (`HP_SHADOW_PROCESS`, the default)."""

    def __init__(self, settings: Settings) -> None:
        self._config = json.dumps({k: getattr(settings, k) for k in SETTINGS_FIELDS}).encode()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def open(self) -> dict[str, str] | None:
        """Blocking: (re)start the child and wait until it has loaded the challenger.

        With no challenger the child is stopped at once: idle, it held ~350 MiB (MLflow and
        the libraries it imported to ask) in every worker; the next refresh starts one again.
        """
        self.close()
        with self._lock:
            conn = self._start()
            kind, value = self._reply(conn, LOAD_TIMEOUT_S)
        if kind == "error":
            self.close()
            raise ShadowProcessError(value)
        if value is None:
            self.close()
        return value  # type: ignore[no-any-return]

    def run(self, batch: Sequence[Pending]) -> Outcome:
        """Blocking: the child's `Outcome` for the batch (raises if it died)."""
        payload = pickle.dumps(list(batch), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            if self._conn is None:
                raise ShadowProcessError("the shadow process is not running")
            self._conn.send_bytes(payload)
            return self._reply(self._conn, None)  # type: ignore[no-any-return]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send_bytes(STOP)
            self._discard()

    def _reply(self, conn: Connection, timeout_s: float | None) -> Any:
        waited = 0.0
        try:
            while not conn.poll(POLL_S):
                waited += POLL_S
                if self._proc is None or self._proc.poll() is not None:
                    raise EOFError
                if timeout_s is not None and waited >= timeout_s:
                    raise TimeoutError(f"no answer within {timeout_s:g} s")
            return pickle.loads(conn.recv_bytes())
        except (EOFError, OSError) as exc:
            self._discard()
            raise ShadowProcessError(f"the shadow process died: {type(exc).__name__}") from exc

    def _start(self) -> Connection:
        proc, conn = spawn("app.serving.shadow_process")
        conn.send_bytes(self._config)
        self._proc, self._conn = proc, conn
        return conn

    def _discard(self) -> None:
        conn, proc, self._conn, self._proc = self._conn, self._proc, None, None
        if conn is not None:
            conn.close()
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5.0)
            if proc.poll() is None:
                proc.terminate()
                proc.wait(5.0)


def main(argv: list[str] | None = None) -> None:
    conn, parent_pid = child_args("The shadow challenger child (started by the API).", argv)
    logging.basicConfig(level=logging.WARNING)
    serve(conn, parent_pid)


if __name__ == "__main__":
    main()
