"""Model selection on small training splits (issue 14): repeated stratified CV and the
one-standard-error rule that prefers the simpler family when the evidence does not separate it
from the best."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from train_pipeline.parsimony import (
    REPEATS,
    SMALL_SPLIT_ROWS,
    cv_splits,
    one_standard_error,
    repeats_for,
    simplest_trial,
    standard_error,
)
from train_pipeline.search_space import LOGREG_C_GRID, grid


@dataclass(frozen=True)
class Candidate:
    family: str
    cv_mean: float
    cv_se: float


def test_the_simpler_family_wins_within_one_standard_error_of_the_best() -> None:
    """Hepatitis' case: CatBoost 0.741 ± 0.020, logistic regression 0.722 (0.019 behind)."""
    found = [
        Candidate("catboost", 0.741, 0.020),
        Candidate("logreg", 0.722, 0.012),
        Candidate("xgboost", 0.670, 0.025),
    ]
    family, reason = one_standard_error(found)
    assert family == "logreg"
    assert reason is not None and "one-standard-error rule" in reason and "catboost" in reason


def test_the_best_wins_when_the_simpler_family_is_more_than_one_standard_error_behind() -> None:
    found = [Candidate("catboost", 0.741, 0.010), Candidate("logreg", 0.722, 0.012)]
    assert one_standard_error(found) == ("catboost", None)


def test_the_rule_never_prefers_a_more_complex_family() -> None:
    """The best is the simplest already: a booster within one standard error does not win."""
    found = [Candidate("logreg", 0.80, 0.05), Candidate("catboost", 0.79, 0.01)]
    assert one_standard_error(found) == ("logreg", None)
    # between boosters, CatBoost is the simpler (SIMPLICITY order)
    boosters = [Candidate("xgboost", 0.80, 0.02), Candidate("catboost", 0.79, 0.01)]
    assert one_standard_error(boosters)[0] == "catboost"


def test_the_standard_error_is_the_spread_of_the_fold_scores_over_root_n() -> None:
    scores = [0.70, 0.74, 0.78, 0.72]
    assert standard_error(scores) == pytest.approx(np.std(scores, ddof=1) / 2)
    assert standard_error([0.7]) == 0.0


def test_small_splits_are_cross_validated_on_several_partitions() -> None:
    assert repeats_for(SMALL_SPLIT_ROWS - 1) == REPEATS > 1
    assert repeats_for(SMALL_SPLIT_ROWS) == 1
    y = np.array([0] * 40 + [1] * 20)
    splits = cv_splits(y, 3, seed=7, repeats=REPEATS)
    assert len(splits) == 3 * REPEATS
    for r in range(REPEATS):  # each repeat is a stratified partition of every row
        part = splits[3 * r : 3 * r + 3]
        held = np.sort(np.concatenate([val for _, val in part]))
        np.testing.assert_array_equal(held, np.arange(len(y)))
        for _, val in part:  # 40 / 3 and 20 / 3 rows of each class
            assert np.bincount(y[val])[0] in (13, 14) and np.bincount(y[val])[1] in (6, 7)
    # repeat 0 is the single CV's partition; the next ones are different partitions
    single = list(StratifiedKFold(3, shuffle=True, random_state=7).split(np.zeros(60), y))
    for (_, ours), (_, theirs) in zip(splits[:3], single, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert not all(np.array_equal(splits[i][1], splits[3 + i][1]) for i in range(3))


@dataclass(frozen=True)
class Trial:
    value: float
    params: dict[str, float]
    user_attrs: dict[str, float]


def test_logistic_regression_takes_the_strongest_regularisation_within_one_se() -> None:
    """Cirrhosis' repeated CV: C 0.3 is best (0.443 ± 0.010); C 0.1 (0.433) is within one
    standard error and regularises more, C 0.03 (0.396) is not."""
    trials = [
        Trial(0.419, {"C": 1.0}, {"cv_se": 0.010}),
        Trial(0.396, {"C": 0.03}, {"cv_se": 0.011}),
        Trial(0.433, {"C": 0.1}, {"cv_se": 0.012}),
        Trial(0.443, {"C": 0.3}, {"cv_se": 0.010}),
    ]
    assert simplest_trial("logreg", trials).params == {"C": 0.1}
    # a booster's best trial stands
    assert simplest_trial("catboost", trials).params == {"C": 0.3}
    # no standard error (one fold score): the best
    alone = [Trial(t.value, t.params, {"cv_se": 0.0}) for t in trials]
    assert simplest_trial("logreg", alone).params == {"C": 0.3}


def test_logistic_regression_searches_a_grid_of_c_and_the_boosters_do_not() -> None:
    assert [p["C"] for p in grid("logreg")] == list(LOGREG_C_GRID)
    assert 1.0 not in LOGREG_C_GRID  # C = 1 is the defaults' trial, run first
    assert grid("catboost") == grid("xgboost") == []
