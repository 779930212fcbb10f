"""Valid-by-default request payloads; tests override only what they are about."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pandas as pd

from app.schemas.patient import PATIENT_EXAMPLE, TASK
from train_pipeline.contract import SYMPTOM_SEPARATOR, camel_case

DROP = object()  # make_patient(heart_rate=DROP) leaves the field out


def make_patient(**overrides: Any) -> dict[str, Any]:
    """A complete, valid canonical payload (quality `high`), with ``overrides`` applied."""
    patient = copy.deepcopy(PATIENT_EXAMPLE)
    for name, value in overrides.items():
        if value is DROP:
            patient.pop(name, None)
        else:
            patient[name] = value
    return patient


def renamed(payload: dict[str, Any], style: str) -> dict[str, Any]:
    """``payload`` with camelCase (``style="camel"``) or French/explicit-alias names
    (``style="french"``); converted aliases (``glycemie``) are applied with their unit."""
    out: dict[str, Any] = {}
    for name, value in payload.items():
        feat = TASK.feature(name)
        if style == "camel":
            out[camel_case(name)] = value
        elif feat.converted_aliases:
            alias, _, factor = feat.converted_aliases[0]
            out[alias] = value / factor if isinstance(value, int | float) else value
        else:
            out[feat.aliases[0] if feat.aliases else name] = value
    return out


def cohort_payloads(data_path: Path, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` random cohort rows as API payloads: missing values left out, values outside the
    API's ranges (the generator's outliers) left out too, so every payload is valid."""
    df = pd.read_csv(data_path)
    df = df.sample(n=min(n, len(df)), random_state=seed)
    payloads = []
    for row in df.to_dict(orient="records"):
        payload = _payload(row)
        if payload is not None:
            payloads.append(payload)
    return payloads


def _payload(row: dict[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for feat in TASK.features:
        value = row.get(feat.name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if feat.kind in ("numeric", "integer"):
            number = float(value)
            if feat.kind == "integer":
                if not number.is_integer():
                    continue
                number = int(number)
            if not feat.minimum <= number <= feat.maximum:  # type: ignore[operator]
                continue
            out[feat.name] = number
        elif feat.kind == "boolean":
            out[feat.name] = bool(int(value))
        elif feat.kind == "multilabel":
            codes = [c for c in str(value).split(SYMPTOM_SEPARATOR) if c in feat.categories]
            out[feat.name] = codes[: feat.max_items]
        elif str(value) in feat.categories:
            out[feat.name] = str(value)
    if "diastolic_bp" in out and out["diastolic_bp"] >= out.get("systolic_bp", math.inf):
        del out["diastolic_bp"]
    required = TASK.names_in_tier("required")
    return out if all(name in out for name in required) else None
