"""SHAP explanations: contributions + base value reconstruct the booster's raw score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.serving.explain import explain, explain_many, explain_rows
from train_pipeline.contract import ED_COHORT
from train_pipeline.data.generate import generate_cohort
from train_pipeline.fast_path.pipeline import FastPipeline
from train_pipeline.models.diagnosis import build_pipeline

SMALL = {
    "catboost": {"iterations": 40, "depth": 4},
    "xgboost": {"n_estimators": 30, "max_depth": 3},
}


@dataclass(frozen=True)
class TinyBundle:
    """What `explain` reads of a `ModelBundle`: the diagnosis fast path."""

    diagnosis: FastPipeline


def columns(df: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in ED_COHORT.features:
        if f.kind in ("numeric", "integer", "boolean"):
            out[f.name] = df[f.name].to_numpy(dtype=float, na_value=np.nan)
        else:
            out[f.name] = df[f.name].to_numpy()
    return out


@pytest.fixture(scope="module")
def cohort() -> Any:
    return generate_cohort(800, seed=3)


@pytest.fixture(scope="module", params=["catboost", "xgboost"])
def bundle(request: pytest.FixtureRequest, cohort: Any) -> TinyBundle:
    pipe = build_pipeline(ED_COHORT, request.param, SMALL[request.param], seed=0)
    y = cohort["diagnosis"]
    if request.param == "xgboost":  # XGBClassifier wants integer labels
        y = pd.Series(pd.factorize(y, sort=True)[0])
    pipe.fit(cohort[list(ED_COHORT.feature_names)], y)
    return TinyBundle(FastPipeline.from_pipeline(pipe))


def model_raw_scores(fp: FastPipeline, X: np.ndarray) -> np.ndarray:
    if fp.kind == "catboost":
        return np.asarray(fp.model.predict(X, prediction_type="RawFormulaVal"))
    from xgboost import DMatrix

    return np.asarray(fp.model.get_booster().predict(DMatrix(X), output_margin=True))


def test_contributions_plus_base_reconstruct_the_raw_score(bundle: TinyBundle, cohort: Any) -> None:
    cols = columns(cohort.head(25))
    fp = bundle.diagnosis
    raw = model_raw_scores(fp, fp.transform_matrix(cols))
    proba = fp.predict_proba(cols)
    classes = [str(c) for c in fp.classes]
    for i, e in enumerate(explain_rows(bundle, cols)):
        k = classes.index(e.class_code)
        assert k == int(proba[i].argmax()), "explains the predicted diagnosis"
        assert e.base_value + sum(e.contributions.values()) == pytest.approx(raw[i, k], abs=1e-4)
        assert e.raw_score == pytest.approx(raw[i, k], abs=1e-4)


def test_softmax_of_raw_scores_is_the_probability(bundle: TinyBundle, cohort: Any) -> None:
    cols = columns(cohort.head(5))
    fp = bundle.diagnosis
    raw = model_raw_scores(fp, fp.transform_matrix(cols))
    soft = np.exp(raw - raw.max(axis=1, keepdims=True))
    soft /= soft.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(soft, fp.predict_proba(cols), atol=1e-5)


def test_contributions_use_original_field_names(bundle: TinyBundle, cohort: Any) -> None:
    cols = columns(cohort.head(3))
    fields = set(explain_rows(bundle, cols)[0].contributions)
    assert fields <= set(ED_COHORT.feature_names)
    assert "symptoms" in fields and not any("__" in f for f in fields)


def test_explain_returns_top_n_with_patient_values(bundle: TinyBundle, cohort: Any) -> None:
    row = cohort.head(1)
    top = explain(bundle, columns(row), top_n=4)
    assert len(top) == 4
    magnitudes = [abs(t["contribution"]) for t in top]
    assert magnitudes == sorted(magnitudes, reverse=True)
    for item in top:
        assert set(item) == {"feature", "value", "contribution"}
        expected = row.iloc[0][item["feature"]]
        if item["feature"] == "symptoms":
            assert item["value"] == (str(expected).split(";") if isinstance(expected, str) else [])
        elif isinstance(item["value"], float):
            assert item["value"] == pytest.approx(float(expected))


def test_explain_many_gives_one_list_per_row(bundle: TinyBundle, cohort: Any) -> None:
    out = explain_many(bundle, columns(cohort.head(6)), top_n=2)
    assert [len(x) for x in out] == [2] * 6


def test_fast_catboost_shap_equals_catboost_shapvalues(cohort: Any) -> None:
    """The precomputed tables give CatBoost's own ShapValues, for trees of several depths."""
    from catboost import Pool

    from app.serving.explain import fast_explainer

    pipe = build_pipeline(ED_COHORT, "catboost", {"iterations": 25, "depth": 6}, seed=1)
    pipe.fit(cohort[list(ED_COHORT.feature_names)], cohort["diagnosis"])
    fp = FastPipeline.from_pipeline(pipe)
    fast = fast_explainer(fp)
    assert fast is not None, "fast path refused the model"
    X = fp.transform_matrix(columns(cohort.head(60)))
    native = np.asarray(fp.model.get_feature_importance(Pool(X), type="ShapValues"))
    np.testing.assert_allclose(fast.shap_values(X), native, atol=1e-9)


def test_fast_path_is_the_one_used_for_catboost(bundle: TinyBundle) -> None:
    from app.serving.explain import fast_explainer

    fast = fast_explainer(bundle.diagnosis)
    assert (fast is not None) == (bundle.diagnosis.kind == "catboost")
