"""A batch's audit rows as one encoded chunk: what `POST /predict/batch` queues for the audit.

A 1,000-patient batch took 40-45 ms with its 1,000 row dicts built on the request path and
bound in a thread of the serving process, 31-33 ms with no audit at all, and 31-32 ms with only
this encoding and no write (experiments; README). `EncodedRows` holds what the rows are made
of, already serialised: the records in one `orjson.dumps` call and the response items
(serialised once, for the response) joined by newlines (compact JSON never holds a raw
newline), plus the ids, codes and shared columns. `batch` gives the columns
`app.store.prediction_batch.save_batches` seals and inserts, in the audit writer process (or its
thread), off the request path: each record serialised again there, keys sorted (the chain's
canonical JSON, stored and sealed as is). Serialising each record so in the serving process
instead spared the child that parse (~4 ms a batch) but cost the serving process, which sets
the batch pace, 1.5-2 ms more than one call for all (README).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.store.prediction_batch import MODEL_COLUMNS, PredictionBatch, canonical_json

Row = dict[str, Any]


@dataclass(frozen=True)
class EncodedRows:
    """``n`` audit rows, encoded: ``head`` (JSON: created_at, the shared columns, ids, codes,
    records) and ``outputs`` (the rows' stored outputs, newline-joined)."""

    n: int
    head: bytes
    outputs: bytes

    def __len__(self) -> int:
        return self.n

    @classmethod
    def of_batch(
        cls,
        created_at: datetime,
        shared: dict[str, Any],
        ids: Sequence[str],
        codes: Sequence[tuple[str | None, str | None, str]],
        records: Sequence[Mapping[str, Any]],
        outputs: Sequence[bytes],
    ) -> EncodedRows:
        """The rows of one batch: ``codes`` are (diagnosis, treatment, quality) per row, and
        ``outputs`` each row's stored outputs as serialised JSON."""
        if not len(ids) == len(codes) == len(records) == len(outputs):
            raise ValueError("ids, codes, records and outputs differ in length")
        head = orjson.dumps(
            {
                "created_at": created_at,
                "shared": [shared[k] for k in MODEL_COLUMNS],
                "ids": ids,
                "codes": codes,
                "records": records,
            }
        )
        return cls(len(ids), head, b"\n".join(outputs))

    def batch(self) -> PredictionBatch:
        """The rows' columns, as `save_batches` takes them: the records as canonical JSON
        text, the outputs as served."""
        head = orjson.loads(self.head)
        return PredictionBatch(
            datetime.fromisoformat(head["created_at"]),
            tuple(head["shared"]),
            head["ids"],
            head["codes"],
            [canonical_json(record).decode() for record in head["records"]],
            self.outputs.decode().split("\n") if self.n else [],
        )


Item = list[Row] | EncodedRows
"""What the audit queue holds: row dicts (single predictions) or a batch's encoded rows."""


def batches(items: Sequence[Item]) -> list[PredictionBatch]:
    """The columns of queued items, in order (a row dict is a batch of one)."""
    out: list[PredictionBatch] = []
    for item in items:
        if isinstance(item, EncodedRows):
            out.append(item.batch())
        else:
            out += [PredictionBatch.of_row(row) for row in item]
    return out
