"""Clinical feature engineering driven by the task contract: raw columns -> one float matrix.

The core (`ClinicalFeatures.transform_columns`) works on ``dict[str, np.ndarray]`` so the serving
fast path runs the very same code as the fitted sklearn pipeline, without pandas.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from train_pipeline.contract import SYMPTOM_SEPARATOR, Feature

Columns = Mapping[str, Any]
NUMERIC_KINDS = ("numeric", "integer", "boolean")


def _num(cols: Columns, name: str) -> np.ndarray:
    return np.asarray(cols[name], dtype=float)


def _band(values: np.ndarray, edges: Sequence[float], points: Sequence[float]) -> np.ndarray:
    """Score `values` by right-closed bands: points[i] when edges[i-1] < v <= edges[i]."""
    idx = np.searchsorted(np.asarray(edges, dtype=float), values, side="left")
    out = np.asarray(points, dtype=float)[idx]
    out[np.isnan(values)] = np.nan
    return out


# NEWS2 sub-scores, Royal College of Physicians, National Early Warning Score 2 (RCP 2017),
# chart 1. Bands are written as upper bounds of each band (value <= edge).
def news2_respiratory_rate(rr: np.ndarray) -> np.ndarray:
    """RR <=8: 3, 9-11: 1, 12-20: 0, 21-24: 2, >=25: 3 (RCP 2017)."""
    return _band(np.floor(rr), [8, 11, 20, 24], [3, 1, 0, 2, 3])


def news2_spo2(spo2: np.ndarray) -> np.ndarray:
    """SpO2 scale 1 (on air assumed): <=91: 3, 92-93: 2, 94-95: 1, >=96: 0 (RCP 2017)."""
    return _band(np.floor(spo2), [91, 93, 95], [3, 2, 1, 0])


def news2_systolic_bp(sbp: np.ndarray) -> np.ndarray:
    """SBP <=90: 3, 91-100: 2, 101-110: 1, 111-219: 0, >=220: 3 (RCP 2017)."""
    return _band(np.floor(sbp), [90, 100, 110, 219], [3, 2, 1, 0, 3])


def news2_heart_rate(hr: np.ndarray) -> np.ndarray:
    """Pulse <=40: 3, 41-50: 1, 51-90: 0, 91-110: 1, 111-130: 2, >=131: 3 (RCP 2017)."""
    return _band(np.floor(hr), [40, 50, 90, 110, 130], [3, 1, 0, 1, 2, 3])


def news2_temperature(temp: np.ndarray) -> np.ndarray:
    """Temp <=35.0: 3, 35.1-36.0: 1, 36.1-38.0: 0, 38.1-39.0: 1, >=39.1: 2 (RCP 2017)."""
    return _band(np.round(temp, 1), [35.0, 36.0, 38.0, 39.0], [3, 1, 0, 1, 2])


def news2_consciousness(gcs: np.ndarray) -> np.ndarray:
    """ACVPU: alert scores 0, new confusion or V/P/U scores 3 (RCP 2017); GCS < 15 = not alert."""
    return _band(gcs, [14], [3, 0])


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


def _age_band(age: np.ndarray) -> np.ndarray:
    """0: <40, 1: 40-64, 2: 65-79, 3: >=80 years (the usual geriatric cut-offs)."""
    idx = np.searchsorted(np.array([40.0, 65.0, 80.0]), age, side="right").astype(float)
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
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(SYMPTOM_SEPARATOR) if v.strip()]
    return [str(v) for v in value]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


class ClinicalFeatures(TransformerMixin, BaseEstimator):  # type: ignore[misc]
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
        numeric = {f.name: _num(cols, f.name) for f in self.features if f.kind in NUMERIC_KINDS}
        n_rows = len(cols[self.features[0].name])
        out = np.empty((n_rows, len(self.feature_names_out_)))
        j = 0
        for values in numeric.values():
            out[:, j] = values
            j += 1
        for f in self.features:
            if f.kind == "categorical":
                vocab = self.vocabulary_[f.name]
                out[:, j] = [
                    np.nan
                    if _is_missing(v)
                    else vocab.get(v if isinstance(v, str) else str(v), np.nan)
                    for v in cols[f.name]
                ]
                j += 1
        for f in self.features:
            if f.kind == "multilabel":
                k = len(f.categories)
                out[:, j : j + k] = self._multi_hot(f, cols[f.name])
                j += k
        for eng in self.engineered_:  # derived features read the float columns only
            out[:, j] = eng.compute(numeric)
            j += 1
        return out

    @staticmethod
    def _multi_hot(feature: Feature, values: Any) -> np.ndarray:
        index = {code: i for i, code in enumerate(feature.categories)}
        out = np.zeros((len(values), len(index)))
        for row, value in enumerate(values):
            for code in _codes_of(value):
                j = index.get(code)
                if j is not None:
                    out[row, j] = 1.0
        return out

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
