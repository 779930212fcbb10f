"""`python -m app audit verify`: check every audit chain (`app.store.chain`) of the store.

Two passes: first each chained row's position and MAC (small columns only), then each row in
full, streamed table by table, whose MAC is recomputed from its stored columns and the stored
MAC of its predecessor in its chain. Problems are reported in chain order (chains by id, which
is time-ordered; rows by ``seq``), so the first one named is the first row that was altered,
deleted or moved:

- ``altered``: the row's MAC does not match its columns and its predecessor (an edited column);
- ``reordered``: an unaltered row at another position than the one it was sealed at (found
  within `MOVE_WINDOW` places; further moves read as ``altered``);
- ``deleted``: a ``seq`` is missing inside a chain (named by its neighbours);
- ``duplicate``: two rows claim one position (a copied or inserted row);
- ``unchained``: a row without chain columns (inserted by hand, or stored before the chain).

- ``deleted`` at a chain's end, or a whole chain: only against the heads the service logged
  (``audit chain head`` lines, `app.store.chain`) read from the log the operator keeps
  (``--heads``): the store's chain ends before a logged head, or lacks a logged chain;
- ``rewritten``: the row at a logged head's position is not the one whose MAC was logged.

Without ``--heads`` the deletion of a chain's last rows, or of a whole chain, cannot be seen
(nothing in the store follows them).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from app.store.chain import CHAIN_COLUMNS, GENESIS, HEAD_MESSAGE, Link, canonical, mac_of
from app.store.tables import AuditEventRow, FeedbackRow, PredictionRow

TABLES: tuple[Table, ...] = tuple(
    cast(Table, row.__table__) for row in (PredictionRow, FeedbackRow, AuditEventRow)
)
YIELD_PER = 1000
MOVE_WINDOW = 8
"""A row that fails its MAC is tried at the positions this close (a reordering, not an edit)."""
MOVE_SEARCHES = 100
"""Rows per table tried so (a wrong key fails them all)."""


@dataclass(frozen=True, order=True)
class Problem:
    """One finding, sortable in chain order."""

    chain_id: str
    seq: int
    kind: str
    table: str = field(compare=False)
    row_id: str | None = field(compare=False)
    note: str = field(compare=False, default="")

    def describe(self) -> str:
        where = f"chain {self.chain_id} seq {self.seq}"
        if self.row_id is None:
            return f"{self.kind}: {where} {self.note}".rstrip()
        return f"{self.kind}: {self.table} row {self.row_id} ({where}) {self.note}".rstrip()


@dataclass
class Report:
    """What `verify` found: rows per table, chains, problems in chain order."""

    rows: dict[str, int]
    chains: int
    problems: list[Problem]
    pre_chain: int = 0
    """Rows without a MAC stored before ``chained_since``: counted, not verifiable."""

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        counts = ", ".join(f"{name} {n}" for name, n in self.rows.items())
        total = sum(self.rows.values())
        if self.pre_chain:
            counts += f"; {self.pre_chain} pre-chain rows, not verifiable"
        if self.ok:
            return f"audit verify: OK: {total} rows in {self.chains} chains ({counts})"
        first = self.problems[0].describe()
        return (
            f"audit verify: FAILED: {len(self.problems)} problem(s) in {total} rows "
            f"({counts}); first: {first}"
        )


Position = tuple[str, int]
Entry = tuple[str, str, str]  # table, row id, mac


def verify(
    session: Session,
    key: bytes,
    heads: Mapping[str, Link] | None = None,
    chained_since: datetime | None = None,
) -> Report:
    """Check every chain of the store with ``key`` (`HP_AUDIT_HMAC_KEY`), and that it reaches
    each of ``heads`` (chain id -> the last head logged, `read_heads`) when given. Rows without
    a MAC are ``unchained`` problems, except those created before ``chained_since`` (when the
    store was migrated to 0002), which are counted as pre-chain."""
    index: dict[Position, Entry] = {}
    problems: list[Problem] = []
    rows = {table.name: 0 for table in TABLES}
    pre_chain = 0
    for table in TABLES:
        for row_id, chain_id, seq, mac, created_at in session.execute(
            select(table.c.id, table.c.chain_id, table.c.seq, table.c.mac, table.c.created_at)
        ):
            rows[table.name] += 1
            if chain_id is None or seq is None or mac is None:
                if chained_since is not None and _utc(created_at) < chained_since:
                    pre_chain += 1
                else:
                    problems.append(Problem("", 0, "unchained", table.name, row_id))
                continue
            if (chain_id, seq) in index:
                problems.append(Problem(chain_id, seq, "duplicate", table.name, row_id))
                continue
            index[(chain_id, seq)] = (table.name, row_id, mac)
    problems += _gaps(index)
    problems += _tails(index, heads or {})
    for table in TABLES:
        problems += _altered(session, table, index, key)
    chains = len({chain_id for chain_id, _ in index})
    return Report(rows, chains, sorted(problems), pre_chain)


def _utc(moment: datetime) -> datetime:
    """A stored time as aware UTC (SQLite reads back naive UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _gaps(index: dict[Position, Entry]) -> Iterator[Problem]:
    """Missing positions: a chain's seq runs from 1 without holes."""
    by_chain: dict[str, list[int]] = {}
    for chain_id, seq in index:
        by_chain.setdefault(chain_id, []).append(seq)
    for chain_id, seqs in by_chain.items():
        expected = 1
        for seq in sorted(seqs):
            if seq > expected:
                after = index.get((chain_id, expected - 1))
                before = index[(chain_id, seq)]
                note = (
                    f"{seq - expected} row(s) deleted, between "
                    f"{_name(after) if after else 'the chain start'} and {_name(before)}"
                )
                yield Problem(chain_id, expected, "deleted", "", None, note)
            expected = seq + 1


def read_heads(lines: Iterable[str]) -> dict[str, Link]:
    """The last head logged for each chain, from JSON log lines (other lines are skipped)."""
    heads: dict[str, Link] = {}
    for line in lines:
        if HEAD_MESSAGE not in line:
            continue
        try:
            record = json.loads(line)
            chain_id, seq, mac = record["chain_id"], int(record["seq"]), str(record["mac"])
        except (ValueError, KeyError, TypeError):
            continue
        if record.get("message") == HEAD_MESSAGE and seq > heads.get(chain_id, Link(0, "")).seq:
            heads[chain_id] = Link(seq, mac)
    return heads


def _tails(index: dict[Position, Entry], heads: Mapping[str, Link]) -> Iterator[Problem]:
    """Logged heads the store does not reach: rows deleted at a chain's end, whole chains."""
    last: dict[str, int] = {}
    for chain_id, seq in index:
        last[chain_id] = max(seq, last.get(chain_id, 0))
    for chain_id, head in heads.items():
        stored = last.get(chain_id, 0)
        if stored < head.seq:
            where = f"after {_name(index[(chain_id, stored)])}" if stored else "the whole chain"
            note = (
                f"{head.seq - stored} row(s) deleted at the chain's end "
                f"({where}; logged head seq {head.seq})"
            )
            yield Problem(chain_id, stored + 1, "deleted", "", None, note)
        elif index[(chain_id, head.seq)][2] != head.mac:
            entry = index[(chain_id, head.seq)]
            note = "not the row whose MAC was logged at this position: the chain was rewritten"
            yield Problem(chain_id, head.seq, "rewritten", entry[0], entry[1], note)


def _altered(
    session: Session, table: Table, index: dict[Position, Entry], key: bytes
) -> Iterator[Problem]:
    """Rows whose MAC does not match their columns and their predecessor's MAC."""
    columns = [c for c in table.columns if c.name not in CHAIN_COLUMNS]
    stmt = select(*columns, table.c.chain_id, table.c.seq, table.c.mac).where(
        table.c.chain_id.is_not(None)
    )
    searched = 0
    for row in session.execute(stmt.execution_options(yield_per=YIELD_PER)).mappings():
        chain_id, seq = row["chain_id"], row["seq"]
        if index.get((chain_id, seq), ("", "", ""))[1] != row["id"]:
            continue  # a duplicate, already reported
        previous = GENESIS if seq == 1 else index.get((chain_id, seq - 1), ("", "", GENESIS))[2]
        values: dict[str, Any] = {c.name: row[c.name] for c in columns}
        expected = mac_of(key, previous, canonical(table.name, chain_id, seq, values))
        if expected == row["mac"]:
            continue
        searched += 1  # a wrong key fails every row: search the first ones only
        sealed_at = (
            _sealed_at(key, table.name, chain_id, seq, values, row["mac"], index)
            if searched <= MOVE_SEARCHES
            else None
        )
        if sealed_at is not None:
            note = (
                f"sealed at seq {sealed_at}: rows were reordered"
                if sealed_at != seq
                else "in place, but its predecessor was moved: rows were reordered"
            )
            yield Problem(chain_id, seq, "reordered", table.name, row["id"], note)
        else:
            note = "MAC mismatch: a column was changed (or the row was moved far)"
            yield Problem(chain_id, seq, "altered", table.name, row["id"], note)


def _sealed_at(
    key: bytes,
    table: str,
    chain_id: str,
    seq: int,
    values: dict[str, Any],
    mac: str,
    index: dict[Position, Entry],
) -> int | None:
    """The position an unaltered row was sealed at, when it was moved up to `MOVE_WINDOW`
    places (its predecessor then is one of the nearby rows): None for an altered row."""
    nearby = range(max(1, seq - MOVE_WINDOW), seq + MOVE_WINDOW + 1)
    previous = {GENESIS} | {e[2] for s in nearby if (e := index.get((chain_id, s)))}
    for at in nearby:  # at == seq: in place, but after a row that was moved
        message = canonical(table, chain_id, at, values)
        if any(mac_of(key, p, message) == mac for p in previous):
            return at
    return None


def _name(entry: Entry) -> str:
    return f"{entry[0]} row {entry[1]}"
