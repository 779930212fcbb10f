"""`app.scoring.records`: table cells become what the JSON API would receive, and rows are
accepted or rejected by the API's own `PatientRecord` with its field and reason."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.scoring.records import (
    UnknownColumnsError,
    check_columns,
    convert_cell,
    convert_frame,
    validate_rows,
)
from tests.factories import make_patient


@pytest.mark.parametrize(
    ("value", "kind", "expected"),
    [
        ("81", "numeric", 81.0),
        (" 7.5 ", "numeric", 7.5),
        ("abc", "numeric", "abc"),  # left for validation to refuse
        ("", "numeric", None),
        (float("nan"), "numeric", None),
        ("5.0", "integer", 5),
        (5.0, "integer", 5),
        ("5.5", "integer", 5.5),
        ("1", "boolean", True),
        ("False", "boolean", False),
        (np.int64(0), "boolean", False),
        ("maybe", "boolean", "maybe"),
        ("fever; cough", "multilabel", ["fever", "cough"]),
        (np.array(["fever"]), "multilabel", ["fever"]),
        ("M", "categorical", "M"),
    ],
    ids=lambda v: repr(v)[:20],
)
def test_convert_cell(value: Any, kind: str, expected: Any) -> None:
    assert convert_cell(value, kind) == expected


def csv_like(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Records as a CSV chunk reads: every cell text, empty cells NaN."""
    rows = [
        {
            k: ";".join(v) if isinstance(v, list) else str(int(v) if v is True or v is False else v)
            for k, v in r.items()
        }
        for r in records
    ]
    return pd.DataFrame(rows).astype(object)


def test_text_cells_validate_like_the_api_and_bad_rows_name_field_and_reason() -> None:
    good = make_patient()
    frame = csv_like([good, make_patient(heart_rate=400), make_patient(spo2="abc")])
    frame.insert(0, "patient_id", ["a", "b", "c"])
    out = validate_rows(convert_frame(frame), first_row=10)
    assert out.rows == [10] and out.patient_ids == ["a"]
    assert out.records[0]["heart_rate"] == good["heart_rate"]
    assert [(r["row"], r["field"]) for r in out.rejects] == [(11, "heart_rate"), (12, "spo2")]
    assert all(r["reason"] for r in out.rejects)


def test_typed_columns_with_gaps_validate() -> None:
    frame = pd.DataFrame([make_patient(), make_patient(pain_scale=None)])
    assert frame["pain_scale"].dtype == float  # an integer column with a gap
    out = validate_rows(convert_frame(frame), first_row=0)
    assert out.rejects == [] and out.records[0]["pain_scale"] == make_patient()["pain_scale"]


@pytest.mark.parametrize("columns", [["age", "hart_rate"], ["patient_id"]], ids=["typo", "none"])
def test_unusable_columns_are_refused(columns: list[str]) -> None:
    with pytest.raises(UnknownColumnsError):
        check_columns(columns)


def test_labels_and_aliases_are_accepted() -> None:
    assert check_columns(["age", "sexe", "diagnosis", "treatment", "patient_id"]) == ["age", "sexe"]
