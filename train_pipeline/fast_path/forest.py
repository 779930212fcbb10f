"""CatBoost's oblivious trees evaluated with NumPy: the serving fast path's booster.

CatBoost's ``predict_proba`` spends most of a one-row call building its input pool (about 250 µs
of a ~300 µs call on this machine, py-spy); the trees themselves are a few array look-ups. An
oblivious tree of depth D applies the same split on every level, so a row's leaf is the D-bit
number of its split outcomes, and the model's raw score is the sum of the chosen leaves:

    bits  = float32(X)[:, feature] > border          (n, T, D)   CatBoost compares in float32
    leaf  = bits @ (1, 2, 4, ...)                    (n, T)      level d is bit d
    raw   = scale * sum_t values[t, leaf] + bias     (n, K)      trees summed in model order
    proba = softmax(raw) (MultiClass) | sigmoid (Logloss)

The trees are read from CatBoost's own JSON export. `ObliviousForest.from_model` checks the
result against ``model.predict_proba`` on given rows and refuses the model (returns None) when
any probability differs by more than `TOLERANCE` or the loss is one it does not know; the caller
then keeps CatBoost. Measured differences are a few ulps (the exponential's last bits).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import orjson

try:  # the C++ kernel behind `csr_matrix @ dense`, without building a matrix object per call
    from scipy.sparse._sparsetools import csr_matvecs
except ImportError:  # pragma: no cover - a SciPy without it: NumPy gather below
    csr_matvecs = None

TOLERANCE = 1e-12
"""Largest accepted |probability difference| against CatBoost at build time."""
CHUNK_ROWS = 256
"""Rows gathered at once: bounds the (rows, trees, classes) temporary to a few MB."""
LOSSES = ("MultiClass", "Logloss")


def catboost_spec(model: Any) -> dict[str, Any]:
    """A fitted CatBoost model's JSON export (trees, borders, leaf values, scale and bias)."""
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        model.save_model(path, format="json")
        with open(path, "rb") as fh:
            spec: dict[str, Any] = orjson.loads(fh.read())  # 7 MB for 300 trees: 4x json
    finally:
        os.unlink(path)
    return spec


def loss_name(spec: dict[str, Any]) -> str:
    loss = spec.get("model_info", {}).get("params", {}).get("loss_function", {})
    return str(loss.get("type", "")) if isinstance(loss, dict) else str(loss)


def boundary_rows(spec: dict[str, Any], n: int = 256, seed: int = 0) -> np.ndarray:
    """(n, F) rows whose every value sits on, just above or just below one of its feature's
    borders (in float32, CatBoost's precision), or is missing: the inputs where an evaluator
    that compares differently from CatBoost would choose another leaf."""
    rng = np.random.default_rng(seed)
    floats = spec["features_info"]["float_features"]
    n_features = 1 + max(int(f["flat_feature_index"]) for f in floats)
    X = np.zeros((n, n_features))
    for f in floats:
        b = np.asarray(f.get("borders") or [0.0], dtype=np.float32)
        with np.errstate(over="ignore"):  # a border at float32's largest value steps to inf
            up, down = np.nextafter(b, np.float32(np.inf)), np.nextafter(b, np.float32(-np.inf))
        candidates = np.concatenate((b, up, down, [np.nan], b[:1] - 1, b[-1:] + 1)).astype(float)
        X[:, int(f["flat_feature_index"])] = rng.choice(candidates, size=n)
    return X


MAX_DEPTH = 8
"""Trees up to this depth are evaluated here (a row's split bits fill one 8-byte word)."""
PACK = np.uint64(0x0102040810204080)
"""Multiplying eight 0/1 bytes (little-endian) by this moves byte i's bit to bit 56 + i."""


class ObliviousForest:
    """Exact-to-`TOLERANCE` NumPy evaluation of a CatBoost model on float inputs.

    Every tree is padded to `MAX_DEPTH` levels with a split no value passes (border +inf), so a
    row's split outcomes for one tree are eight bytes, read as one uint64 and packed into the
    leaf number with one multiplication; the chosen leaves are then added in tree order.

    Attributes:
        checked_rows: the rows `from_model` compared with CatBoost (None: built directly), which
            a calibrated step's check reads too (`FastPipeline._holds`).
    """

    checked_rows: np.ndarray | None = None

    def __init__(self, spec: dict[str, Any]) -> None:
        self.loss = loss_name(spec)
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r} is not evaluated in NumPy")
        if spec.get("features_info", {}).get("categorical_features"):
            raise ValueError("categorical features are not evaluated in NumPy")
        trees = spec["oblivious_trees"]
        splits = [s for t in trees for s in t["splits"]]
        if any(s.get("split_type", "FloatFeature") != "FloatFeature" for s in splits):
            raise ValueError("only float-feature splits are evaluated in NumPy")
        if any(len(t["splits"]) > MAX_DEPTH for t in trees):
            raise ValueError(f"trees deeper than {MAX_DEPTH} are not evaluated in NumPy")
        scale, bias = spec.get("scale_and_bias", [1.0, [0.0]])
        self.scale = float(scale)
        self.bias = np.atleast_1d(np.asarray(bias, dtype=float))
        floats = spec["features_info"]["float_features"]
        # nan_value_treatment AsTrue: a missing value goes right of every split (Min/AsIs: left).
        self._nan_high = [
            int(f["flat_feature_index"]) for f in floats if f.get("nan_value_treatment") == "AsTrue"
        ]
        leaves = [2 ** len(t["splits"]) for t in trees]
        self.n_trees = len(trees)
        self.n_dims = len(trees[0]["leaf_values"]) // leaves[0]
        pad = [{"float_feature_index": 0, "border": np.inf}]
        levels = [t["splits"] + pad * (MAX_DEPTH - len(t["splits"])) for t in trees]
        self._features = np.array(
            [s["float_feature_index"] for lv in levels for s in lv], dtype=np.intp
        )  # (T * 8,)
        self._borders = np.array([s["border"] for lv in levels for s in lv], dtype=np.float32)
        self._values = np.concatenate(
            [np.asarray(t["leaf_values"], dtype=float) for t in trees]
        ).reshape(-1, self.n_dims)  # (sum of leaves, K), tree-major
        self._offsets = np.concatenate(([0], np.cumsum(leaves)[:-1])).astype(np.int64)

    @classmethod
    def from_model(cls, model: Any, check_rows: np.ndarray | None = None) -> ObliviousForest | None:
        """The model's forest if it reproduces ``model.predict_proba`` on `boundary_rows` (and
        on ``check_rows`` if given) to `TOLERANCE`, else None: the caller keeps CatBoost."""
        try:
            spec = catboost_spec(model)
            forest = cls(spec)
        except (ValueError, KeyError, IndexError, TypeError):
            return None
        rows = boundary_rows(spec)
        if check_rows is not None:
            rows = np.vstack((rows, np.asarray(check_rows, dtype=float)))
        expected = np.asarray(model.predict_proba(rows, thread_count=1))
        got = forest.predict_proba(rows)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=TOLERANCE):
            return None
        forest.checked_rows = rows
        return forest

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """(n, T) index of each row's leaf in each tree, into the flat leaf-value table."""
        X32 = np.asarray(X, dtype=np.float32)
        if self._nan_high:
            X32 = X32.copy()
            cols = X32[:, self._nan_high]
            X32[:, self._nan_high] = np.where(np.isnan(cols), np.inf, cols)
        bits = np.take(X32, self._features, axis=1) > self._borders  # (n, T * 8) bool bytes
        words = bits.view(np.uint64)  # (n, T): one little-endian word of 0/1 bytes per tree
        return ((words * PACK) >> np.uint64(56)).astype(np.int64) + self._offsets

    def raw(self, X: np.ndarray) -> np.ndarray:
        """(n, K) raw scores (CatBoost's ``RawFormulaVal``), trees added in model order."""
        leaf = self.leaves(X)
        n, k, t = leaf.shape[0], self.n_dims, self.n_trees
        out = np.zeros((n, k))
        if csr_matvecs is not None:
            # A one-hot (n, leaves) CSR matrix times the leaf values: each row's leaves are
            # added in tree order, like CatBoost, without a (n, T, K) temporary.
            csr_matvecs(
                n,
                self._values.shape[0],
                k,
                np.arange(0, n * t + 1, t, dtype=np.int64),
                leaf.ravel(),
                np.ones(n * t),
                self._values.ravel(),
                out.ravel(),
            )
        else:
            for start in range(0, n, CHUNK_ROWS):
                # summing axis 1 of a C-ordered (rows, T, K) array adds the trees in order
                out[start : start + CHUNK_ROWS] = self._values[
                    leaf[start : start + CHUNK_ROWS]
                ].sum(axis=1)
        if self.scale != 1.0:
            out *= self.scale
        if self.bias.any():
            out += self.bias
        return out

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, K) probabilities like CatBoost's ``predict_proba`` (binary: two columns)."""
        raw = self.raw(X)
        if self.loss == "Logloss":
            p = 1.0 / (1.0 + np.exp(-raw[:, 0]))
            return np.column_stack((1.0 - p, p))
        raw -= raw.max(axis=1, keepdims=True)
        np.exp(raw, out=raw)
        raw /= raw.sum(axis=1, keepdims=True)
        return raw
