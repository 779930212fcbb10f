"""The NumPy fast path gives the sklearn pipelines' probabilities (issue 7 regression test)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from train_pipeline.contract import ED_COHORT
from train_pipeline.data.generate import generate_cohort
from train_pipeline.fast_path.pipeline import FastPipeline
from train_pipeline.models import diagnosis, treatment
from train_pipeline.models.coherence import CoherenceTable, coherent_choice, learn_allowed_pairs
from train_pipeline.split import encode_labels

ROUNDS = {
    "catboost": {"iterations": 25, "thread_count": 1},
    "xgboost": {"n_estimators": 25, "n_jobs": 1},
    "logreg": {"max_iter": 200},
}


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = generate_cohort(n_rows=2500, seed=11)
    return df.iloc[:1500].reset_index(drop=True), df.iloc[1500:].reset_index(drop=True)


def _fit(role: str, model_type: str, train: pd.DataFrame) -> Pipeline:
    if role == "diagnosis":
        y = encode_labels(train["diagnosis"], ED_COHORT.diagnosis.codes)
        pipe = diagnosis.build_pipeline(ED_COHORT, model_type, ROUNDS[model_type], seed=1)
        return pipe.fit(train, y)
    y = encode_labels(train["treatment"], ED_COHORT.treatment.codes)  # type: ignore[union-attr]
    pipe = treatment.build_pipeline(ED_COHORT, model_type, ROUNDS[model_type], seed=1)
    return pipe.fit(train, y)


def _columns(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """What the API hands over: one NumPy array per raw field (object arrays for strings)."""
    return {c: df[c].to_numpy() for c in df.columns}


@pytest.mark.parametrize("model_type", ["catboost", "xgboost", "logreg"])
@pytest.mark.parametrize("role", ["diagnosis", "treatment"])
def test_fast_path_matches_pipeline(
    cohort: tuple[pd.DataFrame, pd.DataFrame], role: str, model_type: str
) -> None:
    train, test = cohort
    pipe = _fit(role, model_type, train)
    rows = test.sample(1000, random_state=5, replace=False).reset_index(drop=True)
    if role == "treatment":  # at serving time the treatment model gets a predicted diagnosis
        rng = np.random.default_rng(0)
        rows = rows.assign(diagnosis=rng.choice(ED_COHORT.diagnosis.codes, len(rows)))
    fast = FastPipeline.from_pipeline(pipe)
    # CatBoost: single rows and small batches go through the NumPy forest, the rest CatBoost
    assert (fast.forest is not None) == (model_type == "catboost")
    expected = pipe.predict_proba(rows)
    cols = _columns(rows)
    np.testing.assert_allclose(fast.predict_proba(cols), expected, atol=1e-6, rtol=0)
    single = np.vstack(
        [fast.predict_proba({k: v[i : i + 1] for k, v in cols.items()}) for i in range(len(rows))]
    )
    np.testing.assert_allclose(single, expected, atol=1e-6, rtol=0)
    # micro-batches of mixed sizes, as the API's batcher forms them
    chunks = [
        fast.predict_proba({k: v[a:b] for k, v in cols.items()})
        for a, b in ((0, 7), (7, 71), (71, 1000))
    ]
    np.testing.assert_allclose(np.vstack(chunks), expected, atol=1e-6, rtol=0)
    # the same predicted class whichever path scored the row
    np.testing.assert_array_equal(single.argmax(axis=1), expected.argmax(axis=1))
    np.testing.assert_array_equal(np.vstack(chunks).argmax(axis=1), expected.argmax(axis=1))
    assert fast.transform_matrix(cols).shape[1] == len(fast.sources)


def test_fast_path_explains_in_original_fields(cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = cohort
    fast = FastPipeline.from_pipeline(_fit("diagnosis", "catboost", train))
    cols = _columns(test.head(50))
    importance = fast.global_importance(cols)
    assert set(importance) == set(ED_COHORT.feature_names)
    assert list(importance.values()) == sorted(importance.values(), reverse=True)
    proba = fast.predict_proba(cols)
    contrib = fast.explain(cols, proba.argmax(axis=1))
    assert len(contrib) == 50 and set(contrib[0]) == set(ED_COHORT.feature_names)


def test_logistic_regression_explains_exactly(cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Model selection's logreg candidate: its linear SHAP values (bias last) sum to the
    model's logits, so serving explains it like the boosters."""
    train, test = cohort
    fast = FastPipeline.from_pipeline(_fit("diagnosis", "logreg", train))
    assert fast.kind == "linear" and fast.forest is None
    X = fast.transform_matrix(_columns(test.head(40)))
    shap = fast.model.pred_contribs(X)  # (n, K, F + 1)
    logits = fast.model.clf_.decision_function(fast.model.scaler_.transform(X))
    np.testing.assert_allclose(shap.sum(axis=2), logits, atol=1e-9)
    contrib = fast.explain(_columns(test.head(5)), np.zeros(5, dtype=int))
    assert set(contrib[0]) == set(ED_COHORT.feature_names)


def test_coherent_choice_never_returns_a_disallowed_treatment() -> None:
    classes = ["a", "b", "c"]
    allowed = learn_allowed_pairs(
        ["x"] * 10 + ["y"] * 10, ["a"] * 9 + ["c"] + ["b"] * 10, min_count=2
    )
    assert allowed == {"x": ["a"], "y": ["b"]}  # the single x->c is noise
    proba = np.array([[0.1, 0.1, 0.8], [0.7, 0.2, 0.1], [0.2, 0.3, 0.5]])
    codes, out = coherent_choice(["x", "y", "unknown"], proba, classes, allowed)
    assert codes == ["a", "b", "c"]
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert out[0, 2] == 0 and out[1, 0] == 0
    # all mass on disallowed treatments: the allowed ones share it
    codes, out = coherent_choice(["x"], np.array([[0.0, 0.0, 1.0]]), classes, allowed)
    assert codes == ["a"] and out[0, 0] == 1.0


def test_coherence_table_by_class_index_equals_the_rule() -> None:
    """The predictor's precomputed table: rows by diagnosis index, a zero-mass row (uniform
    share) in the same call as ordinary ones, and a diagnosis the table does not restrict."""
    classes = ["a", "b", "c"]
    table = CoherenceTable(["x", "y", "z"], classes, {"x": ["a"], "y": ["b", "c"]})
    proba = np.array([[0.1, 0.1, 0.8], [0.9, 0.0, 0.0], [0.2, 0.3, 0.5], [0.5, 0.2, 0.3]])
    codes, out = table.choose(np.array([0, 1, 2, 1]), proba)
    assert codes == ["a", "b", "c", "c"]
    np.testing.assert_array_equal(
        out, [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.2, 0.3, 0.5], [0.0, 0.2 / 0.5, 0.3 / 0.5]]
    )
    codes_all_positive, out_all_positive = table.choose(np.array([2, 1]), proba[[2, 3]])
    assert codes_all_positive == ["c", "c"]
    np.testing.assert_array_equal(out_all_positive, out[[2, 3]])
    by_code = coherent_choice(["x", "y", "z", "y"], proba, classes, {"x": ["a"], "y": ["b", "c"]})
    assert by_code[0] == codes
    np.testing.assert_array_equal(by_code[1], out)
