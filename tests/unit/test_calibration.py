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
from train_pipeline.calibration import (
    MIN_GAIN,
    SCORE_TOLERANCE,
    _weighted_ece,
    choose_calibration,
    cross_fitted,
    gain_interval,
    noise_floor,
)
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


def _calibrated_already(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from the probabilities themselves: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    true = rng.dirichlet([1.0, 1.0, 1.0], n)
    return np.array([rng.choice(3, p=p) for p in true]), true


def test_a_calibration_whose_gain_is_within_noise_is_refused() -> None:
    """150 rows of probabilities that are calibrated already: by chance temperature scaling
    lowers their out-of-fold error by 0.04 (more than MIN_GAIN, at no macro-F1 cost), but the
    95 % bootstrap interval of that gain reaches below 0, so nothing is applied."""
    y, proba = _calibrated_already(150, 0)
    choice = choose_calibration(y, proba, CLASSES, "f1_macro", seed=0)
    gain = choice.errors["none"] - choice.errors["temperature"]
    assert gain > MIN_GAIN  # what the error alone would have taken ...
    assert choice.scores["temperature"] >= choice.scores["none"] - SCORE_TOLERANCE
    assert choice.gain_lo["temperature"] <= 0  # ... is not a gain beyond noise
    assert choice.method is None
    np.testing.assert_array_equal(choice.oof_proba, proba)
    assert "within noise" in choice.reason()
    assert choice.metrics()["calibration_cv_gain_lo_temperature"] == choice.gain_lo["temperature"]


def test_on_repeated_cross_fits_the_gain_must_hold_in_every_one() -> None:
    """An overconfident model on few rows: the gain is real and holds on every partition;
    the errors are the means over the repeats."""
    y, proba = _overconfident(400, 4)
    choice = choose_calibration(y, proba, CLASSES, "f1_macro", seed=2, repeats=3)
    assert choice.method is not None
    assert choice.worst_gain[choice.method] >= MIN_GAIN and choice.gain_lo[choice.method] > 0
    each = [
        ev.expected_calibration_error(y, cross_fitted(y, proba, choice.method, seed=2 + r))
        for r in range(3)
    ]
    assert choice.errors[choice.method] == pytest.approx(np.mean(each))
    assert choice.worst_gain[choice.method] == pytest.approx(choice.errors["none"] - max(each))


def test_the_bootstrap_error_is_the_error_of_the_resampled_rows() -> None:
    """`gain_interval` weighs rows by their bootstrap counts: the same ECE as repeating them."""
    y, proba = _overconfident(300, 5)
    counts = np.random.default_rng(0).multinomial(300, np.full(300, 1 / 300), size=2)
    weighted = _weighted_ece(y, proba, counts.astype(float))
    for row, value in zip(counts, weighted, strict=True):
        rows = np.repeat(np.arange(300), row)
        assert value == pytest.approx(ev.expected_calibration_error(y[rows], proba[rows]))
    lo, hi = gain_interval(y, proba, cross_fitted(y, proba, "temperature", seed=0), seed=0)
    assert 0 < lo < hi  # sharpened probabilities: temperature scaling's gain is real


def test_the_noise_floor_is_the_error_of_a_perfectly_calibrated_model() -> None:
    """On 62 rows a model whose probabilities are exactly right still shows an error of
    ~0.13 (cirrhosis' held-out size); on 3,000 rows a small one."""
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([2.0, 1.0, 1.0], 62)
    drawn = [
        ev.expected_calibration_error(np.array([rng.choice(3, p=p) for p in proba]), proba)
        for _ in range(300)
    ]
    floor = noise_floor(proba)
    assert floor == pytest.approx(np.mean(drawn), abs=0.01)
    assert floor > 0.1
    assert noise_floor(rng.dirichlet([2.0, 1.0, 1.0], 3000)) < 0.03


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
