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

Not detectable from the store alone: the deletion of a chain's last rows (nothing follows them),
or of a whole chain; README (Security) says what to keep outside the database for that.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from app.store.chain import CHAIN_COLUMNS, GENESIS, canonical, mac_of
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

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        counts = ", ".join(f"{name} {n}" for name, n in self.rows.items())
        total = sum(self.rows.values())
        if self.ok:
            return f"audit verify: OK: {total} rows in {self.chains} chains ({counts})"
        first = self.problems[0].describe()
        return (
            f"audit verify: FAILED: {len(self.problems)} problem(s) in {total} rows "
            f"({counts}); first: {first}"
        )


Position = tuple[str, int]
Entry = tuple[str, str, str]  # table, row id, mac


def verify(session: Session, key: bytes) -> Report:
    """Check every chain of the store with ``key`` (`HP_AUDIT_HMAC_KEY`)."""
    index: dict[Position, Entry] = {}
    problems: list[Problem] = []
    rows = {table.name: 0 for table in TABLES}
    for table in TABLES:
        for row_id, chain_id, seq, mac in session.execute(
            select(table.c.id, table.c.chain_id, table.c.seq, table.c.mac)
        ):
            rows[table.name] += 1
            if chain_id is None or seq is None or mac is None:
                problems.append(Problem("", 0, "unchained", table.name, row_id))
                continue
            if (chain_id, seq) in index:
                problems.append(Problem(chain_id, seq, "duplicate", table.name, row_id))
                continue
            index[(chain_id, seq)] = (table.name, row_id, mac)
    problems += _gaps(index)
    for table in TABLES:
        problems += _altered(session, table, index, key)
    chains = len({chain_id for chain_id, _ in index})
    return Report(rows, chains, sorted(problems))


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
