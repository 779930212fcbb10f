"""A client-side bound on every wait for PostgreSQL: a partitioned network cannot hang a request.

``statement_timeout`` is enforced by the server: when the packets never arrive (a network
partition, a frozen proxy or load balancer, a host that stopped without a reset), the client
waits for an answer that will not come, as long as the kernel keeps the socket open (up to
~15 minutes of TCP retransmissions, or forever behind a proxy that still acknowledges). TCP
keepalives and ``tcp_user_timeout`` catch only the first case, and only once the kernel gives
up. So every wait psycopg makes on the socket (a statement, a commit, a rollback, the pool's
pre-ping, the reset on check-in) is given a deadline here: past it the connection is closed as
broken, SQLAlchemy sees a disconnect (``connection.broken``) and drops it from the pool, and the
caller gets an ``OperationalError`` (503 ``store_unavailable`` on a request).

psycopg's ``Connection.wait`` takes a ``timeout`` (3.2+) and raises its private
``errors._WaitTimeout`` on expiry; tests/integration/test_store_partition.py pins both.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import errors as pg_errors


class NoAnswerError(psycopg.OperationalError):
    """PostgreSQL did not answer within the client-side bound (the connection is closed)."""


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose waits on the socket last at most ``io_timeout_s``."""

    io_timeout_s: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        bound = timeout if timeout is not None else self.io_timeout_s
        try:
            return super().wait(gen, interval=interval, timeout=bound)
        except pg_errors._WaitTimeout as exc:
            # The protocol is mid-exchange: the connection cannot be reused. finish() marks it
            # broken (not closed cleanly), which SQLAlchemy's psycopg dialect reads as a
            # disconnect and invalidates.
            self.pgconn.finish()
            raise NoAnswerError(f"no answer from the database within {bound:g} s") from exc


def connect_bounded(io_timeout_s: float, *args: Any, **kwargs: Any) -> BoundedConnection:
    """`psycopg.connect` for SQLAlchemy's ``do_connect`` event, with the wait bound set."""
    connection = BoundedConnection.connect(*args, **kwargs)
    connection.io_timeout_s = io_timeout_s
    return connection
