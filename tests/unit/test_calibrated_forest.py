"""`Calibrators`: a calibrated CatBoost step's calibrators applied to the classifier's
probabilities (from the NumPy forest, or from CatBoost on one thread) give the step's own
probabilities (binary and multi-class, every method), and calibrators that would not are never
kept."""

from __future__ import annotations

import numpy as np
import pytest
from catboost import CatBoostClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold

from train_pipeline.fast_path.calibrated import Calibrators
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
def test_the_calibrators_on_the_classifiers_scores_equal_the_step(
    n_classes: int, method: str
) -> None:
    step, X = _step(n_classes, method)
    model = step.calibrated_classifiers_[0].estimator
    forest = ObliviousForest.from_model(model)
    assert forest is not None and forest.checked_rows is not None
    calibration = Calibrators.of_step(step)
    assert calibration is not None
    rows = forest.checked_rows
    assert calibration.reproduce(step.predict_proba(rows), forest.predict_proba(rows))
    expected = step.predict_proba(X)
    for scores in (forest.predict_proba(X), model.predict_proba(X, thread_count=1)):
        got = calibration.apply(scores)
        assert got.shape == (len(X), n_classes)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    one = calibration.apply(forest.predict_proba(X[:1]))
    np.testing.assert_allclose(one, expected[:1], rtol=0, atol=1e-12)
    assert not np.allclose(expected, forest.predict_proba(X), atol=1e-3)  # calibration acted


def test_calibrators_on_another_models_scores_do_not_reproduce_the_step() -> None:
    """Scores of another model (fewer trees): the check fails, the step itself serves."""
    step, X = _step(3, "temperature")
    fitted = step.calibrated_classifiers_[0].estimator
    other = CatBoostClassifier(iterations=5, depth=4, verbose=0, thread_count=1, random_seed=1)
    other.fit(X, fitted.predict(X).ravel())
    calibration = Calibrators.of_step(step)
    assert calibration is not None
    expected = step.predict_proba(X)
    assert calibration.reproduce(expected, fitted.predict_proba(X))
    assert not calibration.reproduce(expected, other.predict_proba(X))
