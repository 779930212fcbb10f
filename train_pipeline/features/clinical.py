"""Clinical feature engineering driven by the task contract: raw columns -> one float matrix.

The core (`ClinicalFeatures.transform_columns`) works on ``dict[str, np.ndarray]`` so the serving
fast path runs the very same code as the fitted sklearn pipeline, without pandas;
`ClinicalFeatures.transform_records` gives the same matrix straight from API records. Both run a
plan unpacked once from the fitted state (`clinical_plan.ClinicalPlan`). Tests hold every path
equal, float for float.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from train_pipeline.contract import SYMPTOM_SEPARATOR, Feature
from train_pipeline.features.encoding import ServingPlanMixin

if TYPE_CHECKING:
    from train_pipeline.features.clinical_plan import ClinicalPlan

Columns = Mapping[str, Any]
NUMERIC_KINDS = ("numeric", "integer", "boolean")
SMALL_BATCH = 6
"""Up to this many records, `ClinicalFeatures.transform_records` works row by row in Python."""


def _num(cols: Columns, name: str) -> np.ndarray:
    return np.asarray(cols[name], dtype=float)


def _band(
    values: np.ndarray, edges: Sequence[float] | np.ndarray, points: Sequence[float] | np.ndarray
) -> np.ndarray:
    """Score `values` by right-closed bands: points[i] when edges[i-1] < v <= edges[i]."""
    idx = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    out = np.asarray(points, dtype=float)[idx]
    out[np.isnan(values)] = np.nan
    return out


class Bands:
    """One NEWS2 chart row: how the vital is rounded, then `_band`'s edges and points.

    ``rounding``: ``floor`` (whole units), ``tenth`` (one decimal, NumPy's `round`) or ``none``.
    For the serving paths the band index is also the count of ``lower`` bounds below the
    value: the raw value when ``raw`` (whole-number edges of a floored vital: ``e < floor(v)``
    iff ``v >= e + 1``, i.e. ``v > nextafter(e + 1, -inf)``), else the rounded one.
    """

    def __init__(self, rounding: str, edges: Sequence[float], points: Sequence[float]) -> None:
        self.rounding = rounding
        self.edges = np.asarray(edges, dtype=float)
        self.points = np.asarray(points, dtype=float)
        self.raw = rounding == "none"
        self.lower = self.edges
        if rounding == "floor" and np.array_equal(self.edges, np.floor(self.edges)):
            self.raw, self.lower = True, np.nextafter(self.edges + 1, -np.inf)
        self._lower_floats: list[float] = self.lower.tolist()
        self._point_floats: list[float] = self.points.tolist()

    def rounded(self, values: np.ndarray) -> np.ndarray:
        if self.rounding == "floor":
            return np.asarray(np.floor(values))
        if self.rounding == "tenth":
            return np.asarray(values).round(1)
        return values

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return _band(self.rounded(values), self.edges, self.points)

    def score(self, value: float) -> float:
        """`__call__` for one plain float (NaN: missing), without NumPy calls."""
        if value != value:
            return math.nan
        if not self.raw:
            value = _rounded_float(value, self.rounding)
        return self._point_floats[bisect_left(self._lower_floats, value)]


def _rounded_float(value: float, rounding: str) -> float:
    """`Bands.rounded` of one float: NumPy's floor, or round to 0.1 as NumPy does it
    (``rint(value * 10) / 10``; Python's `round` of a float is round-half-even, like rint)."""
    if rounding == "floor":
        return float(math.floor(value)) if math.isfinite(value) else value
    if rounding == "tenth":
        tens = value * 10.0
        return round(tens) / 10.0 if math.isfinite(tens) else tens / 10.0
    return value


# NEWS2 sub-scores, Royal College of Physicians, National Early Warning Score 2 (RCP 2017),
# chart 1. Bands are written as upper bounds of each band (value <= edge).
RESPIRATORY_RATE_BANDS = Bands("floor", [8, 11, 20, 24], [3, 1, 0, 2, 3])
SPO2_BANDS = Bands("floor", [91, 93, 95], [3, 2, 1, 0])
SYSTOLIC_BP_BANDS = Bands("floor", [90, 100, 110, 219], [3, 2, 1, 0, 3])
HEART_RATE_BANDS = Bands("floor", [40, 50, 90, 110, 130], [3, 1, 0, 1, 2, 3])
TEMPERATURE_BANDS = Bands("tenth", [35.0, 36.0, 38.0, 39.0], [3, 1, 0, 1, 2])
CONSCIOUSNESS_BANDS = Bands("none", [14], [3, 0])


def news2_respiratory_rate(rr: np.ndarray) -> np.ndarray:
    """RR <=8: 3, 9-11: 1, 12-20: 0, 21-24: 2, >=25: 3 (RCP 2017)."""
    return RESPIRATORY_RATE_BANDS(rr)


def news2_spo2(spo2: np.ndarray) -> np.ndarray:
    """SpO2 scale 1 (on air assumed): <=91: 3, 92-93: 2, 94-95: 1, >=96: 0 (RCP 2017)."""
    return SPO2_BANDS(spo2)


def news2_systolic_bp(sbp: np.ndarray) -> np.ndarray:
    """SBP <=90: 3, 91-100: 2, 101-110: 1, 111-219: 0, >=220: 3 (RCP 2017)."""
    return SYSTOLIC_BP_BANDS(sbp)


def news2_heart_rate(hr: np.ndarray) -> np.ndarray:
    """Pulse <=40: 3, 41-50: 1, 51-90: 0, 91-110: 1, 111-130: 2, >=131: 3 (RCP 2017)."""
    return HEART_RATE_BANDS(hr)


def news2_temperature(temp: np.ndarray) -> np.ndarray:
    """Temp <=35.0: 3, 35.1-36.0: 1, 36.1-38.0: 0, 38.1-39.0: 1, >=39.1: 2 (RCP 2017)."""
    return TEMPERATURE_BANDS(temp)


def news2_consciousness(gcs: np.ndarray) -> np.ndarray:
    """ACVPU: alert scores 0, new confusion or V/P/U scores 3 (RCP 2017); GCS < 15 = not alert."""
    return CONSCIOUSNESS_BANDS(gcs)


# (output name, contract inputs, function of those inputs as float arrays)
NEWS2_PARTS: tuple[tuple[str, str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("news2_respiratory_rate", "respiratory_rate", news2_respiratory_rate),
    ("news2_spo2", "spo2", news2_spo2),
    ("news2_systolic_bp", "systolic_bp", news2_systolic_bp),
    ("news2_heart_rate", "heart_rate", news2_heart_rate),
    ("news2_temperature", "temperature", news2_temperature),
    ("news2_consciousness", "glasgow", news2_consciousness),
)


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
    """Derived features whose inputs all exist in this task (none otherwise).

    Every compute function is a module-level function or a `partial` of one, so fitted
    pipelines pickle with the standard library (BentoML) as well as cloudpickle (MLflow).
    """
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


class ClinicalFeatures(ServingPlanMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Contract columns -> float matrix: numbers, categorical codes, multi-hot, derived features.

    Categorical columns become float codes (index into the contract's categories, or into the
    values seen at fit when the contract lists none; unseen or missing -> NaN) for the
    `TargetEncoder` that follows. Derived features (MAP, shock index, pulse pressure, NEWS2
    sub-scores and total, age band, count of missing labs) are added only when their inputs exist.

    Args:
        features: the task's `Feature`s (the treatment pipeline adds a ``diagnosis`` one).
        engineered: add the derived clinical features.
    """

    def __init__(self, features: tuple[Feature, ...] = (), engineered: bool = True) -> None:
        self.features = features
        self.engineered = engineered

    # -- layout (a function of the contract only, so pipelines can be assembled unfitted) --
    @staticmethod
    def layout(
        features: Sequence[Feature], engineered: bool = True
    ) -> list[tuple[str, tuple[str, ...], str]]:
        """Output columns as (name, source fields, kind) in output order."""
        out: list[tuple[str, tuple[str, ...], str]] = [
            (f.name, (f.name,), "number") for f in features if f.kind in NUMERIC_KINDS
        ]
        out += [(f.name, (f.name,), "categorical") for f in features if f.kind == "categorical"]
        for f in features:
            if f.kind == "multilabel":
                out += [(f"{f.name}__{code}", (f.name,), "flag") for code in f.categories]
        if engineered:
            out += [(e.name, e.sources, "derived") for e in _engineered(features)]
        return out

    @classmethod
    def categorical_positions(
        cls, features: Sequence[Feature], engineered: bool = True
    ) -> tuple[int, ...]:
        """Indices of the categorical-code columns in the output (what the encoder encodes)."""
        return tuple(
            i
            for i, (_, _, kind) in enumerate(cls.layout(features, engineered))
            if kind == "categorical"
        )

    # -- sklearn API -------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> ClinicalFeatures:
        """Learn category vocabularies absent from the contract; fix the output layout."""
        if not self.features:
            raise ValueError("ClinicalFeatures needs the task's features")
        cols = self._columns(X)
        self.vocabulary_: dict[str, dict[str, int]] = {}
        for f in self.features:
            if f.kind == "categorical":
                cats = f.categories or tuple(
                    sorted({str(v) for v in cols[f.name] if not _is_missing(v)})
                )
                self.vocabulary_[f.name] = {c: i for i, c in enumerate(cats)}
        spec = self.layout(self.features, self.engineered)
        self.feature_names_out_ = np.array([name for name, _, _ in spec], dtype=object)
        self.feature_sources_: dict[str, list[str]] = {n: list(s) for n, s, _ in spec}
        self.engineered_ = _engineered(self.features) if self.engineered else []
        self.n_features_in_ = len(self.features)
        self.feature_names_in_ = np.array([f.name for f in self.features], dtype=object)
        from train_pipeline.features.clinical_plan import ClinicalPlan  # imports this module

        self._serving_plan(ClinicalPlan, rebuild=True)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "vocabulary_")
        return self.transform_columns(self._columns(X))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "vocabulary_")
        return self.feature_names_out_.copy()

    # -- the core, shared with the fast path ------------------------------------------------
    def transform_columns(self, cols: Columns) -> np.ndarray:
        """Raw columns (name -> 1-D array or list, same length) -> float matrix."""
        missing = [f.name for f in self.features if f.name not in cols]
        if missing:
            raise ValueError(f"missing input columns: {missing}")
        plan = self._plan()
        out = np.empty((len(cols[self.features[0].name]), plan.width))
        for j, name in enumerate(plan.numeric):
            out[:, j] = _num(cols, name)
        j = len(plan.numeric)
        for name, vocab in plan.categorical:
            out[:, j] = [
                np.nan if _is_missing(v) else vocab.get(v if isinstance(v, str) else str(v), np.nan)
                for v in cols[name]
            ]
            j += 1
        for name, index in plan.multilabel:
            out[:, j : j + len(index)] = _multi_hot(index, cols[name])
            j += len(index)
        plan.derive(out)  # derived features read the float columns only
        return out

    def transform_records(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Canonical records -> the matrix `transform_columns` gives on the same values.

        A record is a mapping of contract names (absent or None = missing); an absent boolean
        takes its feature's default and numbers become floats, as the serving columns do. One
        NumPy conversion for all the numbers instead of one per column; up to `SMALL_BATCH`
        records, the rows are computed in plain Python (the derived features' row forms:
        fewer NumPy calls).
        """
        plan = self._plan()
        if 0 < len(records) <= SMALL_BATCH and plan.row_steps is not None:
            return np.array([plan.row(r) for r in records], dtype=float)
        out = np.empty((len(records), plan.width))
        if records:
            plan.fill(out, records)
        plan.derive(out)
        return out

    def _plan(self) -> ClinicalPlan:
        plan: ClinicalPlan | None = self.__dict__.get("_serving_cache")  # the hot path
        if plan is None:
            from train_pipeline.features.clinical_plan import ClinicalPlan

            plan = self._serving_plan(ClinicalPlan)
        return plan

    def _columns(self, X: Any) -> dict[str, Any]:
        if isinstance(X, Mapping):
            return dict(X)
        if hasattr(X, "columns"):  # a DataFrame: hand its columns over as NumPy arrays
            names = [f.name for f in self.features]
            absent = [n for n in names if n not in X.columns]
            if absent:
                raise ValueError(f"missing input columns: {absent}")
            return {
                f.name: X[f.name].to_numpy(dtype=float, na_value=np.nan)
                if f.kind in NUMERIC_KINDS
                else X[f.name].to_numpy()
                for f in self.features
            }
        raise TypeError("ClinicalFeatures expects a DataFrame or a mapping of columns")


def _multi_hot(index: Mapping[str, int], values: Any) -> np.ndarray:
    out = np.zeros((len(values), len(index)))
    for row, value in enumerate(values):
        for code in _codes_of(value):
            j = index.get(code)
            if j is not None:
                out[row, j] = 1.0
    return out
