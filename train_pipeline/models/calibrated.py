"""A calibrated ``model`` step: scikit-learn's `CalibratedClassifierCV` around a class-weighted
classifier, so the pipeline keeps its shape features -> encode -> impute -> model.

`CalibratedClassifierCV(ensemble=False)` fits the classifier on k-1 folds k times for
out-of-fold probabilities, fits one calibrator per class (sigmoid or isotonic) on them, then
refits the classifier on every row. The class weights that handle imbalance must reach the
classifier but not the calibrators (weighted calibrators would calibrate to the reweighted
population, not the patients'): `ClassWeighted` computes them itself from the labels it is fitted
on, and the pipeline passes no sample weights to the calibrated step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.validation import check_is_fitted

from train_pipeline.models.pipeline import class_weights

METHODS: tuple[str, ...] = ("sigmoid", "isotonic", "temperature")


class ClassWeighted(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Fits a clone of ``estimator`` with per-row class weights computed from ``y``.

    Args:
        estimator: an unfitted classifier whose ``fit`` takes ``sample_weight``.
        scheme: `class_weights` scheme (``sqrt_balanced``, ``balanced``, ``none``).
    """

    def __init__(self, estimator: Any = None, scheme: str = "sqrt_balanced") -> None:
        self.estimator = estimator
        self.scheme = scheme

    def fit(self, X: Any, y: np.ndarray) -> ClassWeighted:
        self.estimator_ = clone(self.estimator)
        self.estimator_.fit(X, y, sample_weight=class_weights(np.asarray(y), self.scheme))
        self.classes_ = np.asarray(self.estimator_.classes_)
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])


def calibrated(
    model: Any, method: str, folds: int, seed: int, scheme: str = "sqrt_balanced"
) -> CalibratedClassifierCV:
    """An unfitted calibrated step around the unfitted classifier ``model``."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; one of {METHODS}")
    return CalibratedClassifierCV(
        ClassWeighted(model, scheme),
        method=method,
        cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        ensemble=False,
    )


def base_model(model: Any) -> Any:
    """The classifier that scores behind a (possibly calibrated) fitted ``model`` step: for a
    calibrated step, the one fitted on every row (its probabilities before calibration)."""
    if isinstance(model, CalibratedClassifierCV):
        inner = model.calibrated_classifiers_[0].estimator
        return inner.estimator_ if isinstance(inner, ClassWeighted) else inner
    return model


def is_calibrated(model: Any) -> bool:
    return isinstance(model, CalibratedClassifierCV)


def calibration_method(model: Any) -> str | None:
    """``sigmoid`` / ``isotonic`` for a calibrated step, None otherwise."""
    return str(model.method) if isinstance(model, CalibratedClassifierCV) else None
