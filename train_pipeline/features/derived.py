"""The derived clinical features (MAP, shock index, pulse pressure, age band, NEWS2 sub-scores,
missing-lab count), read by `clinical` and `clinical_plan`, and the cell helpers of `clinical`.

Every compute function is a module-level function or a `partial` of one, so fitted pipelines
pickle with the standard library (BentoML) as well as cloudpickle (MLflow).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from train_pipeline.contract import SYMPTOM_SEPARATOR, Feature
from train_pipeline.features.news2 import (
    CONSCIOUSNESS,
    NEWS2_PARAMETERS,
    PULSE,
    RESPIRATORY_RATE,
    SPO2_SCALE1,
    SYSTOLIC_BP,
    TEMPERATURE,
    News2Parameter,
)

Columns = Mapping[str, Any]
NUMERIC_KINDS = ("numeric", "integer", "boolean")


def _num(cols: Columns, name: str) -> np.ndarray:
    return np.asarray(cols[name], dtype=float)


# NEWS2 sub-scores: the bands are the one table of `news2` (RCP 2017 chart 1, recorded values).
def news2_respiratory_rate(rr: np.ndarray) -> np.ndarray:
    """RR <=8: 3, 9-11: 1, 12-20: 0, 21-24: 2, >=25: 3 (RCP 2017)."""
    return RESPIRATORY_RATE.scores(rr)


def news2_spo2(spo2: np.ndarray) -> np.ndarray:
    """SpO2 scale 1 (on air assumed): <=91: 3, 92-93: 2, 94-95: 1, >=96: 0 (RCP 2017)."""
    return SPO2_SCALE1.scores(spo2)


def news2_systolic_bp(sbp: np.ndarray) -> np.ndarray:
    """SBP <=90: 3, 91-100: 2, 101-110: 1, 111-219: 0, >=220: 3 (RCP 2017)."""
    return SYSTOLIC_BP.scores(sbp)


def news2_heart_rate(hr: np.ndarray) -> np.ndarray:
    """Pulse <=40: 3, 41-50: 1, 51-90: 0, 91-110: 1, 111-130: 2, >=131: 3 (RCP 2017)."""
    return PULSE.scores(hr)


def news2_temperature(temp: np.ndarray) -> np.ndarray:
    """Temp <=35.0: 3, 35.1-36.0: 1, 36.1-38.0: 0, 38.1-39.0: 1, >=39.1: 2 (RCP 2017)."""
    return TEMPERATURE.scores(temp)


def news2_consciousness(gcs: np.ndarray) -> np.ndarray:
    """ACVPU: alert scores 0, new confusion or V/P/U scores 3 (RCP 2017); GCS < 15 = not alert."""
    return CONSCIOUSNESS.scores(gcs)


# (output name, contract input, function of that input as a float array), `NEWS2_PARAMETERS`
# order; the function names are what pickled pipelines refer to.
NEWS2_PARTS: tuple[tuple[str, str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("news2_respiratory_rate", "respiratory_rate", news2_respiratory_rate),
    ("news2_spo2", "spo2", news2_spo2),
    ("news2_systolic_bp", "systolic_bp", news2_systolic_bp),
    ("news2_heart_rate", "heart_rate", news2_heart_rate),
    ("news2_temperature", "temperature", news2_temperature),
    ("news2_consciousness", "glasgow", news2_consciousness),
)
NEWS2_PARAMETER_OF: dict[str, News2Parameter] = {p.field: p for p in NEWS2_PARAMETERS}
"""The chart row of each NEWS2 input field."""
if [src for _, src, _ in NEWS2_PARTS] != list(NEWS2_PARAMETER_OF):
    raise RuntimeError("NEWS2_PARTS must follow NEWS2_PARAMETERS")


def news2_subscores(cols: Columns) -> dict[str, np.ndarray]:
    """The NEWS2 sub-scores computable from `cols` (NaN where the input is missing)."""
    return {out: fn(_num(cols, src)) for out, src, fn in NEWS2_PARTS if src in cols}


def news2_total(cols: Columns) -> np.ndarray:
    """NEWS2 aggregate; a missing parameter contributes 0 (the score of a normal value)."""
    parts = list(news2_subscores(cols).values())
    return np.nansum(np.vstack(parts), axis=0) if parts else np.zeros(0)


AGE_BAND_EDGES = np.array([40.0, 65.0, 80.0])


def _age_band(age: np.ndarray) -> np.ndarray:
    """0: <40, 1: 40-64, 2: 65-79, 3: >=80 years (the usual geriatric cut-offs)."""
    idx = np.searchsorted(AGE_BAND_EDGES, age, side="right").astype(float)
    idx[np.isnan(age)] = np.nan
    return idx


@dataclass(frozen=True)
class Engineered:
    """A derived feature: its name, the contract fields it needs, how to compute it."""

    name: str
    sources: tuple[str, ...]
    compute: Callable[[Columns], np.ndarray]


def _map(c: Columns) -> np.ndarray:
    return np.asarray((_num(c, "systolic_bp") + 2 * _num(c, "diastolic_bp")) / 3, dtype=float)


def _shock_index(c: Columns) -> np.ndarray:
    return np.asarray(_num(c, "heart_rate") / _num(c, "systolic_bp"), dtype=float)


def _pulse_pressure(c: Columns) -> np.ndarray:
    return np.asarray(_num(c, "systolic_bp") - _num(c, "diastolic_bp"), dtype=float)


def _age_band_of(c: Columns) -> np.ndarray:
    return _age_band(_num(c, "age"))


def _news2_part(source: str, fn: Callable[[np.ndarray], np.ndarray], c: Columns) -> np.ndarray:
    return fn(_num(c, source))


def _count_missing(names: tuple[str, ...], c: Columns) -> np.ndarray:
    return np.asarray(np.sum([np.isnan(_num(c, n)) for n in names], axis=0), dtype=float)


def _engineered(features: Sequence[Feature]) -> list[Engineered]:
    """Derived features whose inputs all exist in this task (none otherwise)."""
    names = {f.name for f in features if f.kind in NUMERIC_KINDS}
    labs = tuple(f.name for f in features if f.kind == "numeric" and f.tier == "optional")
    candidates = [
        Engineered("mean_arterial_pressure", ("systolic_bp", "diastolic_bp"), _map),
        Engineered("shock_index", ("heart_rate", "systolic_bp"), _shock_index),
        Engineered("pulse_pressure", ("systolic_bp", "diastolic_bp"), _pulse_pressure),
        Engineered("age_band", ("age",), _age_band_of),
    ]
    for out, src, fn in NEWS2_PARTS:
        candidates.append(Engineered(out, (src,), partial(_news2_part, src, fn)))
    news_sources = tuple(src for _, src, _ in NEWS2_PARTS if src in names)
    if news_sources:
        candidates.append(Engineered("news2_total", news_sources, news2_total))
    if labs:
        candidates.append(Engineered("labs_missing", labs, partial(_count_missing, labs)))
    return [e for e in candidates if set(e.sources) <= names]


def _codes_of(value: Any) -> list[str]:
    """Multilabel cell -> codes: a ``;``-joined string, a list/tuple/array, or missing."""
    if _is_missing(value):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(SYMPTOM_SEPARATOR) if v.strip()]
    return [str(v) for v in value]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
