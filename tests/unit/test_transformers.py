"""The transformers inside the pickled pipelines: sklearn conventions, clinical arithmetic."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

from train_pipeline.contract import ED_COHORT, Feature
from train_pipeline.features import ClinicalFeatures, MedianImputer, TargetEncoder
from train_pipeline.features.clinical_plan import News2Block
from train_pipeline.features.derived import (
    NEWS2_PARAMETER_OF,
    NEWS2_PARTS,
    Columns,
    news2_consciousness,
    news2_heart_rate,
    news2_respiratory_rate,
    news2_spo2,
    news2_systolic_bp,
    news2_temperature,
    news2_total,
)
from train_pipeline.features.encoding import _Lookup

# Ordered target statistics make fit_transform differ from fit().transform() on purpose
# (a training row never sees its own label; CatBoost does the same): these two checks assert
# the opposite, so they are expected to fail. Every other sklearn check must pass.
ENCODER_EXPECTED_FAILURES = {
    "check_transformer_general": "ordered statistics: fit_transform != fit().transform()",
    "check_transformer_data_not_an_array": "same reason as check_transformer_general",
}


def _expected(estimator: object) -> dict[str, str]:
    return ENCODER_EXPECTED_FAILURES if isinstance(estimator, TargetEncoder) else {}


@parametrize_with_checks(  # type: ignore[untyped-decorator]
    [TargetEncoder(), MedianImputer()], expected_failed_checks=_expected
)
def test_sklearn_conventions(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


# --- NEWS2 (RCP 2017 chart 1), table-driven at every band edge -----------------------------
@pytest.mark.parametrize(
    ("fn", "values", "points"),
    [
        (news2_respiratory_rate, [8, 9, 11, 12, 20, 21, 24, 25], [3, 1, 1, 0, 0, 2, 2, 3]),
        (news2_spo2, [91, 92, 93, 94, 95, 96, 100], [3, 2, 2, 1, 1, 0, 0]),
        (news2_systolic_bp, [90, 91, 100, 101, 110, 111, 219, 220], [3, 2, 2, 1, 1, 0, 0, 3]),
        (
            news2_heart_rate,
            [40, 41, 50, 51, 90, 91, 110, 111, 130, 131],
            [3, 1, 1, 0, 0, 1, 1, 2, 2, 3],
        ),
        (
            news2_temperature,
            [35.0, 35.1, 36.0, 36.1, 38.0, 38.1, 39.0, 39.1],
            [3, 1, 1, 0, 0, 1, 1, 2],
        ),
        (news2_consciousness, [15, 14, 3], [0, 3, 3]),
        # recorded values: rounded half up to whole numbers / tenths of a degree first
        (news2_heart_rate, [40.4, 40.5, 90.4, 90.5, 130.4, 130.5], [3, 1, 0, 1, 2, 3]),
        (news2_temperature, [35.04, 35.05, 35.06, 36.04, 36.05, 39.05], [3, 1, 1, 1, 0, 2]),
        (news2_respiratory_rate, [8.4, 8.5, 24.4, 24.5], [3, 1, 2, 3]),
        (news2_consciousness, [14.4, 14.5], [3, 0]),
    ],
    ids=["rr", "spo2", "sbp", "hr", "temp", "gcs", "hr_half", "temp_half", "rr_half", "gcs_half"],
)
def test_news2_subscores_at_band_edges(fn, values, points) -> None:  # type: ignore[no-untyped-def]
    assert fn(np.array(values, dtype=float)).tolist() == points
    assert np.isnan(fn(np.array([np.nan]))[0])


def test_news2_total_counts_missing_as_normal() -> None:
    cols = {
        "respiratory_rate": np.array([26.0, np.nan]),
        "spo2": np.array([90.0, 97.0]),
        "systolic_bp": np.array([85.0, 120.0]),
        "heart_rate": np.array([135.0, 70.0]),
        "temperature": np.array([39.5, 37.0]),
        "glasgow": np.array([13.0, 15.0]),
    }
    assert news2_total(cols).tolist() == [3 + 3 + 3 + 3 + 2 + 3, 0]


# --- ClinicalFeatures ----------------------------------------------------------------------
def _rows(n: int = 3) -> pd.DataFrame:
    base = {f.name: [np.nan] * n for f in ED_COHORT.features}
    df = pd.DataFrame(base)
    df["age"] = [30, 70, 85]
    df["sex"] = ["M", "F", None]
    df["heart_rate"] = [120.0, 60.0, np.nan]
    df["systolic_bp"] = [80.0, 120.0, 150.0]
    df["diastolic_bp"] = [50.0, 60.0, 90.0]
    df["symptoms"] = ["fever;cough", "", "chest_pain;not_a_symptom"]
    return df


def test_clinical_features_values_and_names() -> None:
    feats = ClinicalFeatures(features=ED_COHORT.features).fit(_rows())
    X = feats.transform(_rows())
    names = list(feats.get_feature_names_out())
    col = {n: X[:, i] for i, n in enumerate(names)}
    assert X.dtype == float and X.shape == (3, len(names))
    assert col["shock_index"][0] == pytest.approx(120 / 80)
    assert col["mean_arterial_pressure"][1] == pytest.approx((120 + 2 * 60) / 3)
    assert col["pulse_pressure"][2] == pytest.approx(60)
    assert np.isnan(col["shock_index"][2])  # missing HR stays missing until imputation
    assert col["age_band"].tolist() == [0, 2, 3]
    assert col["sex"][:2].tolist() == [0, 1] and np.isnan(col["sex"][2])
    assert col["symptoms__fever"].tolist() == [1, 0, 0]
    assert col["symptoms__chest_pain"].tolist() == [0, 0, 1]
    labs = len([f for f in ED_COHORT.features if f.kind == "numeric" and f.tier == "optional"])
    assert col["labs_missing"].tolist() == [labs] * 3
    assert feats.feature_sources_["shock_index"] == ["heart_rate", "systolic_bp"]
    assert feats.feature_sources_["symptoms__fever"] == ["symptoms"]


def test_clinical_features_same_from_columns_lists_and_frame() -> None:
    df = _rows()
    feats = ClinicalFeatures(features=ED_COHORT.features).fit(df)
    cols = {c: df[c].to_numpy() for c in df.columns}
    cols["symptoms"] = [["fever", "cough"], [], ("chest_pain",)]
    np.testing.assert_array_equal(feats.transform(df), feats.transform_columns(cols))


def test_engineered_only_when_inputs_exist() -> None:
    task = (
        Feature("age", "numeric", "y", "required", "age"),
        Feature("colour", "categorical", "", "optional", "learned vocabulary"),
    )
    df = pd.DataFrame({"age": [50.0, 20.0], "colour": ["red", "blue"]})
    feats = ClinicalFeatures(features=task).fit(df)
    assert list(feats.get_feature_names_out()) == ["age", "colour", "age_band"]
    assert feats.vocabulary_["colour"] == {"blue": 0, "red": 1}
    out = feats.transform(pd.DataFrame({"age": [1.0], "colour": ["green"]}))
    assert np.isnan(out[0, 1])  # unseen category -> missing code -> encoder prior


def test_clinical_features_conventions() -> None:
    feats = ClinicalFeatures(features=ED_COHORT.features)
    assert clone(feats).get_params()["features"] == ED_COHORT.features
    with pytest.raises(Exception, match="not fitted"):
        feats.transform(_rows())
    fitted = feats.fit(_rows())
    with pytest.raises(ValueError, match="missing input columns"):
        fitted.transform(_rows().drop(columns=["spo2"]))
    # standard pickle (BentoML) must work: no lambdas in fitted state
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.transform(_rows()), fitted.transform(_rows()))


# --- TargetEncoder -------------------------------------------------------------------------
def test_target_encoder_full_statistics_and_prior() -> None:
    X = np.array([[0.0, 5.0], [0.0, 6.0], [1.0, 7.0], [np.nan, 8.0]])
    y = np.array(["a", "b", "b", "a"])
    enc = TargetEncoder(categorical=(0,), prior_weight=1.0).fit(X, y)
    out = enc.transform(np.array([[0.0, 1.0], [9.0, 2.0], [np.nan, 3.0]]))
    prior = np.array([0.5, 0.5])
    np.testing.assert_allclose(out[:, 0], [1.0, 2.0, 3.0])  # passthrough first
    np.testing.assert_allclose(out[0, 1:], (np.array([1, 1]) + prior) / (2 + 1))
    np.testing.assert_allclose(out[1, 1:], prior)  # unseen category
    np.testing.assert_allclose(out[2, 1:], prior)  # missing category
    assert list(enc.get_feature_names_out(["c", "v"])) == ["v", "c__te_a", "c__te_b"]


def test_target_encoder_ordered_statistics_do_not_leak_own_label() -> None:
    # one category, labels alternate: with ordered statistics the first row in the permutation
    # gets the prior, and no row's encoding depends on its own label
    rng = np.random.default_rng(0)
    X = np.zeros((200, 1))
    y = rng.integers(0, 2, 200)
    enc = TargetEncoder(random_state=3)
    ordered = enc.fit_transform(X, y)
    perm = np.random.RandomState(3).permutation(200)
    first = perm[0]
    np.testing.assert_allclose(ordered[first], enc.prior_)
    # the k-th row in permutation order sees exactly the k rows before it
    k = 10
    row = perm[k]
    seen = np.bincount(y[perm[:k]], minlength=2)
    np.testing.assert_allclose(ordered[row], (seen + enc.prior_) / (k + 1))
    # flipping a row's own label does not change its own ordered encoding
    y2 = y.copy()
    y2[row] = 1 - y2[row]
    again = TargetEncoder(random_state=3).fit_transform(X, y2)
    assert np.allclose(again[row], (seen + TargetEncoder().fit(X, y2).prior_) / (k + 1))


def test_median_imputer_pure_numpy_core() -> None:
    X = np.array([[1.0, np.nan], [3.0, np.nan], [np.nan, np.nan]])
    imp = MedianImputer().fit(X)
    np.testing.assert_array_equal(imp.statistics_, [2.0, 0.0])
    np.testing.assert_array_equal(imp.transform_array(X), [[1, 0], [3, 0], [2, 0]])


# --- the serving plan: the same numbers with fewer NumPy calls -----------------------------
def _edge_values() -> np.ndarray:
    """Every NEWS2 / age band edge, one ulp either side, halves, x.x5, zeros, inf and NaN."""
    edges: list[float] = [8, 11, 20, 24, 91, 93, 95, 90, 100, 110, 219, 40, 50, 130, 14, 65, 80]
    edges += [35.0, 36.0, 38.0, 39.0, 35.05, 36.05, 38.05, 39.05, 36.15, 0.0]
    values = [np.inf, -np.inf, np.nan, -0.0, 1e308, -3.0]
    for e in map(float, edges):
        values += [e, np.nextafter(e, np.inf), np.nextafter(e, -np.inf), e + 0.5, e - 0.5, e + 1]
    return np.array(values)


def test_news2_block_and_scalar_scores_equal_the_subscore_functions() -> None:
    values = _edge_values()
    grid = np.stack([np.roll(values, 7 * k) for k in range(len(NEWS2_PARTS))], axis=1)
    chart = [NEWS2_PARAMETER_OF[src] for _, src, _ in NEWS2_PARTS]
    block = News2Block(range(len(NEWS2_PARTS)), chart)
    with np.errstate(over="ignore"):  # 1e308 * 10 on the way to rounding to 0.1
        scores, total = block.scores(grid)
    cols = {src: grid[:, k] for k, (_, src, _) in enumerate(NEWS2_PARTS)}
    for k, (_, _, fn) in enumerate(NEWS2_PARTS):
        with np.errstate(over="ignore"):
            expected = fn(grid[:, k])
        np.testing.assert_array_equal(scores[:, k], expected)
        scalar = [chart[k].score(float(v)) for v in grid[:, k]]
        np.testing.assert_array_equal(scalar, expected)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(total, news2_total(cols))


def test_derived_feature_the_plan_does_not_know_runs_its_own_compute() -> None:
    task = (
        Feature("age", "numeric", "y", "required", "age"),
        Feature("colour", "categorical", "", "optional", "learned vocabulary"),
    )
    feats = ClinicalFeatures(features=task).fit(pd.DataFrame({"age": [50.0], "colour": ["red"]}))
    feats.engineered_[0] = dataclasses.replace(feats.engineered_[0], compute=_age_squared)
    feats.__dict__.pop("_serving_cache", None)  # a cache of the fitted state: rebuild it
    out = feats.transform_columns({"age": np.array([3.0, np.nan]), "colour": ["red", "blue"]})
    np.testing.assert_array_equal(out, [[3.0, 0.0, 9.0], [np.nan, np.nan, np.nan]])


def _age_squared(c: Columns) -> np.ndarray:
    return np.asarray(c["age"], dtype=float) ** 2


def test_clinical_plan_is_rebuilt_by_fit_and_not_pickled() -> None:
    feats = ClinicalFeatures(features=ED_COHORT.features).fit(_rows())
    before = feats.transform(_rows())
    assert "_serving_cache" in feats.__dict__
    again = pickle.loads(pickle.dumps(feats))
    assert "_serving_cache" not in again.__dict__  # rebuilt on first use
    np.testing.assert_array_equal(again.transform(_rows()), before)
    learned = ClinicalFeatures(features=(Feature("c", "categorical", "", "optional", "c"),))
    learned.fit(pd.DataFrame({"c": ["x"]}))
    assert np.isnan(learned.transform(pd.DataFrame({"c": ["y"]}))[0, 0])
    learned.fit(pd.DataFrame({"c": ["y"]}))  # a new vocabulary: the plan follows
    assert learned.transform(pd.DataFrame({"c": ["y"]})).tolist() == [[0.0]]


def test_target_encoder_lookup_is_built_by_fit_and_not_pickled() -> None:
    enc = TargetEncoder(categorical=(0,)).fit(np.array([[0.0], [1.0]]), ["a", "b"])
    assert "_serving_cache" in enc.__dict__  # transform leaves __dict__ as fit left it
    again = pickle.loads(pickle.dumps(enc))
    assert "_serving_cache" not in again.__dict__
    X = np.array([[1.0], [5.0]])
    np.testing.assert_array_equal(again.transform_array(X), enc.transform_array(X))
    enc.fit(np.array([[5.0], [1.0]]), ["a", "b"])  # refit: the lookup follows
    np.testing.assert_array_equal(enc.transform_array(X)[:, 0], [0.25, 0.75])


@pytest.mark.parametrize("n", [1, _Lookup.SMALL, _Lookup.SMALL + 1, 500])
def test_target_encoder_table_equals_per_cell_lookup(n: int) -> None:
    rng = np.random.default_rng(n)
    X = rng.integers(0, 4, (400, 3)).astype(float)
    y = rng.choice(["a", "b", "c"], 400)
    enc = TargetEncoder(categorical=(0, 2)).fit(X, y)
    cells = np.array([0.0, -0.0, 1.0, 2.0, 3.0, 9.0, -1.0, 0.5, np.nan, np.inf])
    Z = rng.choice(cells, (n, 3))
    expected = []
    for row in Z:
        out = [row[1]]
        for j, values, table in zip(enc.categorical_, enc.values_, enc.encodings_, strict=True):
            hit = np.flatnonzero(values == row[j])
            out += list(table[hit[0]] if len(hit) else enc.prior_)
        expected.append(out)
    np.testing.assert_array_equal(enc.transform_array(Z), np.array(expected))


def test_median_imputer_leaves_its_input_alone() -> None:
    X = np.array([[1.0, np.nan], [np.nan, 2.0]])
    imp = MedianImputer().fit(X)
    out = imp.transform_array(X)
    assert out is not X and np.isnan(X[0, 1]) and np.isnan(X[1, 0])
    np.testing.assert_array_equal(out, [[1.0, 2.0], [1.0, 2.0]])
