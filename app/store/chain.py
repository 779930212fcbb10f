"""The audit's HMAC chains: every audit row carries ``chain_id``, ``seq`` and ``mac``, where

    mac = HMAC-SHA256(key, previous row's mac + "\\n" + canonical JSON of this row)

and the canonical JSON (sorted keys, compact, UTC timestamps with microseconds) names the
row's table, its chain position and every stored column. The key comes from settings
(`HP_AUDIT_HMAC_KEY`), never from the store: whoever can edit the rows cannot forge their MACs.

One chain per writer: each process that writes audit rows (the audit writer's child, and each
serving process for feedback and events) starts its own chain (a new version-7 UUID, ``seq``
from 1) and links rows in the order it commits them. Writers never share a counter, so several
gunicorn workers need no lock across processes; `app.store.audit_verify` checks each chain.
A `Chain` is advanced only after the transaction holding its rows committed (`seal`, commit,
`advance`): a rolled-back write leaves no gap.

Each `advance` logs the chain's new head (``audit chain head``: ``chain_id``, ``seq``, ``mac``;
no row content), so the log kept outside the database anchors the chain's end: the deletion of
a chain's last rows, or of a whole chain, leaves the store behind a head the log still names
(`python -m app audit verify --heads LOG`).
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.store.db import JSONText
from app.store.ids import new_id

logger = logging.getLogger(__name__)
logger.setLevel(logging.INFO)  # the heads are logged whatever HP_LOG_LEVEL says

CHAIN_COLUMNS = ("chain_id", "seq", "mac")
HEAD_MESSAGE = "audit chain head"
"""The log message carrying a chain's head (read back by `audit verify --heads`)."""
GENESIS = ""
"""The "previous MAC" of a chain's first row."""


def canonical_value(value: Any) -> Any:
    """A column value as it reads back from every backend: datetimes as UTC ISO text with
    microseconds, already-serialised JSON (`JSONText`) parsed."""
    cls = value.__class__  # exact types: ~1,000 rows x 11 columns per batch
    if cls is datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if cls is JSONText:
        return orjson.loads(value.text)
    return value


def canonical(table: str, chain_id: str, seq: int, row: Mapping[str, Any]) -> bytes:
    """The bytes a row's MAC covers: its table, chain position and stored columns."""
    body = {k: canonical_value(v) for k, v in row.items() if k not in CHAIN_COLUMNS}
    return canonical_body(table, chain_id, seq, body)


def canonical_body(table: str, chain_id: str, seq: int, body: Mapping[str, Any]) -> bytes:
    """`canonical` of a row whose stored columns are already canonical values (`body`; a JSON
    value already serialised canonically, sorted keys and compact, may be an `orjson.Fragment`
    of that text)."""
    return orjson.dumps(
        {"table": table, "chain_id": chain_id, "seq": seq, "row": body},
        option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY,
    )


def mac_of(key: bytes, previous: str, message: bytes) -> str:
    """Hex HMAC-SHA256 of ``message`` linked to the ``previous`` row's MAC."""
    return hmac.digest(key, previous.encode() + b"\n" + message, "sha256").hex()


@dataclass(frozen=True)
class Link:
    """Where a chain stands: the last ``seq`` committed and its ``mac``."""

    seq: int
    mac: str


class Chain:
    """One writer's chain: seals rows in order; `advance` once they are committed.

    Args:
        key: the HMAC key (`HP_AUDIT_HMAC_KEY`).
        chain_id: defaults to a new id (a new chain per process start).

    Attributes:
        lock: held by callers from `seal` to `advance` when several threads share the chain.
        fresh: no row committed yet (a retried write may then hold rows another chain stored).
    """

    def __init__(self, key: bytes, chain_id: str | None = None) -> None:
        self._key = key
        self.chain_id = chain_id or new_id()
        self.lock = threading.Lock()
        self._head = Link(0, GENESIS)

    @property
    def fresh(self) -> bool:
        return self._head.seq == 0

    @property
    def head(self) -> Link:
        return self._head

    def seal(self, table: str, rows: Sequence[dict[str, Any]]) -> Link:
        """Add ``chain_id``, ``seq`` and ``mac`` to ``rows`` (in place, in order) after the
        head; returns the link to `advance` to once they are committed."""
        seq, mac = self._head.seq, self._head.mac
        key, chain_id = self._key, self.chain_id
        for row in rows:
            seq += 1
            mac = mac_of(key, mac, canonical(table, chain_id, seq, row))
            row["chain_id"], row["seq"], row["mac"] = chain_id, seq, mac
        return Link(seq, mac)

    def mac_after(self, previous: str, table: str, seq: int, body: Mapping[str, Any]) -> str:
        """The MAC of the row at ``seq`` after the MAC ``previous``, its stored columns given
        as canonical values (`canonical_body`): how a batch is sealed in one pass over its
        columns (`app.store.prediction_batch`)."""
        return mac_of(self._key, previous, canonical_body(table, self.chain_id, seq, body))

    def advance(self, link: Link) -> None:
        """The sealed rows up to ``link`` are committed."""
        if link.seq < self._head.seq:
            raise ValueError("a chain only moves forward")
        if link.seq > self._head.seq:
            logger.info(
                HEAD_MESSAGE, extra={"chain_id": self.chain_id, "seq": link.seq, "mac": link.mac}
            )
        self._head = link
