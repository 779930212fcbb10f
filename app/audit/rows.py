"""A batch's audit rows as one encoded chunk: what `POST /predict/batch` queues for the audit.

A 1,000-patient batch took 40-45 ms with its 1,000 row dicts built on the request path and
bound in a thread of the serving process, 31-33 ms with no audit at all, and 31-32 ms with only
this encoding and no write (experiments; README). `EncodedRows` holds what
the rows are made of, already serialised: the canonical records in one `orjson.dumps` call and
the response items (serialised once, for the response) joined by newlines (compact JSON never
holds a raw newline), plus the ids, codes and shared columns. `rows` rebuilds the dicts
`save_predictions` takes, in the audit writer process (or its thread), off the request path; the
stored values are the same (orjson's output parses back to equal values, and re-serialises to
the same text).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from app.store.db import JSONText

Row = dict[str, Any]
SHARED = ("model_source", "diagnosis_version", "treatment_version", "run_id")
"""The columns every row of one batch shares (its model)."""


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
                "shared": {k: shared[k] for k in SHARED},
                "ids": ids,
                "codes": codes,
                "records": records,
            }
        )
        return cls(len(ids), head, b"\n".join(outputs))

    def rows(self) -> list[Row]:
        """The row dicts `save_predictions` takes (their outputs as `JSONText`)."""
        head = orjson.loads(self.head)
        created_at = datetime.fromisoformat(head["created_at"])
        shared = head["shared"]
        outputs = self.outputs.decode().split("\n") if self.n else []
        return [
            {
                "id": pid,
                "created_at": created_at,
                **shared,
                "inputs": record,
                "outputs": JSONText(text),
                "diagnosis_code": diagnosis,
                "treatment_code": treatment,
                "quality": quality,
            }
            for pid, (diagnosis, treatment, quality), record, text in zip(
                head["ids"], head["codes"], head["records"], outputs, strict=True
            )
        ]


Item = list[Row] | EncodedRows
"""What the audit queue holds: row dicts (single predictions) or a batch's encoded rows."""


def expand(items: Sequence[Item]) -> list[Row]:
    """The row dicts of queued items, in order."""
    rows: list[Row] = []
    for item in items:
        rows += item.rows() if isinstance(item, EncodedRows) else item
    return rows
