"""Clinical feature engineering driven by the task contract: raw columns -> one float matrix.

The core (`ClinicalFeatures.transform_columns`) works on ``dict[str, np.ndarray]`` so the serving
fast path runs the very same code as the fitted sklearn pipeline, without pandas, through a plan
unpacked once from the fitted state (`clinical_plan.ClinicalPlan`). The derived features live in
`derived`, the NEWS2 table in `news2`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from train_pipeline.contract import Feature
from train_pipeline.features.clinical_plan import ClinicalPlan
from train_pipeline.features.derived import (
    AGE_BAND_EDGES,
    NEWS2_PARTS,
    NUMERIC_KINDS,
    Columns,
    Engineered,
    _age_band,
    _age_band_of,
    _codes_of,
    _count_missing,
    _engineered,
    _is_missing,
    _map,
    _news2_part,
    _num,
    _pulse_pressure,
    _shock_index,
    news2_consciousness,
    news2_heart_rate,
    news2_respiratory_rate,
    news2_spo2,
    news2_subscores,
    news2_systolic_bp,
    news2_temperature,
    news2_total,
)
from train_pipeline.features.encoding import ServingPlanMixin

# Pickled pipelines refer to the derived features' functions by module and name: models trained
# before `derived` existed name this module, so its old names stay importable from here.
__all__ = [
    "AGE_BAND_EDGES",
    "NEWS2_PARTS",
    "NUMERIC_KINDS",
    "ClinicalFeatures",
    "Columns",
    "Engineered",
    "_age_band",
    "_age_band_of",
    "_count_missing",
    "_engineered",
    "_map",
    "_news2_part",
    "_pulse_pressure",
    "_shock_index",
    "news2_consciousness",
    "news2_heart_rate",
    "news2_respiratory_rate",
    "news2_spo2",
    "news2_subscores",
    "news2_systolic_bp",
    "news2_temperature",
    "news2_total",
]


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

    def _plan(self) -> ClinicalPlan:
        plan: ClinicalPlan | None = self.__dict__.get("_serving_cache")  # the hot path
        if plan is None:
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
