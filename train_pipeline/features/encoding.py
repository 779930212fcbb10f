"""CatBoost-style ordered target statistics for multi-class targets (pure NumPy at transform).

Each categorical column becomes K columns (one per class): the smoothed frequency of that class
among training rows with the same category, ``(count_k + a * prior_k) / (count + a)``.
`fit_transform` computes it from the rows *before* each row in a seeded permutation (CatBoost's
ordered statistics, so a row never sees its own label); `transform` uses the full statistics.
Unseen or missing categories get the prior.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

P = TypeVar("P")


class ServingPlanMixin:
    """For transformers that unpack their fitted state into a plan for fast transforms.

    The plan is built on first use (or by ``fit``, ``rebuild=True``), kept on the instance and
    never pickled: pickles hold the fitted attributes only, so old and new pickles load alike.
    """

    def _serving_plan(self, build: Callable[[Any], P], *, rebuild: bool = False) -> P:
        plan: P | None = None if rebuild else self.__dict__.get("_serving_cache")
        if plan is None:
            plan = self.__dict__["_serving_cache"] = build(self)
        return plan

    def __getstate__(self) -> dict[str, Any]:
        state = dict(cast(dict[str, Any], super().__getstate__()))
        state.pop("_serving_cache", None)
        return state


class TargetEncoder(ServingPlanMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
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
        self._serving_plan(_Lookup, rebuild=True)  # so transform leaves __dict__ alone
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
        """The NumPy core without validation (the fast path calls this).

        One table holds the prior (row 0) and every category's encoding: each categorical cell
        becomes a row number, and one gather fills all the encoded columns.
        """
        lookup = self._serving_plan(_Lookup)
        n = X.shape[0]
        out = np.empty((n, lookup.width))
        out[:, : len(self.passthrough_)] = X.take(self.passthrough_, axis=1)
        out[:, len(self.passthrough_) :] = lookup.table[lookup.rows(X)].reshape(n, -1)
        return out

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


class _Lookup:
    """A fitted `TargetEncoder`'s statistics as one gather table.

    ``table``: the prior, then each categorical column's encodings. Per categorical column:
    its input index, its sorted values followed by NaN (a search past the end lands on a value
    equal to nothing), and the table row of each value (for a few rows, a dict lookup per cell
    is cheaper than the searches; a float key finds exactly the values ``==`` finds).
    """

    SMALL = 8
    """Up to this many rows, look values up in dicts."""

    def __init__(self, encoder: TargetEncoder) -> None:
        k = len(encoder.prior_)
        self.table = np.vstack([encoder.prior_[None, :], *encoder.encodings_])
        self.width = len(encoder.passthrough_) + len(encoder.categorical_) * k
        self.columns: list[tuple[int, np.ndarray, int]] = []
        self.rows_of: list[dict[float, int]] = []
        first = 1
        for j, values in zip(encoder.categorical_, encoder.values_, strict=True):
            self.columns.append((int(j), np.append(values, np.nan), first))
            self.rows_of.append({v: first + i for i, v in enumerate(values.tolist())})
            first += len(values)
        self.categorical = np.asarray(encoder.categorical_, dtype=np.intp)

    def rows(self, X: np.ndarray) -> np.ndarray:
        """(n, categorical) table row of every categorical cell (0, the prior: unseen/missing)."""
        if X.shape[0] <= self.SMALL:
            cells = X.take(self.categorical, axis=1).tolist()
            return np.array(
                [[m.get(v, 0) for m, v in zip(self.rows_of, row, strict=True)] for row in cells],
                dtype=np.intp,
            ).reshape(X.shape[0], len(self.columns))
        rows = np.zeros((X.shape[0], len(self.columns)), dtype=np.intp)
        for c, (j, values, first) in enumerate(self.columns):
            if len(values) > 1:
                col = X[:, j]
                pos = np.searchsorted(values, col)
                rows[:, c] = np.where(values[pos] == col, pos + first, 0)
        return rows
