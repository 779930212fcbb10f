"""This process's chain of audit rows written outside the queue: feedback, model reloads,
retrain requests, and the use of each API key (by key id).

Feedback rows are sealed by `app.store.repository.add_feedback` with `AuditEvents.chain`; the
other events are rows of ``audit_events``. Key use is counted per key id in memory (a dict
increment per request) and written as one ``key_use`` event per key id and period (`flush`:
every `KEY_USE_PERIOD_S` and at shutdown), so the audit says which key was used, how often and
when, without one INSERT per request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import datetime
from typing import Any

import anyio.to_thread
import orjson
from sqlalchemy.orm import Session, sessionmaker

from app.store.chain import Chain
from app.store.ids import new_id
from app.store.tables import AuditEventRow, utcnow

logger = logging.getLogger(__name__)

EVENTS_TABLE = "audit_events"
KEY_USE_PERIOD_S = 60.0


class AuditEvents:
    """Writes this process's audited events, sealed into its chain (one chain per process).

    Args:
        make_session: session factory of the store.
        key: the audit's HMAC key (`HP_AUDIT_HMAC_KEY`).
    """

    def __init__(self, make_session: sessionmaker[Session], key: bytes) -> None:
        self._make_session = make_session
        self.chain = Chain(key)
        self._uses: dict[str, list[Any]] = {}  # key id -> [count, first, last]
        self._uses_lock = threading.Lock()

    def record(self, kind: str, key_id: str | None, detail: dict[str, Any]) -> str:
        """Store one event and commit (blocking: call from a thread); returns its id."""
        values: dict[str, Any] = {
            "id": new_id(),
            "created_at": utcnow(),
            "kind": kind,
            "key_id": key_id,
            "detail": orjson.loads(orjson.dumps(detail)),  # as it reads back
        }
        with self.chain.lock, self._make_session() as session:
            link = self.chain.seal(EVENTS_TABLE, [values])
            session.add(AuditEventRow(**values))
            session.commit()
            self.chain.advance(link)
        return str(values["id"])

    def note_key_use(self, key_id: str) -> None:
        """Count one request authenticated by ``key_id`` (cheap: no I/O)."""
        now = utcnow()
        with self._uses_lock:
            use = self._uses.get(key_id)
            if use is None:
                self._uses[key_id] = [1, now, now]
            else:
                use[0] += 1
                use[2] = now

    def flush_key_use(self) -> int:
        """Write one ``key_use`` event per key id used since the last flush (blocking);
        returns how many. Counts that could not be written are kept for the next flush."""
        with self._uses_lock:
            uses, self._uses = self._uses, {}
        written = 0
        for key_id, (count, first, last) in uses.items():
            try:
                self.record("key_use", key_id, _use_detail(count, first, last))
            except Exception as exc:  # the store is down: keep the counts
                logger.error("key use not audited yet", extra={"error": type(exc).__name__})
                with self._uses_lock:
                    self._merge(key_id, count, first, last)
                continue
            written += 1
        return written

    def _merge(self, key_id: str, count: int, first: datetime, last: datetime) -> None:
        use = self._uses.get(key_id)
        if use is None:
            self._uses[key_id] = [count, first, last]
        else:
            use[0] += count
            use[1] = min(use[1], first)
            use[2] = max(use[2], last)


def _use_detail(count: int, first: datetime, last: datetime) -> dict[str, Any]:
    return {"requests": count, "first": first.isoformat(), "last": last.isoformat()}


async def flush_key_use_forever(events: AuditEvents, period_s: float = KEY_USE_PERIOD_S) -> None:
    """Write the key-use counts every ``period_s`` (a background task; cancel it, then call
    `AuditEvents.flush_key_use` once more at shutdown)."""
    while True:
        await asyncio.sleep(period_s)
        await anyio.to_thread.run_sync(events.flush_key_use)
