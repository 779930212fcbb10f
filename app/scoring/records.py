"""Table rows -> validated canonical records, or rejects naming the field, value and reason.

A CSV gives strings and a Parquet file typed values; each cell is converted by its feature's
kind in the contract (numbers, integers, ``0/1/true/false`` booleans, ``;``-separated symptom
codes), then the row is validated by the API's own `PatientRecord`: a row refused here would
get the same 422 from `POST /predict/batch`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from app.schemas.errors import validation_details
from app.schemas.patient import ALIAS_TO_NAME, TASK, PatientRecord
from train_pipeline.contract import SYMPTOM_SEPARATOR

PATIENT_ID = "patient_id"
"""Optional input column carried through to the output (as text)."""
IGNORED_COLUMNS = frozenset(
    {TASK.diagnosis.name, *((TASK.treatment.name,) if TASK.treatment else ())}
)
"""Label columns of a labelled cohort: read past, never scored."""
_KINDS = {name: TASK.feature(canonical).kind for name, canonical in ALIAS_TO_NAME.items()}
_BOOLEANS = {
    "1": True, "0": False, "1.0": True, "0.0": False,
    "true": True, "false": False, "yes": True, "no": False,
}  # fmt: skip


class UnknownColumnsError(ValueError):
    """The input has columns that are neither contract fields, `patient_id` nor labels."""


@dataclass
class ValidatedRows:
    """One chunk after validation.

    Attributes:
        rows: input row number of each accepted record (0 = first data row).
        records: canonical records, in input order.
        patient_ids: the `patient_id` of each accepted record (None when absent).
        rejects: ``{"row", "field", "value", "reason"}`` per problem of each refused row.
    """

    rows: list[int] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    patient_ids: list[str | None] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)


def check_columns(columns: Iterable[str]) -> list[str]:
    """The contract columns of ``columns`` (canonical names or aliases).

    Raises:
        UnknownColumnsError: a column nobody would read (a typo would otherwise reject or
            silently drop a field in every row), or no contract field at all.
    """
    names = list(columns)
    unknown = [c for c in names if c not in _KINDS and c not in IGNORED_COLUMNS | {PATIENT_ID}]
    fields = [c for c in names if c in _KINDS]
    if unknown or not fields:
        raise UnknownColumnsError(
            f"unknown input columns {unknown}: use the contract's field names "
            "(GET /models/signature), `patient_id`, or the label columns"
            if unknown
            else "the input has none of the contract's fields"
        )
    return fields


def convert_cell(value: Any, kind: str) -> Any:
    """A CSV string or a Parquet value -> what the JSON API would receive (None: absent).

    Values that cannot be converted are returned unchanged, for validation to refuse them.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "tolist"):  # NumPy scalars and arrays (Parquet lists)
        value = value.tolist()
    if isinstance(value, str):
        return _convert_text(value.strip(), kind, value)
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)  # an integer column with gaps reads as floats
    if kind == "boolean" and type(value) in (int, float) and value in (0, 1):
        return bool(value)
    return value


def _convert_text(text: str, kind: str, original: str) -> Any:
    if not text:
        return None
    if kind in ("numeric", "integer"):
        try:
            number = float(text)
        except ValueError:
            return original
        return int(number) if kind == "integer" and number.is_integer() else number
    if kind == "boolean":
        return _BOOLEANS.get(text.lower(), original)
    if kind == "multilabel":
        return [c.strip() for c in text.split(SYMPTOM_SEPARATOR) if c.strip()]
    return text


def convert_column(column: pd.Series, kind: str) -> list[Any]:
    """One input column -> its values as `convert_cell` gives them (numbers column-wise: the
    cells pandas cannot parse, rare, go through `convert_cell` one by one)."""
    if kind not in ("numeric", "integer"):
        return [convert_cell(v, kind) for v in column.tolist()]
    numbers = pd.to_numeric(column, errors="coerce").astype(float)
    values: list[Any] = numbers.tolist()
    if kind == "integer":
        values = [None if v != v else int(v) if v.is_integer() else v for v in values]
    else:
        values = [None if v != v else v for v in values]
    raw = column.tolist()
    for i in np.flatnonzero((column.notna() & numbers.isna()).to_numpy()).tolist():
        values[i] = convert_cell(raw[i], kind)
    return values


def convert_frame(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A chunk (CSV text or Parquet values) -> its contract columns converted (None: absent),
    and `patient_id` as text when present."""
    out = {name: convert_column(frame[name], _KINDS[name]) for name in check_columns(frame.columns)}
    if PATIENT_ID in frame.columns:
        out[PATIENT_ID] = [_text(convert_cell(v, "text")) for v in frame[PATIENT_ID].tolist()]
    return out


def validate_rows(columns: dict[str, list[Any]], first_row: int) -> ValidatedRows:
    """Validate converted columns (`convert_frame`) row by row; rows numbered from
    ``first_row``."""
    ids = columns.get(PATIENT_ID)
    names = [name for name in columns if name != PATIENT_ID]
    out = ValidatedRows()
    for i, cells in enumerate(zip(*(columns[name] for name in names), strict=True)):
        row = first_row + i
        try:
            record = PatientRecord.model_validate(
                {k: v for k, v in zip(names, cells, strict=True) if v is not None}
            ).to_record()
        except ValidationError as exc:
            out.rejects.extend(
                {"row": row, **d, "value": _text(d["value"])}
                for d in validation_details(exc.errors())
            )
            continue
        out.rows.append(row)
        out.records.append(record)
        out.patient_ids.append(None if ids is None else ids[i])
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return SYMPTOM_SEPARATOR.join(map(str, value))
    return str(value)
