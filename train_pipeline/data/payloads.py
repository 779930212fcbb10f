"""Cohort CSV rows as API request payloads: what the tests and `make bench` send.

A row's missing values are left out, and so is every value the API would refuse (outside the
contract's range, a fractional integer, an unknown category), so each payload is valid: symptoms
are cut to the contract's maximum, and a diastolic pressure not below the systolic one is
dropped. A row whose required fields do not all survive gives no payload.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from train_pipeline.contract import ED_COHORT, SYMPTOM_SEPARATOR, TaskContract


def payload_of_row(row: Mapping[str, Any], task: TaskContract = ED_COHORT) -> dict[str, Any] | None:
    """The valid payload of one CSV row (canonical names), or None without its required fields."""
    out: dict[str, Any] = {}
    for feat in task.features:
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
    required = task.names_in_tier("required")
    return out if all(name in out for name in required) else None
