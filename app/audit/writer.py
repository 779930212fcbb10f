"""Write-behind audit of predictions: a bounded queue flushed in batches off the request path.

Every accepted row is written: when the queue is full the request waits for room (backpressure)
instead of dropping the row, a failed write is retried, and `stop()` drains the queue before the
process exits. Rows are written by ``app.store.prediction_batch.save_batches``, in a child process
(`app.audit.process`, the default for a store in a file or on a server: off this process's GIL)
or in a worker thread.

Rows are coalesced: once a row is waiting, the writer lingers up to ``linger_s`` for more (cut
short when a batch is full, the queue is full, or on `flush()`/`stop()`), so a steady stream of
single predictions costs a few multi-row transactions a second instead of one commit per row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from app.audit.process import AuditProcess
from app.audit.rows import EncodedRows, Item, batches
from app.errors import STORE_RETRY_AFTER_S, StoreUnavailableError
from app.store.chain import Chain
from app.store.prediction_batch import save_batches

logger = logging.getLogger(__name__)

Row = dict[str, Any]
_STOP: list[Row] = []  # the stop marker: an item of no rows, told apart by identity
MAX_RETRY_DELAY_S = 5.0
SHUTDOWN_ATTEMPTS = 3
DEFAULT_LINGER_S = 0.05


class _RowQueue(asyncio.Queue[Item]):
    """An asyncio queue of items (lists of rows, or a batch's `EncodedRows`) whose size and
    bound count rows, not items: a 1,000-patient batch is queued and taken as one item."""

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self._rows = 0

    def _put(self, item: Item) -> None:
        super()._put(item)
        self._rows += len(item)

    def _get(self) -> Item:
        item: Item = super()._get()
        self._rows -= len(item)
        return item

    def qsize(self) -> int:
        return self._rows

    def room(self) -> int:
        """Rows that can be queued now without waiting (unbounded: any number)."""
        return self.maxsize - self._rows if self.maxsize > 0 else 1 << 62


class AuditBacklogError(StoreUnavailableError):
    """The audit queue stayed full past its bound (the store is not taking rows): a prediction
    is never answered without its audit row, so the request answers 503."""

    message = "The audit store is not keeping up; retry shortly"


class AuditWriter:
    """Bounded asyncio write-behind queue of audit rows (dicts keyed by `PredictionRow` columns).

    Args:
        make_session: SQLAlchemy session factory of the store.
        max_queue: queue bound; `enqueue` waits while it is full.
        batch_size: most rows per INSERT.
        retry_delay_s: first delay before retrying a failed write (doubles, capped at 5 s).
        on_depth: called with the queue depth after each batch (H6's gauge).
        linger_s: longest wait for more rows once one is queued (0: write what is there).
        process: the child process that stores the rows (None: a worker thread does, through
            ``make_session``); started by `start`, stopped by `stop` once the queue is drained.
        chain_key: the audit's HMAC key: rows are sealed into the writer's chain, in the order
            they are written (`app.store.chain`); None: not chained. Give it to ``process`` too.
        room_timeout_s: longest wait of `enqueue_encoded` for room in a full queue, then
            `AuditBacklogError` (None: no bound).

    Attributes:
        enqueued, written, lost: rows accepted, stored, given up at shutdown.
        batches: transactions that stored rows (``written / batches`` is the mean batch).
    """

    def __init__(
        self,
        make_session: sessionmaker[Session],
        max_queue: int = 10_000,
        batch_size: int = 1000,
        retry_delay_s: float = 0.2,
        on_depth: Callable[[int], None] | None = None,
        linger_s: float = DEFAULT_LINGER_S,
        process: AuditProcess | None = None,
        chain_key: bytes | None = None,
        room_timeout_s: float | None = None,
    ) -> None:
        self._make_session = make_session
        self._room_timeout_s = room_timeout_s
        # The thread path's chain (the child process keeps its own): rows sealed in order.
        self._chain = Chain(chain_key) if chain_key and process is None else None
        self._process = process
        self._queue = _RowQueue(maxsize=max_queue)
        self._batch_size = max(1, batch_size)
        self._retry_delay_s = retry_delay_s
        self._on_depth = on_depth or (lambda n: None)
        self._linger_s = max(0.0, linger_s)
        # Queue depth that ends a linger: a full batch (the writer holds one row), or a full
        # queue (enqueue would wait on a writer that waits for more rows).
        full_queue = max_queue if max_queue > 0 else self._batch_size
        self._wake_depth = max(1, min(self._batch_size - 1, full_queue))
        self._wake = asyncio.Event()
        self._taken = asyncio.Event()  # set whenever the writer takes items off the queue
        self._needing_room = 0  # `enqueue_encoded` calls waiting for room
        self._flushing = 0
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Condition()
        self._stopping = False
        self.enqueued = 0
        self.written = 0
        self.lost = 0
        self.batches = 0

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        """Start the background flusher (inside a running event loop)."""
        if self._task is None:
            if self._process is not None:
                self._process.start()
            self._task = asyncio.get_running_loop().create_task(self._run(), name="audit-writer")

    async def enqueue(self, row: Row) -> None:
        """Queue one row; waits for room when the queue is full (never drops it)."""
        await self.enqueue_many([row])

    async def enqueue_many(self, rows: Sequence[Row]) -> None:
        """Queue rows in order, as few chunks as the room allows (one when it fits: a
        1,000-patient batch is one queue item); waits for room when the queue is full."""
        queue, rest = self._queue, list(rows)
        while rest:
            if self._stopping:
                raise RuntimeError("audit writer is stopped")
            room = queue.room()
            if room <= 0:  # full: wake the writer, wait until it takes a chunk
                self._on_depth(queue.qsize())
                self._wake.set()
                await queue.put(rest[:1])
                self.enqueued += 1
                rest = rest[1:]
                continue
            chunk, rest = (rest, []) if room >= len(rest) else (rest[:room], rest[room:])
            queue.put_nowait(chunk)
            self.enqueued += len(chunk)
        if queue.qsize() >= self._wake_depth:
            self._wake.set()

    async def enqueue_encoded(self, rows: EncodedRows) -> None:
        """Queue a batch's encoded rows as one item (never split): waits until the queue has
        room for all of them, or is empty when they are more than its bound (at most
        ``room_timeout_s``: `AuditBacklogError`, 503)."""
        if self._stopping:
            raise RuntimeError("audit writer is stopped")
        if not len(rows):
            return
        queue = self._queue
        self._needing_room += 1  # the writer does not linger meanwhile
        try:
            async with asyncio.timeout(self._room_timeout_s):
                while queue.room() < len(rows) and not queue.empty():
                    self._on_depth(queue.qsize())
                    self._taken.clear()
                    self._wake.set()
                    await self._taken.wait()  # the writer took items: look again
        except TimeoutError:
            retry = {"Retry-After": str(STORE_RETRY_AFTER_S)}
            raise AuditBacklogError(headers=retry) from None
        finally:
            self._needing_room -= 1
        if self._stopping:  # stopped while waiting: queued now, they would never be written
            raise RuntimeError("audit writer is stopped")
        queue.put_nowait(rows)  # an empty queue takes an oversized item (the bound is soft)
        self.enqueued += len(rows)
        if queue.qsize() >= self._wake_depth:
            self._wake.set()

    async def flush(self) -> None:
        """Wait until every row queued so far is written (e.g. before reading it back); the
        writer does not linger while a flush is waiting."""
        target = self.enqueued
        if self.written + self.lost >= target:
            return
        self._flushing += 1
        self._wake.set()
        try:
            async with self._progress:
                await self._progress.wait_for(lambda: self.written + self.lost >= target)
        finally:
            self._flushing -= 1

    async def stop(self) -> None:
        """Refuse new rows, write everything queued, then end the flusher."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        await self._queue.put(_STOP)
        await self._task
        self._task = None
        if self._process is not None:
            await anyio.to_thread.run_sync(self._process.close)
        logger.info(
            "audit writer stopped",
            extra={"audit_written": self.written, "audit_lost": self.lost},
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        drained_at = loop.time()
        while True:
            if self._queue.empty():
                item = await self._queue.get()
                deadline = loop.time() + self._linger_s
            else:  # queued since the last batch was drained: it has been waiting since then
                item = self._queue.get_nowait()
                deadline = drained_at + self._linger_s
            if item is not _STOP:
                await self._linger(deadline)
            drained_at = loop.time()
            stop = item is _STOP
            items, rows = [item], len(item)
            while rows < self._batch_size and not stop:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                stop = item is _STOP
                items.append(item)
                rows += len(item)
            self._taken.set()
            for write in _writes(items, self._batch_size):
                await self._write(write)
            self._on_depth(self._queue.qsize())
            if stop:
                return

    async def _linger(self, deadline: float) -> None:
        """Wait for more rows until ``deadline``, a full batch or queue, a batch waiting for
        room, a flush or a stop."""
        self._wake.clear()
        if (
            self._stopping
            or self._flushing
            or self._needing_room
            or self._queue.qsize() >= self._wake_depth
            or self._batch_size == 1
        ):
            return
        delay = deadline - asyncio.get_running_loop().time()
        if delay <= 0:
            return
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    async def _write(self, batch: list[Item]) -> None:
        n = sum(map(len, batch))
        attempt = 0
        while True:
            attempt += 1
            try:
                await anyio.to_thread.run_sync(self._save, batch)
            except Exception as exc:  # the store is down or refused the rows
                # Never log the rows: they hold patient data.
                logger.error(
                    "audit write failed",
                    extra={"rows": n, "attempt": attempt, "error": type(exc).__name__},
                )
                if self._stopping and attempt >= SHUTDOWN_ATTEMPTS:
                    self.lost += n
                    logger.error("audit rows lost at shutdown", extra={"rows": n})
                    break
                delay = min(MAX_RETRY_DELAY_S, self._retry_delay_s * 2 ** (attempt - 1))
                await asyncio.sleep(delay)
                continue
            self.written += n
            self.batches += 1
            break
        async with self._progress:
            self._progress.notify_all()

    def _save(self, batch: list[Item]) -> None:
        if self._process is not None:
            self._process.save(batch)
            return
        with self._make_session() as session:
            save_batches(session, batches(batch), self._chain)


def _writes(items: list[Item], size: int) -> list[list[Item]]:
    """Queued items cut into writes of at most ``size`` rows: lists of rows are split to fit; a
    batch's `EncodedRows` is never split (a write of its own when it is bigger)."""
    writes: list[list[Item]] = []
    current: list[Item] = []
    n = 0
    for item in items:
        if isinstance(item, EncodedRows):
            if current and n + len(item) > size:
                writes.append(current)
                current, n = [], 0
            current.append(item)
            n += len(item)
            continue
        rows = item
        while rows:
            if n >= size:
                writes.append(current)
                current, n = [], 0
            take, rows = rows[: size - n], rows[size - n :]
            current.append(take)
            n += len(take)
    if current:
        writes.append(current)
    return writes
