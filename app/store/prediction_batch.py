"""Prediction audit rows in columns, as the audit writer stores them: sealed into the writer's
HMAC chain and inserted in one executemany, in one pass over the rows.

The rows' JSON arrives as text: ``inputs`` canonical (sorted keys, orjson's compact form,
`canonical_json`: each record serialised so once, stored and sealed as is), ``outputs`` the
response item as served. So the MAC's canonical JSON (`app.store.chain.canonical`) takes the
inputs as an `orjson.Fragment` (not parsed again) and parses only the outputs (their keys are
in the response's order), and the INSERT binds each row as one tuple of driver values through
`Connection.exec_driver_sql`: the statement is SQLAlchemy's own INSERT compiled for the engine's
dialect, the JSON is the text SQLAlchemy's JSON type would bind (`app.store.db.dumps_json`:
compact, keys sorted; a response item as is), and the batch's one ``created_at`` goes through
the column type's own bind processor once. 1,000 rows, CPU in the audit writer's child
(medians of in-process stages; bench/audit_child_bench.py measures the whole): SQLAlchemy's
``execute`` with row dicts (a bind processor per JSON value and time, a parameter dict per row)
14 ms, this executemany 5 ms; the rows rebuilt as dicts and sealed (every stored JSON parsed
again) 21 ms, this one pass 9 ms. `tests/audit/test_prediction_batch.py` checks the stored rows
and the MACs against SQLAlchemy's own INSERT of the row dicts and the chain's definition
(`Chain.seal`), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import Dialect, Table, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.store.chain import CHAIN_COLUMNS, Chain, Link, canonical_value
from app.store.db import JSONText, dumps_json
from app.store.ids import new_id
from app.store.tables import PredictionRow, utcnow

PREDICTIONS_TABLE = "predictions"
MODEL_COLUMNS = ("model_source", "diagnosis_version", "treatment_version", "run_id")
"""The columns the rows of one batch share (its model)."""
CODE_COLUMNS = ("diagnosis_code", "treatment_code", "quality")
COLUMNS = ("id", "created_at", *MODEL_COLUMNS, "inputs", "outputs", *CODE_COLUMNS)
"""The order of `_row_values` (every stored column but the chain's)."""
_TABLE = cast(Table, PredictionRow.__table__)
if set(COLUMNS) | set(CHAIN_COLUMNS) != set(_TABLE.columns.keys()):  # pragma: no cover
    raise RuntimeError("PredictionRow's columns changed: update prediction_batch.COLUMNS")


@dataclass(frozen=True)
class PredictionBatch:
    """Audit rows sharing their time and model, in columns: ``codes`` are (diagnosis,
    treatment, quality) per row, ``inputs`` canonical JSON text (`canonical_json`, or None
    for SQL NULL), ``outputs`` JSON text."""

    created_at: datetime
    model: tuple[str | None, ...]
    ids: Sequence[str]
    codes: Sequence[Sequence[str | None]]
    inputs: Sequence[str | None]
    outputs: Sequence[str | None]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> PredictionBatch:
        """One row dict keyed by `PredictionRow` columns (unknown keys ignored; ``id`` and
        ``created_at`` filled in when absent or None; another column absent is NULL; JSON
        values as dicts or `JSONText`)."""
        inputs, outputs = row.get("inputs"), row.get("outputs")
        if inputs.__class__ is JSONText:
            inputs = orjson.loads(inputs.text)
        return cls(
            row.get("created_at") or utcnow(),
            tuple(row.get(k) for k in MODEL_COLUMNS),
            [row.get("id") or new_id()],
            [tuple(row.get(k) for k in CODE_COLUMNS)],
            [None if inputs is None else canonical_json(inputs).decode()],
            [None if outputs is None else dumps_json(outputs)],
        )


def canonical_json(value: Any) -> bytes:
    """``value`` as the chain's canonical JSON (sorted keys, compact, `app.store.chain`): how a
    batch's records are serialised, stored and sealed."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def save_batches(session: Session, batches: Sequence[PredictionBatch], chain: Chain | None) -> int:
    """Insert the batches' rows in one executemany and commit; with a ``chain``, each row is
    sealed into it in order and the chain advances once they are committed.

    Returns:
        The number of rows given (a row whose id is already stored is skipped, on SQLite and
        PostgreSQL: a retried write stores each row once, and a fresh chain does not seal it).
    """
    n = sum(map(len, batches))
    if not n:
        return 0
    dialect = session.get_bind().dialect
    sql, keys = _insert_sql(dialect)
    stored: set[str] = set()
    if chain is not None and chain.fresh:  # a write retried after another chain's commit
        ids = [pid for batch in batches for pid in batch.ids]
        stored = set(session.scalars(select(PredictionRow.id).where(PredictionRow.id.in_(ids))))
    rows, link = _row_values(batches, chain, stored, _bind_created_at(dialect))
    if rows:
        params = rows if keys is None else [dict(zip(keys, row, strict=True)) for row in rows]
        session.connection().exec_driver_sql(sql, params)
    session.commit()
    if chain is not None and link is not None:
        chain.advance(link)
    return n


def _row_values(
    batches: Sequence[PredictionBatch],
    chain: Chain | None,
    skip: set[str],
    bind_created_at: Callable[[datetime], Any],
) -> tuple[list[tuple[Any, ...]], Link | None]:
    """Each row's driver values in `COLUMNS` + chain order, sealed when there is a chain;
    and the chain's link after them."""
    out: list[tuple[Any, ...]] = []
    fragment, loads = orjson.Fragment, orjson.loads
    link = chain.head if chain is not None else None
    seq, mac = (link.seq, link.mac) if link is not None else (0, "")
    chain_id = chain.chain_id if chain is not None else None
    for batch in batches:
        created = canonical_value(batch.created_at)
        created_bound = bind_created_at(batch.created_at)
        source, dx_version, tx_version, run_id = batch.model
        for pid, (dx, tx, quality), inputs, outputs in zip(
            batch.ids, batch.codes, batch.inputs, batch.outputs, strict=True
        ):
            if pid in skip:
                continue
            if chain is None:
                sealed: tuple[Any, ...] = (None, None, None)
            else:
                seq += 1
                body = {
                    "id": pid,
                    "created_at": created,
                    "model_source": source,
                    "diagnosis_version": dx_version,
                    "treatment_version": tx_version,
                    "run_id": run_id,
                    "inputs": None if inputs is None else fragment(inputs),
                    "outputs": None if outputs is None else loads(outputs),
                    "diagnosis_code": dx,
                    "treatment_code": tx,
                    "quality": quality,
                }
                mac = chain.mac_after(mac, PREDICTIONS_TABLE, seq, body)
                sealed = (chain_id, seq, mac)
            values = (pid, created_bound, source, dx_version, tx_version, run_id, inputs, outputs)
            out.append((*values, dx, tx, quality, *sealed))
    return out, (None if chain is None else Link(seq, mac))


def _bind_created_at(dialect: Dialect) -> Callable[[datetime], Any]:
    """The ``created_at`` column type's bind processor for ``dialect`` (or identity)."""
    process = _TABLE.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
    return process or (lambda value: value)


@functools.lru_cache(maxsize=8)
def _insert_sql(dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """SQLAlchemy's INSERT of every column compiled for ``dialect``, and the parameter names
    for a dialect taking named parameters (None: positional, in `COLUMNS` + chain order)."""
    keys = (*COLUMNS, *CHAIN_COLUMNS)
    compiled = insert_skipping_stored(dialect.name).compile(dialect=dialect, column_keys=keys)
    if not dialect.positional:
        return compiled.string, keys
    if tuple(compiled.positiontup or ()) != keys:  # pragma: no cover - SQLAlchemy's order
        raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
    return compiled.string, None


def insert_skipping_stored(dialect: str) -> Any:
    """``INSERT INTO predictions``, skipping ids already stored where the dialect can say so: a
    write retried after its COMMIT went through unconfirmed (the audit writer process died
    before answering, a connection dropped) must not then fail forever on its own rows (ids are
    server-made version-7 UUIDs, so an equal id is the same row)."""
    if dialect == "sqlite":
        return sqlite_insert(_TABLE).on_conflict_do_nothing(index_elements=["id"])
    if dialect == "postgresql":
        return pg_insert(_TABLE).on_conflict_do_nothing(index_elements=["id"])
    return insert(_TABLE)
