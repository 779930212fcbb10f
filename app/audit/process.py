"""The audit INSERTs in a child process, so they never hold the serving process's GIL.

Binding and inserting audit rows in a thread of the serving process holds its GIL for part of
the time (row dicts, JSON text, the DB-API's binding), and that part is taken from the requests
being served. Side by side (40 batches of 1,000 cohort patients on one connection, alternating
servers, 5 rounds after a restart): 31-35 ms a batch with this child against 38-48 ms with the
same encoded rows written by a thread (and 44-53 ms before the encoding; README).

The serving process sends what it queued, pickled (a batch's `EncodedRows` is three byte
strings: a memory copy), over a socket; the child seals and inserts their columns
(`app.store.prediction_batch.save_batches`: the same INSERT, the same stored values) on its own
engine, then answers. `AuditWriter` waits
for the answer, so its guarantees stand: a row counts as written once committed, a failed write
is retried, a flush means readable.

The child is a fresh interpreter (``python -m app.audit.process``, not a fork: the parent has
threads and models; not `multiprocessing`'s spawn either, which re-imports the parent's main
script) started with the writer, talking over a socket pair; the database URL reaches it through
that socket, never its command line, and so does the audit's HMAC key (each child seals its
rows into a chain of its own, `app.store.chain`). It is replaced after it dies (the write in
progress fails and is retried; rows the dead child had committed are not stored twice,
`save_batches` skips ids already stored). It ignores SIGINT, exits when its parent dies,
and keeps normal CPU priority: the audit is part of every request's contract, and a starved
writer would hold requests up through the queue's backpressure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import subprocess
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection

from sqlalchemy import Engine

from app.audit.child_process import child_args, spawn
from app.audit.rows import Item, batches

logger = logging.getLogger(__name__)

OK = b""  # child -> parent: the rows are committed
STOP = b""  # parent -> child: exit
POLL_S = 1.0
STOP_TIMEOUT_S = 10.0


class AuditProcessError(RuntimeError):
    """The child did not store the rows (it died, or the store refused them: the exception's
    type name; never its message, which can quote the rows)."""


def serve(conn: Connection, parent_pid: int) -> None:
    """The child: read the database URL, then answer each payload with `OK` once its rows are
    committed, or with the name of the exception that stopped them; an empty payload (or a
    closed socket) ends it."""
    from app.audit.child_process import init_child

    init_child(parent_pid)
    from app.log_config import configure_logging
    from app.store import db

    # JSON lines on the stderr it shares with the parent: its chain heads belong in that log.
    configure_logging(os.environ.get("HP_LOG_LEVEL", "INFO"))
    from app.store.chain import Chain
    from app.store.prediction_batch import save_batches

    url = conn.recv_bytes().decode()
    key = conn.recv_bytes()  # the audit's HMAC key (empty: rows are not chained)
    engine = db.make_engine(url, **json.loads(conn.recv_bytes()))  # the parent's bounds
    chain = Chain(key) if key else None  # a new chain for each child
    sessions = db.make_sessionmaker(engine)
    try:
        while True:
            try:
                payload = conn.recv_bytes()
            except EOFError:
                break
            if payload == STOP:
                break
            try:
                with sessions() as session:
                    save_batches(session, batches(pickle.loads(payload)), chain)
            except Exception as exc:  # the parent retries; rows never leave in messages
                conn.send_bytes(type(exc).__name__.encode())
            else:
                conn.send_bytes(OK)
    finally:
        engine.dispose()


class AuditProcess:
    """A child process that stores audit rows for `AuditWriter` (one `save` at a time).

    Args:
        engine: the serving process's engine of the store (a file or a server: an in-memory
            SQLite database is private to its process); the child opens its own on the same URL.
        chain_key: the audit's HMAC key: each child seals its rows into a chain of its own
            (`app.store.chain`); sent over the socket, like the URL.
        bounds: `app.store.db.make_engine`'s timeouts (``connect_timeout_s``,
            ``statement_timeout_s``, ``io_timeout_s``) for the child's engine, the serving
            process's own (default: make_engine's defaults).
    """

    def __init__(
        self,
        engine: Engine,
        chain_key: bytes | None = None,
        bounds: dict[str, float] | None = None,
    ) -> None:
        self.database_url = engine.url.render_as_string(hide_password=False)
        self._chain_key = chain_key or b""
        self._bounds = json.dumps(bounds or {}).encode()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id, while one runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        """Start the child now (it imports SQLAlchemy while the service finishes starting); if
        it cannot be started, the first `save` tries again (and fails, and is retried)."""
        with self._lock:
            try:
                self._connection()
            except OSError:
                self._discard()
                logger.exception(
                    "the audit writer process did not start; retried at the first write"
                )

    def save(self, items: Sequence[Item]) -> None:
        """Store the rows of queued ``items`` (blocking: call it from a worker thread).

        Raises:
            AuditProcessError: not stored; the caller retries (a new child if this one died).
        """
        payload = pickle.dumps(list(items), protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            try:
                conn = self._connection()
                conn.send_bytes(payload)
                while not conn.poll(POLL_S):
                    if self._proc is None or self._proc.poll() is not None:
                        raise EOFError
                reply = conn.recv_bytes()
            except (EOFError, OSError) as exc:
                self._discard()
                logger.error("the audit writer process died; the write is retried in a new one")
                raise AuditProcessError("the audit writer process died") from exc
        if reply != OK:
            raise AuditProcessError(reply.decode())

    def close(self) -> None:
        """Stop the child once it has answered (blocking, ~ms); the next `save` starts one."""
        with self._lock:
            if self._conn is not None and self._proc is not None:
                with contextlib.suppress(OSError):  # a dead child: nothing to tell
                    self._conn.send_bytes(STOP)
                try:
                    self._proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    logger.warning("audit writer process %s did not stop", self._proc.pid)
            self._discard()

    def _connection(self) -> Connection:
        if self._conn is not None and self._proc is not None and self._proc.poll() is None:
            return self._conn
        self._discard()
        proc, conn = spawn("app.audit.process")
        conn.send_bytes(self.database_url.encode())
        conn.send_bytes(self._chain_key)
        conn.send_bytes(self._bounds)
        self._proc, self._conn = proc, conn
        return conn

    def _discard(self) -> None:
        conn, proc, self._conn, self._proc = self._conn, self._proc, None, None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT_S)


def main(argv: list[str] | None = None) -> None:
    serve(*child_args("The audit writer child (started by the API).", argv))


if __name__ == "__main__":
    main()
