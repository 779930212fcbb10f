"""The NumPy forest reproduces CatBoost: raw scores bit for bit, probabilities to 1e-12."""

from __future__ import annotations

import numpy as np
import pytest
from catboost import CatBoostClassifier

from train_pipeline.data.generate import generate_cohort
from train_pipeline.fast_path import forest as oblivious
from train_pipeline.fast_path.forest import (
    TOLERANCE,
    ObliviousForest,
    boundary_rows,
    catboost_spec,
)
from train_pipeline.fast_path.pipeline import FOREST_MAX_ROWS, FastPipeline


@pytest.fixture(scope="module")
def multiclass() -> tuple[CatBoostClassifier, np.ndarray]:
    """A CatBoost model on the cohort's numeric columns (NaNs included) and 1,000 test rows."""
    df = generate_cohort(n_rows=3000, seed=5)
    X = df.select_dtypes("number").to_numpy(dtype=float)
    y = df["diagnosis"].astype("category").cat.codes.to_numpy()
    model = CatBoostClassifier(iterations=60, depth=6, thread_count=1, verbose=False)
    model.fit(X[:2000], y[:2000])
    return model, X[2000:]


@pytest.fixture(scope="module")
def forest(multiclass: tuple[CatBoostClassifier, np.ndarray]) -> ObliviousForest:
    built = ObliviousForest.from_model(multiclass[0])
    assert built is not None
    return built


def test_forest_matches_catboost_on_cohort_rows(
    multiclass: tuple[CatBoostClassifier, np.ndarray], forest: ObliviousForest
) -> None:
    model, X = multiclass
    assert np.isnan(X).any()  # missing values go through the comparison too
    raw = model.predict(X, prediction_type="RawFormulaVal", thread_count=1)
    np.testing.assert_array_equal(forest.raw(X), raw)  # same leaves, same order of addition
    expected = model.predict_proba(X, thread_count=1)
    got = forest.predict_proba(X)
    assert np.abs(got - expected).max() <= TOLERANCE
    np.testing.assert_array_equal(got.argmax(axis=1), expected.argmax(axis=1))
    for i in range(0, 50):  # one row at a time, as single requests arrive
        np.testing.assert_array_equal(forest.raw(X[i : i + 1]), raw[i : i + 1])


def test_forest_matches_on_values_at_the_borders(
    multiclass: tuple[CatBoostClassifier, np.ndarray], forest: ObliviousForest
) -> None:
    """Values on, just above and just below every float32 border, and NaN."""
    model = multiclass[0]
    rows = boundary_rows(catboost_spec(model), n=3000, seed=9)
    raw = model.predict(rows, prediction_type="RawFormulaVal", thread_count=1)
    np.testing.assert_array_equal(forest.raw(rows), raw)


def test_forest_without_the_sparse_kernel_adds_the_same(
    multiclass: tuple[CatBoostClassifier, np.ndarray],
    forest: ObliviousForest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    X = multiclass[1]
    with_kernel = forest.raw(X)
    monkeypatch.setattr(oblivious, "csr_matvecs", None)
    np.testing.assert_array_equal(forest.raw(X), with_kernel)


def test_binary_logloss_model() -> None:
    df = generate_cohort(n_rows=1500, seed=6)
    X = df.select_dtypes("number").to_numpy(dtype=float)
    y = (df["diagnosis"] == df["diagnosis"].mode()[0]).to_numpy(dtype=int)
    model = CatBoostClassifier(iterations=40, depth=4, thread_count=1, verbose=False)
    model.fit(X[:1000], y[:1000])
    forest = ObliviousForest.from_model(model)
    assert forest is not None and forest.loss == "Logloss"
    expected = model.predict_proba(X[1000:], thread_count=1)
    assert np.abs(forest.predict_proba(X[1000:]) - expected).max() <= TOLERANCE


def test_a_wrong_evaluator_is_refused(multiclass: tuple[CatBoostClassifier, np.ndarray]) -> None:
    """The build-time check catches an evaluator that compares in float64 with a shifted border:
    `from_model` returns None and the fast path keeps CatBoost."""

    class Float64Forest(ObliviousForest):
        def leaves(self, X: np.ndarray) -> np.ndarray:
            shifted = self._borders.astype(float) + 1e-4
            bits = np.take(np.asarray(X, dtype=float), self._features, axis=1) > shifted
            words = bits.view(np.uint64)
            return ((words * oblivious.PACK) >> np.uint64(56)).astype(np.int64) + self._offsets

    model, _ = multiclass
    assert Float64Forest.from_model(model) is None


def test_unsupported_models_get_no_forest() -> None:
    df = generate_cohort(n_rows=600, seed=7)
    X = df.select_dtypes("number").to_numpy(dtype=float)
    model = CatBoostClassifier(
        iterations=5, depth=4, thread_count=1, verbose=False, loss_function="MultiClassOneVsAll"
    )
    model.fit(X, df["diagnosis"].astype("category").cat.codes.to_numpy())
    assert ObliviousForest.from_model(model) is None


def test_fast_pipeline_uses_the_forest_up_to_its_row_limit(
    multiclass: tuple[CatBoostClassifier, np.ndarray], forest: ObliviousForest
) -> None:
    model, X = multiclass
    fast = FastPipeline(
        features=None,  # type: ignore[arg-type]
        encoder=None,  # type: ignore[arg-type]
        imputer=None,  # type: ignore[arg-type]
        model=model,
        kind="catboost",
        classes=np.asarray(model.classes_),
        sources=[],
        forest=forest,
    )
    small, big = X[:FOREST_MAX_ROWS], X[: FOREST_MAX_ROWS + 1]
    np.testing.assert_array_equal(fast.predict_proba_matrix(small), forest.predict_proba(small))
    np.testing.assert_array_equal(
        fast.predict_proba_matrix(big), model.predict_proba(big, thread_count=1)
    )
