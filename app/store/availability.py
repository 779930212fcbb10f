"""Whether the store can be used: migrated at start-up (retried while the database is down) and
reachable now, within a grace period. Read by `GET /health/ready`.

A database that is down at start-up does not stop the service: it starts live and not ready,
retries the migration every ``retry_s``, and becomes ready when the database answers (as the
model loader does for the models). Once running, a database that stops answering makes the
service not ready only after ``grace_s`` of failed checks, so one lost connection does not take
a replica out of its load balancer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import anyio.to_thread
from sqlalchemy import Engine, text

logger = logging.getLogger(__name__)


class OutageClock:
    """How long a dependency's checks have failed in a row, against its grace period (what
    readiness waits before it calls the dependency unavailable)."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._failing_since: float | None = None

    def succeeded(self) -> None:
        self._failing_since = None

    def failed(self) -> float | None:
        """Seconds of failures so far once they reach the grace period; None within it."""
        now = time.monotonic()
        self._failing_since = self._failing_since or now
        down_s = now - self._failing_since
        return down_s if down_s >= self.grace_s else None


class StoreAvailability:
    """Migration state and reachability of the audit/feedback store.

    Args:
        engine: the app's engine (its connect timeout bounds each check).
        migrate: blocking call that brings the store to the migrations' head (raises on failure).
        retry_s: delay between two migration attempts while the database is down.
        grace_s: how long checks may fail before the store counts as unavailable.
    """

    def __init__(
        self, engine: Engine, migrate: Callable[[], object], retry_s: float, grace_s: float
    ) -> None:
        self._engine = engine
        self._migrate = migrate
        self._retry_s = retry_s
        self._outage = OutageClock(grace_s)
        self.migrated = False
        self.reason: str | None = "migrating"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Migrate now; on failure keep retrying in the background instead of failing start-up."""
        if not await self._attempt():
            self._task = asyncio.create_task(self._retry(), name="store-migration-retry")

    async def _attempt(self) -> bool:
        try:
            await anyio.to_thread.run_sync(self._migrate)
        except Exception as exc:  # the driver's text may quote the URL: log its type only
            self.reason = f"database unavailable ({type(exc).__name__}); retrying"
            logger.warning(
                "store migration failed; retrying",
                extra={"error_type": type(exc).__name__, "retry_s": self._retry_s},
            )
            return False
        self.migrated, self.reason = True, None
        logger.info("store migrated")
        return True

    async def _retry(self) -> None:
        while not self.migrated:
            await asyncio.sleep(self._retry_s)
            await self._attempt()
        self._task = None

    async def check(self) -> str | None:
        """None when the store is usable; else why not (migration pending, or unreachable for
        longer than the grace period)."""
        if not self.migrated:
            return self.reason
        try:
            await anyio.to_thread.run_sync(self._ping)
        except Exception as exc:
            down_s = self._outage.failed()
            if down_s is not None:
                return f"database unreachable for {down_s:.0f} s ({type(exc).__name__})"
            return None
        self._outage.succeeded()
        return None

    def _ping(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
