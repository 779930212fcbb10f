"""Write-behind audit of predictions: a bounded queue flushed in batches off the request path.

Every accepted row is written: when the queue is full the request waits for room (backpressure)
instead of dropping the row, a failed write is retried, and `stop()` drains the queue before the
process exits. Rows are written by ``app.store.repository.save_predictions`` in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from app.store.repository import save_predictions

logger = logging.getLogger(__name__)

_STOP = object()
MAX_RETRY_DELAY_S = 5.0
SHUTDOWN_ATTEMPTS = 3


class AuditWriter:
    """Bounded asyncio write-behind queue of audit rows (dicts keyed by `PredictionRow` columns).

    Args:
        make_session: SQLAlchemy session factory of the store.
        max_queue: queue bound; `enqueue` waits while it is full.
        batch_size: most rows per INSERT.
        retry_delay_s: first delay before retrying a failed write (doubles, capped at 5 s).
        on_depth: called with the queue depth after each batch (H6's gauge).
    """

    def __init__(
        self,
        make_session: sessionmaker[Session],
        max_queue: int = 10_000,
        batch_size: int = 1000,
        retry_delay_s: float = 0.2,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._make_session = make_session
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=max_queue)
        self._batch_size = batch_size
        self._retry_delay_s = retry_delay_s
        self._on_depth = on_depth or (lambda n: None)
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Condition()
        self._stopping = False
        self.enqueued = 0
        self.written = 0
        self.lost = 0

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        """Start the background flusher (inside a running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    async def enqueue(self, row: dict[str, Any]) -> None:
        """Queue one row; waits for room when the queue is full (never drops it)."""
        if self._stopping:
            raise RuntimeError("audit writer is stopped")
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self._on_depth(self._queue.qsize())
            await self._queue.put(row)
        self.enqueued += 1

    async def enqueue_many(self, rows: Sequence[dict[str, Any]]) -> None:
        for row in rows:
            await self.enqueue(row)

    async def flush(self) -> None:
        """Wait until every row queued so far is written (e.g. before reading it back)."""
        target = self.enqueued
        async with self._progress:
            await self._progress.wait_for(lambda: self.written + self.lost >= target)

    async def stop(self) -> None:
        """Refuse new rows, write everything queued, then end the flusher."""
        if self._task is None:
            return
        self._stopping = True
        await self._queue.put(_STOP)
        await self._task
        self._task = None
        logger.info(
            "audit writer stopped",
            extra={"audit_written": self.written, "audit_lost": self.lost},
        )

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            batch: list[dict[str, Any]] = []
            stop = item is _STOP
            if not stop:
                batch.append(item)
            while len(batch) < self._batch_size and not stop:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is _STOP:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                await self._write(batch)
            self._on_depth(self._queue.qsize())
            if stop:
                return

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                await anyio.to_thread.run_sync(self._save, batch)
            except Exception as exc:  # the store is down or refused the rows
                # Never log the rows: they hold patient data.
                logger.error(
                    "audit write failed",
                    extra={"rows": len(batch), "attempt": attempt, "error": type(exc).__name__},
                )
                if self._stopping and attempt >= SHUTDOWN_ATTEMPTS:
                    self.lost += len(batch)
                    logger.error("audit rows lost at shutdown", extra={"rows": len(batch)})
                    break
                delay = min(MAX_RETRY_DELAY_S, self._retry_delay_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay)
                continue
            self.written += len(batch)
            break
        async with self._progress:
            self._progress.notify_all()

    def _save(self, batch: list[dict[str, Any]]) -> None:
        with self._make_session() as session:
            save_predictions(session, batch)
