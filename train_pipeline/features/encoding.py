"""CatBoost-style ordered target statistics for multi-class targets (pure NumPy at transform).

Each categorical column becomes K columns (one per class): the smoothed frequency of that class
among training rows with the same category, ``(count_k + a * prior_k) / (count + a)``.
`fit_transform` computes it from the rows *before* each row in a seeded permutation (CatBoost's
ordered statistics, so a row never sees its own label); `transform` uses the full statistics.
Unseen or missing categories get the prior.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data


class TargetEncoder(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Ordered multi-class target encoder for float-coded categorical columns.

    Args:
        categorical: indices of the categorical columns; ``None`` means every column.
        prior_weight: the smoothing weight ``a`` given to the class prior.
        random_state: seed of the permutation used by `fit_transform`.

    Output columns: the non-categorical columns in their original order, then K columns per
    categorical column (``<col>__te_<class>``).
    """

    def __init__(
        self,
        categorical: tuple[int, ...] | None = None,
        prior_weight: float = 1.0,
        random_state: int | None = 0,
    ) -> None:
        self.categorical = categorical
        self.prior_weight = prior_weight
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any) -> TargetEncoder:
        """Learn the class prior and per-category class counts."""
        X, y = validate_data(self, X, y, dtype=float, ensure_all_finite="allow-nan")
        self._fit_counts(X, y)
        return self

    def _fit_counts(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.prior_weight <= 0:
            raise ValueError("prior_weight must be > 0")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        n_classes = len(self.classes_)
        onehot = np.eye(n_classes)[y_idx]
        self.prior_ = onehot.mean(axis=0)
        cats = range(X.shape[1]) if self.categorical is None else self.categorical
        self.categorical_ = np.array(sorted(cats), dtype=int)
        if np.any(self.categorical_ >= X.shape[1]) or np.any(self.categorical_ < 0):
            raise ValueError("categorical index out of range")
        self.passthrough_ = np.setdiff1d(np.arange(X.shape[1]), self.categorical_)
        self.values_: list[np.ndarray] = []
        self.encodings_: list[np.ndarray] = []
        a = self.prior_weight
        for j in self.categorical_:
            col = X[:, j]
            seen = ~np.isnan(col)
            values, inverse = np.unique(col[seen], return_inverse=True)
            counts = np.zeros((len(values), n_classes))
            np.add.at(counts, inverse, onehot[seen])
            totals = counts.sum(axis=1, keepdims=True)
            self.values_.append(values)
            self.encodings_.append((counts + a * self.prior_) / (totals + a))
        return onehot

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """Fit, then encode the training rows with ordered (leave-future-out) statistics."""
        if y is None:
            raise ValueError("TargetEncoder requires y")
        X, y = validate_data(self, X, y, dtype=float, ensure_all_finite="allow-nan")
        onehot = self._fit_counts(X, y)
        perm = check_random_state(self.random_state).permutation(X.shape[0])
        blocks = [X[:, self.passthrough_]]
        for j in self.categorical_:
            blocks.append(self._ordered(X[:, j], onehot, perm))
        return np.hstack(blocks)

    def _ordered(self, col: np.ndarray, onehot: np.ndarray, perm: np.ndarray) -> np.ndarray:
        """Class counts of the same category among rows earlier in `perm`, smoothed."""
        n, _k = onehot.shape
        out = np.tile(self.prior_, (n, 1))
        col_p = col[perm]
        seen = np.flatnonzero(~np.isnan(col_p))
        if seen.size == 0:
            return out
        # group rows of one category together, keeping permutation order inside each group
        order = seen[np.argsort(col_p[seen], kind="stable")]
        y_sorted = onehot[perm][order]
        cum = np.cumsum(y_sorted, axis=0) - y_sorted  # counts before each row, all groups
        keys = col_p[order]
        starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1]
        group_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(keys)]))
        before = cum - cum[starts][group_of]
        totals = before.sum(axis=1, keepdims=True)
        enc = (before + self.prior_weight * self.prior_) / (totals + self.prior_weight)
        out[perm[order]] = enc
        return out

    def transform(self, X: Any) -> np.ndarray:
        """Encode with the full training statistics (unseen / missing -> prior)."""
        check_is_fitted(self, "encodings_")
        X = validate_data(self, X, dtype=float, ensure_all_finite="allow-nan", reset=False)
        return self.transform_array(X)

    def transform_array(self, X: np.ndarray) -> np.ndarray:
        """The NumPy core without validation (the fast path calls this)."""
        blocks = [X[:, self.passthrough_]]
        for j, values, enc in zip(self.categorical_, self.values_, self.encodings_, strict=True):
            col = X[:, j]
            pos = np.searchsorted(values, col)
            pos_ok = np.minimum(pos, max(len(values) - 1, 0))
            hit = (
                (pos < len(values)) & (values[pos_ok] == col)
                if len(values)
                else (np.zeros(len(col), dtype=bool))
            )
            block = np.tile(self.prior_, (len(col), 1))
            if hit.any():
                block[hit] = enc[pos_ok[hit]]
            blocks.append(block)
        return np.hstack(blocks)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        check_is_fitted(self, "encodings_")
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", None)
        if input_features is None:
            input_features = [f"x{i}" for i in range(self.n_features_in_)]
        names = np.asarray(input_features, dtype=object)
        out = list(names[self.passthrough_])
        for j in self.categorical_:
            out += [f"{names[j]}__te_{c}" for c in self.classes_]
        return np.asarray(out, dtype=object)

    def output_sources(self) -> list[int]:
        """For each output column, the index of the input column it comes from."""
        check_is_fitted(self, "encodings_")
        src = list(self.passthrough_)
        for j in self.categorical_:
            src += [int(j)] * len(self.classes_)
        return [int(s) for s in src]
