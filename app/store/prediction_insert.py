"""The audit-row INSERT compiled once per dialect, with each column's own bind processor; ids
already stored are skipped (``ON CONFLICT (id) DO NOTHING`` on SQLite and PostgreSQL).

`app.store.repository.save_predictions` runs it as one executemany: the stored values are what
the ORM would store (UTC time, JSON via the engine's serialiser), without its per-row
bookkeeping (1,000 rows: CPU and comparison in bench/audit_bench.py).
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, insert

from app.store.db import JSONText
from app.store.ids import new_id
from app.store.tables import PredictionRow, utcnow

_ABSENT: Any = object()


@dataclass(frozen=True)
class PredictionInsert:
    """``INSERT INTO predictions`` compiled for one dialect, and its per-column bind processors."""

    sql: str
    keys: tuple[str, ...]
    processed: tuple[tuple[int, Callable[[Any], Any]], ...]  # (position, processor)
    positional: bool

    @classmethod
    def compile(cls, dialect: Dialect) -> PredictionInsert:
        table = PredictionRow.__table__
        keys = tuple(c.key for c in table.columns)
        compiled = _insert(dialect).compile(dialect=dialect, column_keys=list(keys))
        if dialect.positional and tuple(compiled.positiontup or ()) != keys:
            raise RuntimeError(f"unexpected parameter order {compiled.positiontup}")
        processed = []
        for i, key in enumerate(keys):
            proc = table.c[key].type.dialect_impl(dialect).bind_processor(dialect)
            if proc is not None:
                processed.append((i, proc))
        return cls(compiled.string, keys, tuple(processed), dialect.positional)

    def parameters(self, records: Sequence[dict[str, Any]]) -> list[Any]:
        """One DBAPI parameter set per record (a tuple for positional dialects, else a dict)."""
        keys, processed = self.keys, self.processed
        values_of = operator.itemgetter(*keys)
        # The rows of one `POST /predict/batch` share their created_at: convert it once.
        last_in: list[Any] = [_ABSENT] * len(keys)
        last_out: list[Any] = [None] * len(keys)
        out: list[Any] = []
        for record in records:
            if record.get("id") is None or record.get("created_at") is None:
                record = dict(record)  # never touch the caller's dict
                if record.get("id") is None:
                    record["id"] = new_id()
                if record.get("created_at") is None:
                    record["created_at"] = utcnow()
            try:
                values = list(values_of(record))
            except KeyError:  # a column left out: NULL, as the ORM's INSERT would leave it
                values = [record.get(k, _ABSENT) for k in keys]
                for i, proc in processed:
                    if values[i].__class__ is JSONText:
                        values[i] = values[i].text
                    elif values[i] is not _ABSENT:
                        values[i] = proc(values[i])
                values = [None if v is _ABSENT else v for v in values]
            else:
                for i, proc in processed:
                    value = values[i]
                    if value is last_in[i]:
                        values[i] = last_out[i]
                    elif value.__class__ is JSONText:  # serialised already
                        values[i] = value.text
                    else:
                        values[i] = last_out[i] = proc(value)
                        last_in[i] = value
            out.append(tuple(values) if self.positional else dict(zip(keys, values, strict=True)))
        return out


def _insert(dialect: Dialect) -> Any:
    """``INSERT INTO predictions``, skipping ids already stored where the dialect can say so: a
    write retried after its COMMIT went through unconfirmed (the audit writer process died
    before answering, a connection dropped) must not then fail forever on its own rows (ids are
    server-made version-7 UUIDs, so an equal id is the same row)."""
    if dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(PredictionRow).on_conflict_do_nothing(index_elements=["id"])
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(PredictionRow).on_conflict_do_nothing(index_elements=["id"])
    return insert(PredictionRow)


_INSERTS: weakref.WeakKeyDictionary[Dialect, PredictionInsert] = weakref.WeakKeyDictionary()


def compiled_insert(dialect: Dialect) -> PredictionInsert:
    """The INSERT of audit rows for ``dialect``, compiled once per dialect."""
    compiled = _INSERTS.get(dialect)
    if compiled is None:
        compiled = _INSERTS[dialect] = PredictionInsert.compile(dialect)
    return compiled
