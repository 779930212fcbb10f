"""One NEWS2: the response's score and band (`rules.evaluate`, `rules.news2_many`) equal what the
model's NEWS2 features say (`ClinicalFeatures`, `news2_subscores`), on boundary and random records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.serving.predictor import build_columns
from app.serving.rules import evaluate, news2_many
from tests.factories import make_patient
from train_pipeline.contract import ED_COHORT
from train_pipeline.features import ClinicalFeatures, news2_subscores
from train_pipeline.features.derived import NEWS2_PARTS
from train_pipeline.features.news2 import (
    NEWS2_BANDS,
    NEWS2_PARAMETERS,
    NEWS2_RED_POINTS,
    TEMPERATURE,
    News2Parameter,
    news2_band,
    recorded,
    recorded_many,
)

PART_NAMES = [out for out, _, _ in NEWS2_PARTS]
NORMAL_VITALS: dict[str, Any] = {
    "respiratory_rate": 16,
    "spo2": 98,
    "systolic_bp": 120,
    "diastolic_bp": 75,
    "heart_rate": 70,
    "temperature": 37.0,
    "glasgow": 15,
}


def normal(**overrides: Any) -> dict[str, Any]:
    """A valid patient whose vital signs all score 0, with ``overrides``."""
    return make_patient(**{**NORMAL_VITALS, **overrides})


VITALS = [p.field for p in NEWS2_PARAMETERS if p.field != "glasgow"]


def boundary_values(p: News2Parameter) -> list[float]:
    """Every threshold of the chart row, its recorded neighbours, and .4 / .5 / .6 of the
    recorded unit either side of each; for temperature also x.x4 / x.x5 / x.x6 of every tenth
    from 34 to 40 °C."""
    unit = 10.0**-p.decimals
    out: set[float] = set()
    for upper in p.uppers:
        for k in (-1.6, -1.5, -1.4, -1, -0.6, -0.5, -0.4, 0, 0.4, 0.5, 0.6, 1, 1.4, 1.5, 1.6):
            out.add(round(upper + k * unit, 4))
        out.update((math.nextafter(upper, math.inf), math.nextafter(upper, -math.inf)))
    if p is TEMPERATURE:
        out.update(round(t / 10 + d, 2) for t in range(340, 401) for d in (0.04, 0.05, 0.06))
    return sorted(out)


BOUNDARY = {p.field: boundary_values(p) for p in NEWS2_PARAMETERS}


@pytest.fixture(scope="module")
def features() -> ClinicalFeatures:
    cols = build_columns([make_patient(), make_patient(sex="M")], ED_COHORT.features)
    return ClinicalFeatures(features=ED_COHORT.features).fit(cols)


def model_news2(features: ClinicalFeatures, records: Sequence[dict[str, Any]]) -> np.ndarray:
    """The model's NEWS2 sub-score columns (`PART_NAMES` order) of `records`, checked equal on
    the two feature paths: `ClinicalFeatures.transform_columns` (the serving columns) and
    `news2_subscores`."""
    names = features.get_feature_names_out().tolist()
    where = [names.index(n) for n in PART_NAMES]
    cols = build_columns(records, ED_COHORT.features)
    matrix = features.transform_columns(cols)
    from_columns = matrix[:, where]
    subscores = news2_subscores(cols)
    from_functions = np.column_stack([subscores[n] for n in PART_NAMES])
    np.testing.assert_array_equal(from_columns, from_functions)
    total = matrix[:, names.index("news2_total")]
    np.testing.assert_array_equal(total, np.nansum(from_columns, axis=1))
    return from_columns


def assert_one_news2(features: ClinicalFeatures, records: Sequence[dict[str, Any]]) -> None:
    """Response score and band == sum of the model's sub-scores (GCS absent: Alert, 0) and
    the band of that sum; no score when a vital is missing."""
    parts = model_news2(features, records)
    batch = news2_many(build_columns(records, ED_COHORT.features))
    for record, row, (score, band, assumed) in zip(records, parts, batch, strict=True):
        result = evaluate(record)
        assert (result.news2_score, result.news2_band) == (score, band), record
        if any(record.get(v) is None or record[v] != record[v] for v in VITALS):
            assert (score, band) == (None, None), record
            continue
        expected = int(np.nansum(row))
        assert score == expected, (record, row)
        assert band == news2_band(expected, bool(np.any(row == NEWS2_RED_POINTS))), record
        assert band in NEWS2_BANDS
        assert assumed == math.isnan(row[-1])


# --- exhaustive over the boundaries --------------------------------------------------------
@pytest.mark.parametrize("field", list(BOUNDARY))
def test_every_threshold_and_its_neighbours(features: ClinicalFeatures, field: str) -> None:
    """Each parameter through every boundary value, the others normal, then red (3 points)
    elsewhere too, then with GCS absent: so single-red and aggregate bands are crossed."""
    base = make_patient()
    others: list[dict[str, Any]] = [
        {},
        {"glasgow": 14},
        {"glasgow": None},
        {"respiratory_rate": 25, "spo2": 93},
        {"heart_rate": 95, "systolic_bp": 105, "spo2": 95},
    ]
    records = [
        {**base, **extra, field: value}
        for value in BOUNDARY[field]
        for extra in others
        if field not in extra
    ]
    assert_one_news2(features, records)


# --- random records ------------------------------------------------------------------------
def _vital(p: News2Parameter) -> st.SearchStrategy[float | None]:
    feature = ED_COHORT.feature(p.field)
    low = feature.minimum if feature.minimum is not None else 0.0
    high = feature.maximum if feature.maximum is not None else 300.0
    return st.one_of(
        st.sampled_from(BOUNDARY[p.field]),
        st.floats(low, high, allow_nan=False),
        st.integers(int(low), int(high)).map(float),
        st.sampled_from([None, math.nan]),
    )


RECORDS = st.fixed_dictionaries({p.field: _vital(p) for p in NEWS2_PARAMETERS})


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(RECORDS, min_size=1, max_size=40))
def test_random_records(features: ClinicalFeatures, vitals: list[dict[str, Any]]) -> None:
    assert_one_news2(features, [{**make_patient(), **v} for v in vitals])


# --- the rounding rule ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "decimals", "charted"),
    [
        (40.4, 0, 40.0),
        (40.5, 0, 41.0),
        (40.6, 0, 41.0),
        (90.4, 0, 90.0),
        (90.5, 0, 91.0),
        (35.04, 1, 35.0),
        (35.05, 1, 35.1),  # 35.05 is 35.0499999... in binary: still half up
        (35.06, 1, 35.1),
        (36.05, 1, 36.1),
        (38.05, 1, 38.1),
        (39.05, 1, 39.1),
        (39.04, 1, 39.0),
        (0.05, 1, 0.1),
        (-0.5, 0, 0.0),  # half up is towards +inf
        (math.inf, 1, math.inf),
        (-math.inf, 0, -math.inf),
    ],
)
def test_recorded_rounds_half_up_alike_for_floats_and_arrays(
    value: float, decimals: int, charted: float
) -> None:
    assert recorded(value, decimals) == charted
    assert recorded_many(np.array([value]), decimals).tolist() == [charted]


def test_recorded_keeps_nan() -> None:
    assert math.isnan(recorded(math.nan, 1))
    assert np.isnan(recorded_many(np.array([math.nan]), 0)[0])


@given(st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0, 1]))
@settings(max_examples=300, derandomize=True)
def test_recorded_float_equals_recorded_array(value: float, decimals: int) -> None:
    assert recorded(value, decimals) == recorded_many(np.array([value]), decimals)[0]


def test_shock_index_warning_reads_the_feature_ratio(features: ClinicalFeatures) -> None:
    """The `shock_index` warning fires exactly when the model's shock index exceeds 1.0."""
    pairs = [(hr, sbp) for hr in (59.0, 90.0, 90.4, 90.5, 100.0, 131.0) for sbp in (60.0, 90.0)]
    pairs += [(90.0 + 1e-12, 90.0), (90.0, 90.0 + 1e-12)]
    records = [make_patient(heart_rate=hr, systolic_bp=sbp, diastolic_bp=50) for hr, sbp in pairs]
    names = features.get_feature_names_out().tolist()
    cols = build_columns(records, ED_COHORT.features)
    ratio = features.transform_columns(cols)[:, names.index("shock_index")]
    fired = ["shock_index" in {w.code for w in evaluate(r).warnings} for r in records]
    assert fired == (ratio > 1.0).tolist()


# --- the response on charted values (hand-computed) ---------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "points"),
    [
        ("heart_rate", 40.4, 3),  # charted 40
        ("heart_rate", 40.5, 1),  # charted 41
        ("heart_rate", 90.4, 0),  # charted 90
        ("heart_rate", 90.5, 1),  # charted 91
        ("temperature", 35.04, 3),  # charted 35.0
        ("temperature", 35.05, 1),  # charted 35.1 (35.05 is 35.0499... in binary)
        ("temperature", 39.05, 2),  # charted 39.1
        ("respiratory_rate", 24.5, 3),  # charted 25
        ("systolic_bp", 90.5, 2),  # charted 91
        ("spo2", 95.5, 0),  # charted 96
        ("glasgow", 14.5, 0),  # charted 15: Alert
        ("glasgow", 14.4, 3),  # charted 14
    ],
)
def test_news2_scores_the_charted_value(field: str, value: float, points: int) -> None:
    assert evaluate(normal(**{field: value})).news2_score == points


@pytest.mark.parametrize(
    ("overrides", "code", "message"),
    [
        (dict(heart_rate=40.4), "bradycardia", "Heart rate 40 /min ≤ 40 /min"),
        (dict(heart_rate=40.5), "bradycardia", None),
        (dict(heart_rate=130.4, systolic_bp=140), "tachycardia", None),
        (dict(heart_rate=130.5, systolic_bp=140), "tachycardia", "Heart rate 131 /min > 130"),
        (dict(temperature=39.04), "hyperthermia", None),
        (dict(temperature=39.05), "hyperthermia", "Temperature 39.1 °C > 39 °C"),
        (dict(temperature=39.95), "hyperthermia", "Temperature 40 °C > 39 °C"),
    ],
)
def test_news2_edge_warnings_read_the_charted_value(
    overrides: dict[str, Any], code: str, message: str | None
) -> None:
    """Warnings on a NEWS2 band edge fire exactly when the chart's band scores."""
    fired = {w.code: w for w in evaluate(normal(**overrides)).warnings}
    if message is None:
        assert code not in fired
    else:
        assert message in fired[code].message
    if code == "hyperthermia" and message and "40 °C" in message:
        assert fired[code].severity == "high"
