"""Median imputation learned at fit, applied with pure NumPy (shared by the fast path)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class MedianImputer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Replace NaN by the column median seen at fit (0.0 for a column that was all NaN)."""

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any = None) -> MedianImputer:
        X = validate_data(self, X, dtype=float, ensure_all_finite="allow-nan")
        with warnings.catch_warnings():  # an all-NaN column is expected; it gets 0.0
            warnings.simplefilter("ignore", RuntimeWarning)
            medians = np.nanmedian(X, axis=0) if X.shape[0] else np.zeros(X.shape[1])
        self.statistics_ = np.where(np.isnan(medians), 0.0, medians)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "statistics_")
        X = validate_data(self, X, dtype=float, ensure_all_finite="allow-nan", reset=False)
        return self.transform_array(X)

    def transform_array(self, X: np.ndarray) -> np.ndarray:
        """The NumPy core: no validation, used by the fast path on already-checked matrices."""
        X = np.asarray(X, dtype=float)
        return np.where(np.isnan(X), self.statistics_, X)  # a new array, X left untouched

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "statistics_")
        if input_features is None:
            input_features = [f"x{i}" for i in range(self.n_features_in_)]
        return np.asarray(input_features, dtype=object)
