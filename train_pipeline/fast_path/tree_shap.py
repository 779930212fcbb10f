"""Exact path-dependent TreeSHAP for CatBoost's oblivious trees, precomputed for fast rows.

CatBoost's own ``ShapValues`` walks every tree for every row (about 5-10 ms for one patient on
300 trees of depth 6 with 13 classes). An oblivious tree of depth D has the same split on each
level, so the path-dependent expectation of the tree given any set of known levels only depends
on the row's D split bits: for every tree we precompute the 3^D expectations (each level known
as 0, known as 1, or unknown) once per model, and a row's SHAP values become a table look-up per
(tree, coalition of the tree's features) followed by a fixed Shapley-weight product.

Definitions match CatBoost's ``ShapValues`` (checked to 1e-9 by the tests): players are the
features (a feature split on at several levels is one player), covers are the training leaf
weights, and the last split of a tree is its root.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial
from typing import Any

import numpy as np

from train_pipeline.fast_path.forest import catboost_spec


@dataclass(frozen=True)
class _DepthGroup:
    """All trees of one depth D, their players padded to D."""

    features: np.ndarray  # (T, D) feature index of each level
    borders: np.ndarray  # (T, D) float32 borders
    player_feature: np.ndarray  # (T * D,) feature of each player, n_features for padding
    phi: np.ndarray  # (T, 2^D, D * K): SHAP of each player for each pattern of split bits
    base: np.ndarray  # (K,) sum over the trees of their expected value


def _shapley_weights(n: int) -> np.ndarray:
    subsets = np.arange(2**n)
    member = (subsets[:, None] >> np.arange(n)) & 1  # (2^n, n)
    size = member.sum(axis=1)
    w = np.zeros((2**n, n))
    for p in range(n):
        with_p = member[:, p] == 1
        k = np.where(with_p, size - 1, size)
        coef = np.array([factorial(int(i)) * factorial(n - int(i) - 1) / factorial(n) for i in k])
        w[:, p] = np.where(with_p, coef, -coef)
    return w


def _expectation_table(values: np.ndarray, weights: np.ndarray, depth: int) -> np.ndarray:
    """(T, 2^D, K) leaf values and (T, 2^D) covers -> (T, 3^D, K) path-dependent expectations.

    Built from the deepest level (bit 0) up to the root (bit D-1): at each level the new
    ternary digit (0, 1, unknown) becomes the most significant one.
    """
    n_trees, _, k = values.shape
    g = values[:, :, None, :]  # (T, prefixes = 2^D, codes = 1, K)
    cover = weights.astype(float)  # (T, 2^D) cover per prefix
    for level in range(depth):
        n_prefix = 2 ** (depth - 1 - level)
        child = g.reshape(n_trees, n_prefix, 2, -1, k)
        c = cover.reshape(n_trees, n_prefix, 2)
        total = c.sum(axis=2, keepdims=True)
        frac = np.divide(c, total, out=np.full_like(c, 0.5), where=total > 0)
        unknown = (frac[..., None, None] * child).sum(axis=2)
        g = np.concatenate([child[:, :, 0], child[:, :, 1], unknown], axis=2)
        g = g.reshape(n_trees, n_prefix, -1, k)
        cover = total[..., 0]
    return np.ascontiguousarray(g[:, 0])


def _pattern_shap(
    table: np.ndarray, coalition: np.ndarray, weights: np.ndarray, chunk: int = 16
) -> np.ndarray:
    """(T, 2^D, D, K): each tree's SHAP values for every pattern of its D split bits.

    A row only reaches a tree through those bits, so this is every answer the tree can give.
    """
    n_trees, _, k = table.shape
    depth = coalition.shape[2]
    patterns = (np.arange(2**depth)[:, None] >> np.arange(depth)) & 1  # (2^D, D) bits
    powers = 3 ** np.arange(depth)
    out = np.empty((n_trees, 2**depth, depth, k))
    for start in range(0, n_trees, chunk):  # bounded temporaries
        c = coalition[start : start + chunk]  # (t, 2^D coalitions, D levels)
        digits = np.where(c[:, None], patterns[None, :, None, :], 2)  # (t, pat, coal, D)
        v = np.take_along_axis(
            table[start : start + chunk, None], (digits @ powers)[..., None], axis=2
        )  # (t, pat, coal, K)
        out[start : start + chunk] = np.einsum("tpsk,sq->tpqk", v, weights)
    return out


class ObliviousTreeShap:
    """SHAP values of a fitted CatBoost model from precomputed per-tree tables."""

    def __init__(self, model: Any) -> None:
        spec = catboost_spec(model)
        scale, bias = spec.get("scale_and_bias", [1.0, [0.0]])
        self.scale = float(scale)
        self.bias = np.atleast_1d(np.asarray(bias, dtype=float))
        self.n_features = len(spec["features_info"]["float_features"])
        trees = spec["oblivious_trees"]
        self.n_dims = len(trees[0]["leaf_values"]) // 2 ** len(trees[0]["splits"])
        self.groups = [
            self._group(d, [t for t in trees if len(t["splits"]) == d])
            for d in sorted({len(t["splits"]) for t in trees})
        ]

    def _group(self, depth: int, trees: list[dict[str, Any]]) -> _DepthGroup:
        if any(
            s.get("split_type", "FloatFeature") != "FloatFeature"
            for t in trees
            for s in t["splits"]
        ):
            raise ValueError("only float-feature splits are supported")
        n, k = len(trees), self.n_dims
        values = np.array([t["leaf_values"] for t in trees], dtype=float).reshape(n, 2**depth, k)
        covers = np.array([t["leaf_weights"] for t in trees], dtype=float)
        features = np.array([[s["float_feature_index"] for s in t["splits"]] for t in trees])
        borders = np.array([[s["border"] for s in t["splits"]] for t in trees], np.float32)
        player_feature = np.full((n, depth), -1)
        coalition = np.zeros((n, 2**depth, depth), dtype=bool)
        member = (np.arange(2**depth)[:, None] >> np.arange(depth)) & 1  # (2^D, players)
        for i in range(n):
            players = list(dict.fromkeys(features[i].tolist()))
            player_feature[i, : len(players)] = players
            level_player = np.array([players.index(f) for f in features[i]])
            coalition[i] = member[:, level_player].astype(bool)  # level known if its player is
        table = _expectation_table(values, covers, depth)  # (T, 3^D, K)
        phi = _pattern_shap(table, coalition, _shapley_weights(depth))
        player_feature[player_feature < 0] = self.n_features
        return _DepthGroup(
            features=features,
            borders=borders,
            player_feature=player_feature.ravel(),
            phi=phi.reshape(n, 2**depth, depth * k),
            base=table[:, -1].sum(axis=0),
        )

    def shap_values(self, X: np.ndarray) -> np.ndarray:
        """(n, K, F + 1) like CatBoost's ``ShapValues`` (last column: expected value)."""
        X32 = np.asarray(X, dtype=np.float32)
        n, k = X32.shape[0], self.n_dims
        out = np.zeros((n, k, self.n_features + 1))
        base = self.bias.copy() * np.ones(k)
        for g in self.groups:
            n_trees, depth = g.features.shape
            bits = X32[:, g.features] > g.borders  # (n, T, D)
            pattern = bits.astype(np.int64) @ (1 << np.arange(depth))  # (n, T)
            contrib = g.phi[np.arange(n_trees)[None, :], pattern]  # (n, T, D * K)
            contrib = contrib.reshape(n, n_trees * depth, k)
            for row in range(n):
                for dim in range(k):
                    out[row, dim] += np.bincount(
                        g.player_feature,
                        weights=contrib[row, :, dim],
                        minlength=self.n_features + 1,
                    )
            base += self.scale * g.base
        out *= self.scale
        out[:, :, -1] = base
        return out
