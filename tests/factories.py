"""Valid-by-default request payloads; tests override only what they are about."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd

from app.schemas.patient import PATIENT_EXAMPLE, TASK
from train_pipeline.contract import camel_case
from train_pipeline.data.payloads import payload_of_row

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
    """The valid payload of one cohort row (`train_pipeline.data.payloads`)."""
    return payload_of_row(row, TASK)
