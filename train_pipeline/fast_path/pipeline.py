"""The serving fast path: a fitted pipeline's steps called directly on NumPy columns.

`FastPipeline.predict_proba(cols)` reproduces `pipeline.predict_proba(df)` (a regression test
checks it to 1e-6) from a ``dict[str, np.ndarray]`` of raw columns, without building a DataFrame
and without sklearn's per-call validation: it calls the same transformer cores
(`ClinicalFeatures.transform_columns`, `TargetEncoder.transform_array`,
`MedianImputer.transform_array`) and then the booster.

A calibrated model step (`models.calibrated`: `CalibratedClassifierCV`) is served exactly: its
own fitted calibrators (`calibration`: `calibrated.Calibrators`, without scikit-learn's
per-call validation) read the classifier's probabilities, from the NumPy forest up to
`FOREST_MAX_ROWS` rows and from CatBoost on one thread above, once they reproduce the step on
the forest's check rows through both; else the step's own ``predict_proba`` serves. SHAP
explains the classifier inside it, fitted on every training row (`calibrated` holds the step,
`model` that classifier).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from train_pipeline.fast_path.calibrated import Calibrators
from train_pipeline.fast_path.forest import ObliviousForest
from train_pipeline.features import ClinicalFeatures, MedianImputer, TargetEncoder
from train_pipeline.models.calibrated import base_model, is_calibrated
from train_pipeline.models.pipeline import output_sources

MULTI_THREAD_ROWS = 4096
"""CatBoost uses every core only above this many rows (measured in `predict_proba_matrix`)."""
FOREST_MAX_ROWS = 128
"""Up to this many rows the NumPy forest evaluates CatBoost models; above, CatBoost itself.
Measured (300 trees, depth 6, 13 classes, min of 7): 1 row 37 vs 354 µs, 8 rows 118 vs 476 µs,
1,000 rows 5.4 vs 3.3 ms (CatBoost's C++ wins on big batches)."""


@dataclass(frozen=True)
class FastPipeline:
    """A fitted pipeline unpacked for low-overhead inference.

    Attributes:
        features / encoder / imputer / model: the fitted steps of the source pipeline.
        kind: ``catboost``, ``xgboost`` or ``linear`` (`ScaledLogisticRegression`).
        classes: the model's ``classes_`` (column order of `predict_proba`).
        sources: for each model input column, the original contract fields behind it.
        single_row_threads: CatBoost threads up to `MULTI_THREAD_ROWS` rows (1 avoids thread
            start-up and busy-waiting workers).
        forest: the CatBoost model's trees in NumPy (`ObliviousForest`, checked against
            CatBoost when built), used up to `FOREST_MAX_ROWS` rows; None: CatBoost always
            above it.
        calibrated: the calibrated model step that scores, None when `model` scores itself.
        calibration: ``calibrated``'s fitted calibrators, applied to the classifier's
            probabilities from the forest or from CatBoost on one thread (None: no forest to
            check them on, or not reproduced to its tolerance: the step itself scores).
    """

    features: ClinicalFeatures
    encoder: TargetEncoder
    imputer: MedianImputer
    model: Any
    kind: str
    classes: np.ndarray
    sources: list[list[str]]
    single_row_threads: int = 1
    forest: ObliviousForest | None = None
    calibrated: Any = None
    calibration: Calibrators | None = None

    @classmethod
    def from_pipeline(cls, pipeline: Pipeline, *, forest: bool = True) -> FastPipeline:
        """Unpack a fitted features -> encode -> impute -> model pipeline.

        ``forest``: also build the NumPy forest of a CatBoost model (about 0.1 s; it is left
        out when the model's predictions cannot be reproduced to its tolerance).
        """
        steps = pipeline.named_steps
        step = steps["model"]
        model = base_model(step)
        calibrated = step if is_calibrated(step) else None
        name = type(model).__name__
        kind = (
            "catboost"
            if name.startswith("CatBoost")
            else "xgboost"
            if "XGB" in name
            else "linear"
            if hasattr(model, "pred_contribs")
            else ""
        )
        if not kind:
            raise TypeError(f"no fast path for model type {name}")
        trees = ObliviousForest.from_model(model) if forest and kind == "catboost" else None
        fast = cls(
            features=steps["features"],
            encoder=steps["encode"],
            imputer=steps["impute"],
            model=model,
            kind=kind,
            classes=np.asarray(model.classes_),
            sources=output_sources(pipeline),
            forest=trees,
            calibrated=calibrated,
        )
        calibration = Calibrators.of_step(calibrated) if calibrated is not None else None
        if calibration is not None and fast._holds(calibration):
            fast = replace(fast, calibration=calibration)
        return fast

    def _holds(self, calibration: Calibrators) -> bool:
        """``calibration`` on the forest's and on CatBoost's probabilities reproduces the
        calibrated step on the rows the forest was checked on."""
        forest = self.forest
        if forest is None or forest.checked_rows is None or self.calibrated is None:
            return False
        rows = forest.checked_rows
        expected = np.asarray(self.calibrated.predict_proba(rows))  # once, for both sources
        return calibration.reproduce(expected, forest.predict_proba(rows)) and (
            calibration.reproduce(expected, self._model_scores(rows))
        )

    @property
    def forest_serves(self) -> bool:
        """The NumPy forest scores (up to `FOREST_MAX_ROWS` rows), through the calibrators
        when the model is calibrated."""
        return self.forest is not None and (self.calibrated is None or self.calibration is not None)

    @property
    def input_names(self) -> list[str]:
        """Raw columns `predict_proba` expects (the contract fields of this pipeline)."""
        return [f.name for f in self.features.features]

    def transform_matrix(self, cols: Mapping[str, Any]) -> np.ndarray:
        """Raw columns -> the model's float input matrix (also what SHAP explains)."""
        X = self.features.transform_columns(cols)
        X = self.encoder.transform_array(X)
        return self.imputer.transform_array(X)

    def predict_proba(self, cols: Mapping[str, Any]) -> np.ndarray:
        """(n, K) class probabilities in `classes` order."""
        return self.predict_proba_matrix(self.transform_matrix(cols))

    def predict_proba_matrix(self, X: np.ndarray) -> np.ndarray:
        """Probabilities from an already transformed matrix."""
        if self.calibrated is None:
            return self._scores(X)
        if self.calibration is not None:
            return self.calibration.apply(self._scores(X))
        return np.asarray(self.calibrated.predict_proba(X))

    def _scores(self, X: np.ndarray) -> np.ndarray:
        """The classifier's own probabilities: the forest's up to `FOREST_MAX_ROWS` rows."""
        if self.forest is not None and X.shape[0] <= FOREST_MAX_ROWS:
            return self.forest.predict_proba(X)
        return self._model_scores(X)

    def _model_scores(self, X: np.ndarray) -> np.ndarray:
        """The classifier's own probabilities, from the model itself."""
        if self.kind == "linear":
            return np.asarray(self.model.predict_proba(X))
        if self.kind == "catboost":
            # One thread up to 4,096 rows: 1,000 rows take the same wall time (2.9 ms) as with all
            # threads on this 2-core host but 2.9 vs 4.2-6.1 ms of process CPU (busy workers).
            # float32 in column order, as CatBoost stores features: its Pool takes the matrix
            # without a conversion or a transpose (1,000 x 82: float64 3.8 -> C-order float32
            # 2.7 -> Fortran-order float32 2.1 ms a call, medians of 100; the same output).
            threads = self.single_row_threads if X.shape[0] <= MULTI_THREAD_ROWS else -1
            X32 = np.asfortranarray(X, dtype=np.float32)
            return np.asarray(self.model.predict_proba(X32, thread_count=threads))
        raw = self.model.get_booster().inplace_predict(X, validate_features=False)
        if raw.ndim == 1:  # binary objective: probability of class 1
            return np.vstack((1.0 - raw, raw)).T
        return np.asarray(raw)

    def shap_values(self, X: np.ndarray) -> np.ndarray:
        """SHAP values (n, K', F) of the model inputs, bias column dropped.

        K' = K for multi-class, 1 for binary (contributions to the log-odds of class 1).
        """
        if self.kind == "linear":
            vals = self.model.pred_contribs(X)
        elif self.kind == "catboost":
            from catboost import Pool

            vals = self.model.get_feature_importance(Pool(X), type="ShapValues")
        else:
            from xgboost import DMatrix

            vals = self.model.get_booster().predict(DMatrix(X), pred_contribs=True)
        vals = np.asarray(vals)
        if vals.ndim == 2:
            vals = vals[:, None, :]
        return vals[:, :, :-1]

    def to_original(self, values: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Sum per-column values (..., F) into original contract fields (..., P).

        A derived column (e.g. shock index) is split evenly between the fields it comes from.
        """
        fields = list(dict.fromkeys(f for src in self.sources for f in src))
        index = {f: i for i, f in enumerate(fields)}
        weights = np.zeros((len(self.sources), len(fields)))
        for j, src in enumerate(self.sources):
            for f in src:
                weights[j, index[f]] += 1.0 / len(src)
        return fields, values @ weights

    def explain(self, cols: Mapping[str, Any], class_index: np.ndarray) -> list[dict[str, float]]:
        """Per row, the SHAP contribution of each original field to the given class."""
        shap = self.shap_values(self.transform_matrix(cols))
        k = np.where(shap.shape[1] == 1, 0, np.asarray(class_index))
        per_row = shap[np.arange(shap.shape[0]), k]
        fields, agg = self.to_original(per_row)
        return [dict(zip(fields, map(float, row), strict=True)) for row in agg]

    def global_importance(self, cols: Mapping[str, Any]) -> dict[str, float]:
        """Mean |SHAP| per original field over the given rows and all classes, largest first."""
        shap = self.shap_values(self.transform_matrix(cols))
        fields, agg = self.to_original(np.abs(shap).mean(axis=(0, 1)))
        pairs = sorted(zip(fields, agg.tolist(), strict=True), key=lambda p: -p[1])
        return {f: float(v) for f, v in pairs}
