"""Calibration of the diagnosis model (issue 14 part 3): the method is chosen on out-of-fold
probabilities and applied only when it lowers the calibration error without costing the
primary metric; the calibrated step weights the classifier, never the calibrators; the serving
fast path scores a calibrated pipeline exactly as the pipeline does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from train_pipeline import evaluate as ev
from train_pipeline.calibration import choose_calibration, cross_fitted
from train_pipeline.contract import ED_COHORT
from train_pipeline.data.generate import generate_cohort
from train_pipeline.fast_path.pipeline import FastPipeline
from train_pipeline.fitting import FitOptions, fit_diagnosis
from train_pipeline.models.calibrated import base_model, calibrated
from train_pipeline.models.linear import ScaledLogisticRegression
from train_pipeline.models.pipeline import class_weights

CLASSES = ["a", "b", "c"]


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from true probabilities, and those probabilities sharpened (power 3):
    the argmax is right, the confidence too high."""
    rng = np.random.default_rng(seed)
    true = rng.dirichlet([1.0, 1.0, 1.0], n)
    y = np.array([rng.choice(3, p=p) for p in true])
    sharp = true**3
    return y, sharp / sharp.sum(axis=1, keepdims=True)


def test_an_overconfident_model_is_calibrated_and_its_error_falls() -> None:
    y, proba = _overconfident(3000, 0)
    choice = choose_calibration(y, proba, CLASSES, "f1_macro", seed=1)
    assert choice.method in ("sigmoid", "isotonic", "temperature")
    assert choice.errors[choice.method] < choice.errors["none"] - 0.02
    assert ev.expected_calibration_error(y, choice.oof_proba) == choice.errors[choice.method]
    assert "lowered the out-of-fold calibration error" in choice.reason()


def test_calibration_that_costs_the_primary_metric_is_not_applied() -> None:
    """Probabilities whose argmax favours the rare class (as class weights make them): sigmoid
    and isotonic calibrators move it back to the frequent class and cost macro-F1, so neither
    is applied; temperature scaling keeps the argmax (the same macro-F1) and may be."""
    rng = np.random.default_rng(3)
    n = 4000
    y = (rng.random(n) < 0.1).astype(int)
    score = np.clip(0.4 + 0.15 * y + rng.normal(0, 0.15, n), 0.01, 0.99)
    proba = np.column_stack([1 - score, score])
    choice = choose_calibration(y, proba, ["neg", "pos"], "f1_macro", seed=0)
    for method in ("sigmoid", "isotonic"):
        assert choice.errors[method] < choice.errors["none"]  # better calibrated ...
        assert choice.scores[method] < choice.scores["none"] - 0.005  # ... at a cost
    assert choice.scores["temperature"] == pytest.approx(choice.scores["none"])
    assert choice.method in (None, "temperature")
    if choice.method is None:
        np.testing.assert_array_equal(choice.oof_proba, proba)
    forced = choose_calibration(y, proba, ["neg", "pos"], "f1_macro", seed=0, forced="sigmoid")
    assert forced.method == "sigmoid"


def test_cross_fitted_rows_are_scored_by_calibrators_that_did_not_see_them() -> None:
    y, proba = _overconfident(600, 2)
    out = cross_fitted(y, proba, "isotonic", seed=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    # in-sample isotonic fits its own rows better than the cross-fit does
    assert not np.allclose(out, cross_fitted(y, proba, "isotonic", seed=1))


def test_class_weights_reach_the_classifier_not_the_calibrators() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    y = (rng.random(n) < 0.1).astype(int)
    X = np.column_stack([y + rng.normal(0, 1.2, n), rng.normal(0, 1, n)])
    step = calibrated(ScaledLogisticRegression(), "sigmoid", folds=3, seed=0).fit(X, y)
    weighted = ScaledLogisticRegression().fit(X, y, sample_weight=class_weights(y))
    # the classifier inside is the class-weighted one, fitted on every row
    np.testing.assert_allclose(base_model(step).predict_proba(X), weighted.predict_proba(X))
    # weighted probabilities overstate the rare class; unweighted calibrators bring its mean
    # back to its prevalence (weighted calibrators would keep it near the weighted share)
    assert weighted.predict_proba(X)[:, 1].mean() > y.mean() + 0.05
    assert abs(step.predict_proba(X)[:, 1].mean() - y.mean()) < 0.01


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = generate_cohort(n_rows=2500, seed=11)
    return df.iloc[:1500].reset_index(drop=True), df.iloc[1500:].reset_index(drop=True)


def _calibrated_pipeline(train: pd.DataFrame, family: str, method: str = "isotonic") -> Pipeline:
    params = {"iterations": 25, "thread_count": 1} if family == "catboost" else {}
    opts = FitOptions(model_type=family, seed=1, params=params, calibration=method)
    pipe, _ = fit_diagnosis(ED_COHORT, train, opts, params)
    return pipe


@pytest.mark.parametrize(
    ("family", "method"),
    [
        ("catboost", "isotonic"),
        ("catboost", "sigmoid"),
        ("catboost", "temperature"),
        ("logreg", "isotonic"),
    ],
)
def test_the_fast_path_serves_a_calibrated_pipeline_exactly(
    cohort: tuple[pd.DataFrame, pd.DataFrame], family: str, method: str
) -> None:
    """Up to FOREST_MAX_ROWS rows a calibrated CatBoost is scored by its own calibrators
    reading the NumPy forest; above, by the step itself: both equal the pipeline."""
    train, test = cohort
    pipe = _calibrated_pipeline(train, family, method)
    fast = FastPipeline.from_pipeline(pipe)
    assert fast.calibrated is pipe.named_steps["model"]
    assert fast.forest_serves is (family == "catboost")
    rows = test.head(300)
    cols = {c: rows[c].to_numpy() for c in rows.columns}
    expected = pipe.predict_proba(rows)
    np.testing.assert_allclose(fast.predict_proba(cols), expected, rtol=0, atol=1e-12)
    for i in (0, 7):  # single rows too
        one = {c: v[i : i + 1] for c, v in cols.items()}
        np.testing.assert_allclose(fast.predict_proba(one), expected[i : i + 1], atol=1e-12)
    small = {c: v[:100] for c, v in cols.items()}  # the forest's range (FOREST_MAX_ROWS)
    np.testing.assert_allclose(fast.predict_proba(small), expected[:100], rtol=0, atol=1e-12)
    uncalibrated = base_model(pipe.named_steps["model"]).predict_proba(pipe[:-1].transform(rows))
    assert not np.allclose(expected, uncalibrated, atol=1e-3)  # calibration did something
    # explanations: the classifier inside (SHAP in its raw-score units), every field named
    shap = fast.explain(cols, expected.argmax(axis=1))
    assert len(shap) == len(rows) and "age" in shap[0]
