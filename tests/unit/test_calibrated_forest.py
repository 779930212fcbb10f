"""`CalibratedForest`: a calibrated CatBoost step's calibrators on the NumPy forest give the
step's own probabilities (binary and multi-class, every method), and a scorer that would not
is never built."""

from __future__ import annotations

import numpy as np
import pytest
from catboost import CatBoostClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold

from train_pipeline.fast_path.calibrated import CalibratedForest
from train_pipeline.fast_path.forest import ObliviousForest


def _data(n_classes: int, n: int = 600, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    X[rng.random((n, 5)) < 0.05] = np.nan  # missing values reach the forest too
    score = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1]) + rng.normal(0, 0.7, n)
    cuts = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    labels = np.array(["low", "mid", "high", "top"])[:n_classes]
    return X, labels[np.searchsorted(cuts, score)]


def _step(n_classes: int, method: str) -> tuple[CalibratedClassifierCV, np.ndarray]:
    X, y = _data(n_classes)
    model = CatBoostClassifier(iterations=30, depth=4, verbose=0, thread_count=1, random_seed=1)
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    step = CalibratedClassifierCV(model, method=method, cv=cv, ensemble=False).fit(X, y)
    return step, X


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("method", ["sigmoid", "isotonic", "temperature"])
def test_the_forest_through_the_calibrators_equals_the_step(n_classes: int, method: str) -> None:
    step, X = _step(n_classes, method)
    forest = ObliviousForest.from_model(step.calibrated_classifiers_[0].estimator)
    assert forest is not None and forest.checked_rows is not None
    scorer = CalibratedForest.from_step(step, forest, forest.checked_rows)
    assert scorer is not None
    expected = step.predict_proba(X)
    got = scorer.predict_proba(X)
    assert got.shape == (len(X), n_classes)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(scorer.predict_proba(X[:1]), expected[:1], rtol=0, atol=1e-12)
    uncalibrated = forest.predict_proba(X)
    assert not np.allclose(got, uncalibrated, atol=1e-3)  # the calibrators did something


def test_calibrators_the_forest_cannot_reproduce_are_refused() -> None:
    """A forest of another model (fewer trees) fails the check: no scorer, the step serves."""
    step, X = _step(3, "temperature")
    fitted = step.calibrated_classifiers_[0].estimator
    other = CatBoostClassifier(iterations=5, depth=4, verbose=0, thread_count=1, random_seed=1)
    other.fit(X, fitted.predict(X).ravel())
    forest = ObliviousForest.from_model(other)
    assert forest is not None and forest.checked_rows is not None
    assert CalibratedForest.from_step(step, forest, forest.checked_rows) is None
