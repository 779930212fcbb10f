"""Replicas follow the registry: each API process polls where the served alias points.

Every ``HP_MODEL_POLL_INTERVAL_S`` the watcher asks the MLflow registry for the two versions
behind the alias (two small queries, no artifact). Unchanged: nothing else happens. Moved (a
promotion made by any process, or MLflow answering again after a BentoML fallback): the
`ModelManager` loads the new pair fully and swaps it in atomically, as `POST /models/reload`
does, so requests in flight finish on the old pair and none fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from app.errors import ModelLoadError
from app.serving.loader import ModelManager, run_in_daemon_thread
from app.serving.loader import _reason as reason_of
from app.serving.sources import alias_versions
from app.settings import Settings

logger = logging.getLogger(__name__)


class RegistryWatcher:
    """Polls the alias on an interval and hot-swaps the served pair when it moves.

    Args:
        models: the process's loader (its `reload` does the load and the atomic swap).
        settings: tracking URI, model names, alias, poll interval, MLflow deadline.
    """

    def __init__(self, models: ModelManager, settings: Settings) -> None:
        self.models = models
        self.settings = settings
        self.checked_at: datetime | None = None
        self.registry_versions: tuple[str, str] | None = None
        self.last_error: str | None = None
        self.swaps = 0
        self._tried: tuple[str, str] | None = None  # versions a reload was last attempted for
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start polling (nothing when the interval is 0)."""
        if self.settings.model_poll_interval_s > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="hp-registry-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.model_poll_interval_s)
            try:
                await self.check()
            except Exception:  # never let one bad poll end the watch
                logger.exception("registry check failed")

    async def check(self) -> bool:
        """One poll; True when the served pair was swapped for the alias' new one."""
        s = self.settings
        try:
            versions = await asyncio.wait_for(
                run_in_daemon_thread(
                    lambda: alias_versions(
                        s.mlflow_tracking_uri,
                        s.diagnosis_model_name,
                        s.treatment_model_name,
                        s.model_alias,
                    )
                ),
                s.mlflow_timeout_s,
            )
        except Exception as exc:
            self.checked_at, self.last_error = datetime.now(UTC), reason_of(exc)
            logger.info("registry not reachable; serving on", extra={"reason": self.last_error})
            return False
        self.checked_at, self.registry_versions = datetime.now(UTC), versions
        bundle = self.models.bundle
        if bundle is None:
            return False  # degraded: the loader's own retries are loading it
        served = (bundle.diagnosis_version, bundle.treatment_version)
        if bundle.source == "mlflow" and served == versions:
            self.last_error = None
            return False
        if versions == self._tried:
            return False  # refused once (the error says why): no reload at every poll
        self._tried = versions
        return await self._swap(versions)

    async def _swap(self, versions: tuple[str, str]) -> bool:
        try:
            bundle = await self.models.reload()
        except ModelLoadError as exc:
            self.last_error = f"reload failed: {exc}"
            logger.warning("alias moved but the new pair could not be loaded; old pair serves")
            return False
        self.swaps += 1
        if bundle.source == "mlflow":  # the versions the loader resolved, newer than the poll's
            self.registry_versions = self._tried = (
                bundle.diagnosis_version,
                bundle.treatment_version,
            )
        logger.info(
            "alias moved: new pair swapped in",
            extra={
                "registry_versions": list(versions),
                "diagnosis_version": bundle.diagnosis_version,
                "treatment_version": bundle.treatment_version,
                "source": bundle.source,
            },
        )
        return True

    def status(self) -> dict[str, Any]:
        """For `/health`: the alias, the versions it pointed at, when and how it was checked."""
        versions = self.registry_versions
        return {
            "alias": self.settings.model_alias,
            "poll_interval_s": self.settings.model_poll_interval_s,
            "checked_at": self.checked_at.isoformat() if self.checked_at else None,
            "diagnosis_version": versions[0] if versions else None,
            "treatment_version": versions[1] if versions else None,
            "error": self.last_error,
            "swaps": self.swaps,
        }
