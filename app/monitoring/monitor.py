"""Keeps the latest drift report cached and refreshes it off the request path.

`install_drift(app)` (called by `wiring.install`) runs `start_drift` / `stop_drift` in the
app's lifespan; `GET /monitoring/drift` reads `get_monitor(app).latest()`, never computing inside
a request (under load an on-demand report took 55 s). This process only reads the window (a
thread, for the database) and hashes it; the Evidently run (seconds of CPU) happens in a child
process (`DriftWorker`), and only when the window or the served model changed since the last run.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import anyio

from app.errors import AppError
from app.monitoring import metrics
from app.monitoring.drift import DriftResult
from app.monitoring.drift_worker import DriftWorker, ReferenceSource
from app.settings import Settings
from app.store.repository import recent_inputs

logger = logging.getLogger(__name__)
FIRST_REFRESH_S = 10.0
"""The first background refresh runs this long after start-up (or sooner, every refresh_s)."""


class DriftUnavailableError(AppError):
    """No drift report can be computed yet (no model, no reference or too few live inputs)."""

    status_code = 503
    code = "drift_unavailable"
    message = "No drift report is available yet"


class DriftMonitor:
    """Cached drift of the last ``settings.drift_window_size`` live inputs.

    Args:
        settings: drift window, refresh period, training data path (fallback reference).
        models: the `ModelManager` (its ``bundle.meta.reference_stats`` is the reference).
        sessionmaker: SQLAlchemy sessionmaker of the audit store (`recent_inputs`).
    """

    def __init__(self, settings: Settings, models: Any, sessionmaker: Any) -> None:
        self.settings = settings
        self.models = models
        self.sessionmaker = sessionmaker
        self.latest_result: DriftResult | None = None
        self._last_error: str | None = None
        self.worker = DriftWorker()
        self._key: str | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopped = False

    # --- the cheap part, in this process (a worker thread: database I/O) --------------------
    def _reference(self) -> tuple[ReferenceSource, str]:
        bundle = getattr(self.models, "bundle", None)
        if bundle is None:
            raise DriftUnavailableError("no model loaded, so no training reference")
        stats = bundle.meta.reference_stats
        if stats:
            return stats, bundle.run_id
        path = Path(self.settings.training_data_path)
        if not path.exists():
            raise DriftUnavailableError(
                f"the model carries no reference sample and the training data {path.name} is absent"
            )
        logger.warning("model has no reference_stats; using a sample of the training data")
        return path, bundle.run_id

    def _window(self) -> list[dict[str, Any]]:
        with self.sessionmaker() as session:
            return recent_inputs(session, self.settings.drift_window_size)

    def _job(self) -> tuple[str, ReferenceSource, list[dict[str, Any]], str]:
        """The window, its reference and run id, and their hash (the cache key)."""
        window = self._window()
        needed = self.settings.drift_min_window
        if len(window) < needed:
            raise DriftUnavailableError(
                f"not enough data: {len(window)} live inputs recorded, at least {needed} are "
                "needed for a drift verdict (HP_DRIFT_MIN_WINDOW)"
            )
        reference, run_id = self._reference()
        blob = json.dumps([run_id, window], sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest(), reference, window, run_id

    # --- async API --------------------------------------------------------------------------
    async def refresh(self) -> DriftResult:
        """Recompute (in the child) unless neither the window nor the model changed; publish
        the gauges."""
        async with self._lock:
            if self._stopped:
                raise DriftUnavailableError("the drift monitor is stopped (shutting down)")
            key, reference, window, run_id = await anyio.to_thread.run_sync(self._job)
            if key == self._key and self.latest_result is not None:
                return self.latest_result
            try:
                result = await self.worker.report(reference, window, run_id)
            except BrokenProcessPool as exc:
                raise DriftUnavailableError(
                    "the drift worker process died; a new one computes the next refresh"
                ) from exc
            self.latest_result, self._key = result, key
            metrics.set_drift(result.summary.drift_share, result.summary.n_drifted)
        logger.info(
            "drift report refreshed",
            extra={
                "window_size": result.summary.window_size,
                "drift_share": result.summary.drift_share,
            },
        )
        return result

    def latest(self) -> DriftResult:
        """The last report the background refresh computed; `DriftUnavailableError` (503)
        saying why when there is none yet."""
        if self.latest_result is not None:
            return self.latest_result
        raise DriftUnavailableError(
            self._last_error
            or "no drift report yet: the first background refresh runs within "
            f"{self._first_delay_s():g} s of start-up, "
            f"then every {self.settings.drift_refresh_s:g} s"
        )

    def _first_delay_s(self) -> float:
        return min(self.settings.drift_refresh_s, FIRST_REFRESH_S)

    async def _loop(self) -> None:
        delay = self._first_delay_s()  # not during startup itself
        while True:
            await asyncio.sleep(delay)
            delay = self.settings.drift_refresh_s
            try:
                await self.refresh()
                self._last_error = None
            except DriftUnavailableError as exc:
                self._last_error = exc.message
                logger.info("drift not computed: %s", exc)
            except Exception:  # keep the loop alive; the next period retries
                logger.exception("drift refresh failed")

    def start(self) -> None:
        self._stopped = False
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="drift-refresh")

    async def stop(self) -> None:
        """Cancel the background refresh and stop the child process."""
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await anyio.to_thread.run_sync(self.worker.shutdown)


def get_monitor(app: Any) -> DriftMonitor:
    """The app's monitor, created on first use (no background refresh unless started)."""
    state = app.state
    monitor = getattr(state, "drift", None)
    if monitor is None:
        monitor = DriftMonitor(state.settings, state.models, state.sessionmaker)
        state.drift = monitor
    return monitor


def install_drift(app: Any) -> None:
    """Run the drift refresher inside ``app``'s lifespan: started after the app's own startup
    (models, sessionmaker exist) and stopped before its teardown."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            await start_drift(a)
            try:
                yield state
            finally:
                await stop_drift(a)

    app.router.lifespan_context = lifespan


async def start_drift(app: Any) -> None:
    """Lifespan hook: start refreshing the drift report every ``drift_refresh_s``."""
    if not all(hasattr(app.state, a) for a in ("settings", "models", "sessionmaker")):
        logger.warning("drift refresher not started: the app has no models or store")
        return
    get_monitor(app).start()


async def stop_drift(app: Any) -> None:
    """Lifespan hook: cancel the background refresh and stop the drift child process."""
    monitor = getattr(app.state, "drift", None)
    if monitor is not None:
        await monitor.stop()
