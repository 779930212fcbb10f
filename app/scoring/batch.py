"""One chunk of input rows -> its output rows and its rejects (both engines call this).

The predictions come from `Predictor.predict_many`, the code behind `POST /predict/batch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from app.scoring.records import PATIENT_ID, convert_frame, validate_rows
from app.serving.predictor import Predictor

OUTPUT_COLUMNS = (
    "row",
    PATIENT_ID,
    "diagnosis_code",
    "diagnosis_probability",
    "treatment_code",
    "treatment_probability",
    "prediction_quality",
    "news2_score",
    "run_id",
    "diagnosis_version",
    "treatment_version",
)
REJECT_COLUMNS = ("row", "field", "value", "reason")
_DTYPES = {
    "row": "int64",
    "diagnosis_probability": "float64",
    "treatment_probability": "float64",
    "news2_score": "Int64",
}


def output_frame(rows: Sequence[dict[str, Any]], with_patient_id: bool) -> pd.DataFrame:
    """Output rows -> a frame with the fixed columns and dtypes (also when empty)."""
    columns = [c for c in OUTPUT_COLUMNS if with_patient_id or c != PATIENT_ID]
    frame = pd.DataFrame(list(rows), columns=columns)
    return frame.astype({k: v for k, v in _DTYPES.items() if k in columns}).astype(
        {c: "object" for c in columns if c not in _DTYPES}
    )


def rejects_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Reject rows -> a frame with the fixed columns (also when empty)."""
    return pd.DataFrame(list(rows), columns=list(REJECT_COLUMNS)).astype({"row": "int64"})


def score_chunk(
    predictor: Predictor, chunk: pd.DataFrame, first_row: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate and score one chunk of input rows, numbered from ``first_row``; (output rows,
    reject rows) in row order."""
    valid = validate_rows(convert_frame(chunk), first_row)
    predictions = predictor.predict_many(valid.records) if valid.records else []
    out = []
    for row, patient_id, prediction in zip(valid.rows, valid.patient_ids, predictions, strict=True):
        body = prediction.to_dict()
        diagnosis, treatment, model = body["diagnosis"], body["treatment"], body["model"]
        out.append(
            {
                "row": row,
                PATIENT_ID: patient_id,
                "diagnosis_code": diagnosis["code"] if diagnosis else None,
                "diagnosis_probability": diagnosis["probability"] if diagnosis else None,
                "treatment_code": treatment["code"] if treatment else None,
                "treatment_probability": treatment["probability"] if treatment else None,
                "prediction_quality": body["prediction_quality"],
                "news2_score": body["news2"]["score"],
                "run_id": model["run_id"],
                "diagnosis_version": model["diagnosis_version"],
                "treatment_version": model["treatment_version"],
            }
        )
    return out, valid.rejects
