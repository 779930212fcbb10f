"""The Celery broker the API sends retraining jobs to (Redis or RabbitMQ): every wait on it is
bounded by ``timeout_s`` (connect, read, write, publish with its retry), and a reachability check
for `GET /health/ready`.

Kombu's defaults wait without bound on a broker that accepted the connection and then stopped
answering (a partition: Redis' ``socket_timeout`` is ``None``, an AMQP publish is not confirmed),
so the options are set here, per transport, for both the sender and the check.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from typing import Any

from app.store.availability import OutageClock

PUBLISH_RETRIES = 1  # one retry on a fresh connection (a reset one), then 503


def transport_options(url: str, timeout_s: float) -> dict[str, Any]:
    """Kombu ``transport_options`` bounding each socket wait on the broker at ``url``."""
    if url.startswith(("redis://", "rediss://")):
        return {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if url.startswith(("amqp://", "amqps://", "pyamqp://")):
        # confirm_publish: a publish returns once the broker has the message (not once it sits
        # in a socket buffer of a partitioned connection), within read_timeout.
        return {"read_timeout": timeout_s, "write_timeout": timeout_s, "confirm_publish": True}
    return {}


def celery_options(url: str, timeout_s: float) -> dict[str, Any]:
    """Celery settings for a client that only sends tasks, every wait bounded by ``timeout_s``
    (at most ``PUBLISH_RETRIES + 1`` attempts)."""
    return {
        "broker_connection_timeout": timeout_s,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport_options(url, timeout_s),
        "task_publish_retry_policy": {
            "max_retries": PUBLISH_RETRIES,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
    }


def ping(url: str, timeout_s: float) -> None:
    """Connect to the broker at ``url`` and speak to it once; raise if it does not answer."""
    from kombu.connection import Connection

    options = transport_options(url, timeout_s)
    with Connection(url, connect_timeout=timeout_s, transport_options=options) as conn:  # type: ignore[no-untyped-call]
        conn.ensure_connection(max_retries=0)
        conn.default_channel  # noqa: B018  (Redis: PING; AMQP: a channel opened, answered)


class BrokerAvailability:
    """Whether the broker answers, for readiness: one bounded check at a time (a check that is
    still stuck counts as a failure instead of starting another), not ready only after
    ``grace_s`` of failures."""

    def __init__(self, url: str, timeout_s: float, grace_s: float) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._outage = OutageClock(grace_s)
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "broker-check")
        self._pending: concurrent.futures.Future[None] | None = None

    async def check(self) -> str | None:
        """None when the broker answered (or failed for less than the grace); else why not."""
        error = await self._attempt()
        if error is None:
            self._outage.succeeded()
            return None
        down_s = self._outage.failed()
        if down_s is not None:
            return f"broker unreachable for {down_s:.0f} s ({error})"
        return None

    async def _attempt(self) -> str | None:
        if self._pending is not None and not self._pending.done():
            return "previous check still waiting"
        self._pending = self._executor.submit(ping, self._url, self._timeout_s)
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._pending), self._timeout_s * 2 + 1)
        except TimeoutError:
            return "no answer"
        except Exception as exc:  # the broker's text may quote the URL: its type only
            return type(exc).__name__
        return None

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._executor.shutdown(wait=False, cancel_futures=True)
