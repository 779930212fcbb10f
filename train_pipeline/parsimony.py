"""Model selection on small training splits: repeated cross-validation and the one-standard-error
rule.

On a few hundred rows one 3-fold CV ranks the families by noise as much as by skill: on
hepatitis (124 training rows) the fold scores of CatBoost spread by ±0.08 macro-F1, and one
split put CatBoost 0.761 ahead of logistic regression, which scored better on the held-out rows.
Two classical remedies (Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*,
2nd ed., §7.10; Kuhn & Johnson, *Applied Predictive Modeling*, §4.6):

- a split under `SMALL_SPLIT_ROWS` rows is cross-validated `REPEATS` times, each repeat a new
  stratified partition (repeat 0 is the partition a single CV would use), so each score is the
  mean of ``folds x REPEATS`` fold scores;
- the **one-standard-error rule**: the simplest family (`SIMPLICITY`, logistic regression first)
  whose mean CV score is within one standard error of the best one's wins. The standard error is
  the spread of the best family's fold scores over the square root of their number (fold scores
  of repeated CV share rows, so it is, if anything, too small: the rule errs towards the best
  mean, never away from it). Within logistic regression the same rule picks the strongest
  regularisation (smallest C) whose score is within one standard error of the family's best
  (glmnet's ``lambda.1se``); a booster's parameters have no such single order, so its best
  trial stands.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

SMALL_SPLIT_ROWS = 1000
"""Training splits with fewer rows are cross-validated `REPEATS` times (heart, hepatitis, Pima,
cirrhosis, dermatology, drug200, CKD: 120-620 rows; stroke's 4,088 and the ED cohort are not)."""
REPEATS = 5
SIMPLICITY: tuple[str, ...] = ("logreg", "catboost", "xgboost")
"""Families from the simplest: a linear model before the boosters (CatBoost, with its ordered
boosting and symmetric trees, before XGBoost)."""


def repeats_for(n_rows: int) -> int:
    """How many CV partitions a search on ``n_rows`` rows averages over."""
    return REPEATS if n_rows < SMALL_SPLIT_ROWS else 1


def cv_splits(
    y: np.ndarray, folds: int, seed: int, repeats: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``repeats`` stratified ``folds``-fold partitions of the rows of ``y``, repeat r shuffled
    with ``seed + r`` (repeat 0 is the single CV's partition); folds in partition order."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    dummy = np.zeros(len(y))
    for r in range(repeats):
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed + r)
        out += list(cv.split(dummy, y))
    return out


def standard_error(scores: Sequence[float]) -> float:
    """Standard error of a mean CV score: sample std of the fold scores / sqrt(their number)."""
    s = np.asarray(scores, dtype=float)
    return float(s.std(ddof=1) / np.sqrt(len(s))) if len(s) > 1 else 0.0


def one_standard_error(candidates: Sequence[Any]) -> tuple[str, str | None]:
    """The family the one-standard-error rule picks among ``candidates`` (each with
    ``family``, ``cv_mean``, ``cv_se``, finite scores only): (family, reason) where reason is
    None when the best mean wins, else why a simpler family was preferred."""
    best = max(candidates, key=lambda c: c.cv_mean)
    bar = best.cv_mean - best.cv_se
    rank = {f: i for i, f in enumerate(SIMPLICITY)}
    simpler = sorted(
        (c for c in candidates if rank.get(c.family, 99) < rank.get(best.family, 99)),
        key=lambda c: rank.get(c.family, 99),
    )
    for c in simpler:
        if c.cv_mean >= bar:
            return c.family, (
                f"{c.family} chosen by the one-standard-error rule: its CV score "
                f"{c.cv_mean:.4f} is within one standard error ({best.cv_se:.4f}) of the best, "
                f"{best.family} {best.cv_mean:.4f}, and it is the simpler family"
            )
    return best.family, None


def simplest_trial(family: str, complete: Sequence[Any]) -> Any:
    """The trial a family reports among its ``complete`` Optuna trials (``value``,
    ``params``, ``user_attrs["cv_se"]``): the best, or for logistic regression the one with the
    smallest C within one standard error of the best."""
    best = max(complete, key=lambda t: t.value)
    if family != "logreg":
        return best
    bar = best.value - float(best.user_attrs.get("cv_se", 0.0))
    return min((t for t in complete if t.value >= bar), key=lambda t: t.params.get("C", np.inf))
