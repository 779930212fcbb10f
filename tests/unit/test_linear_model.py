"""`ScaledLogisticRegression` scores with the fitted arithmetic directly: the same values as
scikit-learn's `StandardScaler` + `LogisticRegression`, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from train_pipeline.models.linear import ScaledLogisticRegression


@pytest.mark.parametrize("n_classes", [2, 3, 11], ids=["binary", "three", "eleven"])
@pytest.mark.parametrize("rows", [1, 8, 300], ids=["one-row", "micro-batch", "batch"])
def test_scores_equal_scikit_learns(n_classes: int, rows: int) -> None:
    rng = np.random.default_rng(n_classes)
    X = rng.normal(3.0, 2.0, (600, 12)) * rng.uniform(0.1, 50, 12)
    model = ScaledLogisticRegression(C=0.5).fit(X, rng.integers(0, n_classes, 600))
    X_new = rng.normal(3.0, 2.0, (rows, 12)) * rng.uniform(0.1, 50, 12)
    expected = model.clf_.predict_proba(model.scaler_.transform(X_new))
    np.testing.assert_array_equal(model.predict_proba(X_new), expected)
    np.testing.assert_array_equal(model.predict(X_new), model.clf_.classes_[expected.argmax(1)])
    logits = model.clf_.decision_function(model.scaler_.transform(X_new))
    contribs = model.pred_contribs(X_new)
    np.testing.assert_allclose(contribs.sum(axis=-1), logits, rtol=0, atol=1e-9)


def test_the_input_is_not_modified() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4))
    model = ScaledLogisticRegression().fit(X, rng.integers(0, 3, 50))
    before = X.copy()
    model.predict_proba(X)
    model.pred_contribs(X)
    np.testing.assert_array_equal(X, before)
