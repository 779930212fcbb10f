"""Deduplicate, then split into train / held-out test, stratified on the diagnosis."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split


def _feature_key(df: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """One hashable key per row over the feature columns (NaN-safe)."""
    return pd.util.hash_pandas_object(df[list(columns)].astype(str), index=False)


def dedupe(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Drop rows whose feature columns repeat an earlier row (the first one is kept).

    Keyed on the inputs only: two identical patients with different labels (label noise)
    must not land on both sides of the split either.
    """
    key = _feature_key(df, columns)
    return df.loc[~key.duplicated().to_numpy()].reset_index(drop=True)


def split_dataset(
    df: pd.DataFrame,
    feature_columns: Sequence[str],
    target: str,
    test_size: float = 0.2,
    seed: int = 42,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dedupe on `feature_columns`, then a seeded split stratified on `target`.

    Classes too small to appear on both sides (fewer than 2 rows) go to the training side.

    Returns:
        (train, test) frames with fresh indices; no feature row appears in both.
    """
    data = dedupe(df, feature_columns)
    counts = data[target].value_counts()
    small = data[target].isin(counts[counts < 2].index).to_numpy()
    rest = data.loc[~small]
    if len(rest) < 2:
        raise ValueError("too few rows to split into train and test")
    strata = rest[target] if rest[target].nunique() > 1 else None
    n_test = max(round(test_size * len(rest)), rest[target].nunique())
    try:
        train, test = train_test_split(
            rest, test_size=n_test, random_state=seed, stratify=strata, shuffle=True
        )
    except ValueError:  # stratification impossible (too many classes for the test size)
        train, test = train_test_split(rest, test_size=n_test, random_state=seed, shuffle=True)
    train = pd.concat([train, data.loc[small]])
    return train.reset_index(drop=True), test.reset_index(drop=True)


def class_order(codes: Sequence[str], observed: Sequence[str]) -> list[str]:
    """Classes present in the data, in the contract's order (unknown extras sorted at the end)."""
    seen = set(map(str, observed))
    ordered = [c for c in codes if c in seen]
    return ordered + sorted(seen - set(ordered))


def encode_labels(values: Sequence[str], classes: Sequence[str]) -> np.ndarray:
    """Class codes -> integer indices into `classes` (-1 for a code outside them)."""
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(str(v), -1) for v in values], dtype=int)
