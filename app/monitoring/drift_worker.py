"""The Evidently drift run in a child process, so the serving process's event loop and GIL stay
free while it renders (~4 s of CPU for 500 inputs, most of it plotly widgets).

One spawned child per serving process, started on first use and kept: it imports Evidently once
(seconds) and then answers `drift_report` calls. The parent ships plain records (~100 KB for 500
inputs) and gets a `DriftResult` back (the HTML report is ~5 MB; a few ms to unpickle). The child
runs at a lower CPU priority (`CHILD_NICENESS`), ignores SIGINT (the parent stops it) and exits
when its parent dies. A child that died fails the call in progress or the next one
(`BrokenProcessPool`, logged) and is replaced by the call after.

Entry scripts must guard their body with ``if __name__ == "__main__":`` (ours do): a spawned
child imports the parent's main script, as every spawned multiprocessing child does.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypeVar

from app.audit.child_process import init_child
from app.monitoring.drift import DriftResult, compute_drift, reference_from_csv, to_frame

logger = logging.getLogger(__name__)

CHILD_NICENESS = 10  # background work: the serving processes get the cores first
STOP_TIMEOUT_S = 5.0
PRELOAD = ("evidently.presets",)

T = TypeVar("T")

ReferenceSource = Mapping[str, Sequence[Any]] | Path  # the model's sample, or the training CSV


def drift_report(
    reference: ReferenceSource, window: Sequence[Mapping[str, Any]], run_id: str
) -> DriftResult:
    """(In the child) frames from the records, then `compute_drift`."""
    ref = reference_from_csv(reference) if isinstance(reference, Path) else to_frame(reference)
    return compute_drift(ref, to_frame(window), run_id=run_id)


def _init_child(parent_pid: int, preload: Sequence[str]) -> None:
    init_child(parent_pid, CHILD_NICENESS)
    for module in preload:  # seconds for Evidently: once per child, not in its first report
        importlib.import_module(module)


def _children(pool: ProcessPoolExecutor) -> list[BaseProcess]:
    return list((getattr(pool, "_processes", None) or {}).values())


class DriftWorker:
    """A lazily started child process that runs one call at a time (the drift reports).

    Args:
        preload: modules the child imports as soon as it starts.
    """

    def __init__(self, preload: Sequence[str] = PRELOAD) -> None:
        self.preload = tuple(preload)
        self._pool: ProcessPoolExecutor | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id, if one is running."""
        children = _children(self._pool) if self._pool is not None else []
        return children[0].pid if children else None

    async def report(
        self, reference: ReferenceSource, window: Sequence[Mapping[str, Any]], run_id: str
    ) -> DriftResult:
        """`drift_report` in the child."""
        return await self.call(drift_report, reference, window, run_id)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the child (started now if there is none); both must pickle.

        Raises:
            BrokenProcessPool: the child died (before or during this call; the next call
                starts a new one), or `shutdown` stopped it.
        """
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_child,
                initargs=(os.getpid(), self.preload),
            )
        pool = self._pool
        try:
            future = pool.submit(fn, *args)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            if self._pool is pool:  # not `shutdown` killing it
                logger.error("the drift worker process died; a new one starts on the next call")
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            raise
        except asyncio.CancelledError:
            if self._pool is not pool and future.cancelled():  # `shutdown`, not our caller
                raise BrokenProcessPool("the drift worker was shut down") from None
            raise

    def shutdown(self) -> None:
        """Stop the child now (blocking, ~ms): it holds nothing worth keeping, and a clean exit
        of an interpreter with Evidently loaded takes ~1 s, a report in progress seconds."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        children = _children(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        for child in children:
            child.terminate()
        for child in children:
            if not connection.wait([child.sentinel], timeout=STOP_TIMEOUT_S):
                logger.warning("drift worker %s did not exit on SIGTERM", child.pid)
