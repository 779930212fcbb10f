"""A batch's audit rows as one encoded chunk: what `POST /predict/batch` queues for the audit.

A 1,000-patient batch took 40-45 ms with its 1,000 row dicts built on the request path and
bound in a thread of the serving process, 31-33 ms with no audit at all, and 31-32 ms with only
this encoding and no write (experiments; README). `EncodedRows` holds what the rows are made
of, already serialised: the records, each as the chain's canonical JSON (sorted keys, compact:
what is stored and what the MAC covers, so the audit writer never parses them), and the response
items (serialised once, for the response), each newline-joined (compact JSON never holds a raw
newline), plus the ids, codes and shared columns. `batch` gives the columns
`app.store.prediction_batch.save_batches` seals and inserts, in the audit writer process (or its
thread), off the request path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.store.prediction_batch import MODEL_COLUMNS, PredictionBatch, canonical_json

Row = dict[str, Any]
SHARED = MODEL_COLUMNS
"""The columns every row of one batch shares (its model)."""


@dataclass(frozen=True)
class EncodedRows:
    """``n`` audit rows, encoded: ``head`` (JSON: created_at, the shared columns, ids, codes),
    ``inputs`` (the records as canonical JSON) and ``outputs`` (the rows' stored outputs), both
    newline-joined."""

    n: int
    head: bytes
    inputs: bytes
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
                "shared": [shared[k] for k in SHARED],
                "ids": ids,
                "codes": codes,
            }
        )
        inputs = b"\n".join([canonical_json(record) for record in records])
        return cls(len(ids), head, inputs, b"\n".join(outputs))

    def batch(self) -> PredictionBatch:
        """The rows' columns, as `save_batches` takes them (JSON as text, not parsed)."""
        head = orjson.loads(self.head)
        split = (lambda text: text.decode().split("\n")) if self.n else (lambda text: [])
        return PredictionBatch(
            datetime.fromisoformat(head["created_at"]),
            tuple(head["shared"]),
            head["ids"],
            head["codes"],
            split(self.inputs),
            split(self.outputs),
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
