"""The request bodies `make bench` sends: real cohort patients as HealthPredict's canonical
payloads, the same patients as the DataFrame rows `mlflow models serve` and the BentoML service
take, and batches of them; one JSON body per line, as `bench/wrk/predict.lua` reads them."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from train_pipeline.contract import ED_COHORT, SYMPTOM_SEPARATOR
from train_pipeline.data.payloads import payload_of_row

N_BODIES = 500


def cohort_rows(path: Path, n: int) -> list[dict[str, Any]]:
    """``n`` cohort rows (drawn with replacement) as valid canonical API payloads
    (`train_pipeline.data.payloads`: absent and out-of-range values left out)."""
    df = pd.read_csv(path).sample(n=n, random_state=0, replace=True)
    payloads = (payload_of_row(row) for row in df.to_dict(orient="records"))
    return [p for p in payloads if p is not None]


def frame_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A payload as the sklearn pipeline's DataFrame row (what MLflow / BentoML take)."""
    row: dict[str, Any] = {}
    for f in ED_COHORT.features:
        v = rec.get(f.name)
        if f.kind == "multilabel":
            row[f.name] = SYMPTOM_SEPARATOR.join(v or ())
        elif f.kind == "categorical":
            row[f.name] = v
        elif f.kind == "boolean":
            row[f.name] = float(bool(v))
        else:
            row[f.name] = math.nan if v is None else float(v)
    return row


def write_bodies(tmp: Path, payloads: list[dict[str, Any]], batch: int) -> dict[str, Path]:
    """One JSON body per line, per request format."""
    files = {
        "canonical": [json.dumps(p) for p in payloads],
        "mlflow": [json.dumps({"dataframe_records": [frame_row(p)]}) for p in payloads],
        "bentoml": [json.dumps({"records": [frame_row(p)]}) for p in payloads],
        "batch": [
            json.dumps({"records": [payloads[(k * 131 + i) % len(payloads)] for i in range(batch)]})
            for k in range(3)
        ],
    }
    paths = {}
    for name, lines in files.items():
        paths[name] = tmp / f"{name}.jsonl"
        paths[name].write_text("\n".join(lines) + "\n")
    return paths
