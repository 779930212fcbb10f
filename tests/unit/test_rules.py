"""NEWS2 (RCP 2017) and clinical warnings, against hand-computed examples."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from app.serving.rules import (
    THRESHOLD_RULES,
    evaluate,
    news2,
    news2_many,
    warnings_many,
)
from train_pipeline.features.news2 import NEWS2_VITALS, News2Parameter

NORMAL: dict[str, Any] = {
    "respiratory_rate": 16,
    "spo2": 98,
    "systolic_bp": 120,
    "diastolic_bp": 75,
    "heart_rate": 70,
    "temperature": 37.0,
    "glasgow": 15,
}


def rec(**overrides: Any) -> dict[str, Any]:
    return {**NORMAL, **overrides}


# (parameter, value, NEWS2 points) at each band edge of RCP 2017 chart 1 (SpO2 scale 1, air).
EDGES = [
    ("respiratory_rate", 8, 3),
    ("respiratory_rate", 9, 1),
    ("respiratory_rate", 11, 1),
    ("respiratory_rate", 12, 0),
    ("respiratory_rate", 20, 0),
    ("respiratory_rate", 21, 2),
    ("respiratory_rate", 24, 2),
    ("respiratory_rate", 25, 3),
    ("spo2", 91, 3),
    ("spo2", 92, 2),
    ("spo2", 93, 2),
    ("spo2", 94, 1),
    ("spo2", 95, 1),
    ("spo2", 96, 0),
    ("systolic_bp", 90, 3),
    ("systolic_bp", 91, 2),
    ("systolic_bp", 100, 2),
    ("systolic_bp", 101, 1),
    ("systolic_bp", 110, 1),
    ("systolic_bp", 111, 0),
    ("systolic_bp", 219, 0),
    ("systolic_bp", 220, 3),
    ("heart_rate", 40, 3),
    ("heart_rate", 41, 1),
    ("heart_rate", 50, 1),
    ("heart_rate", 51, 0),
    ("heart_rate", 90, 0),
    ("heart_rate", 91, 1),
    ("heart_rate", 110, 1),
    ("heart_rate", 111, 2),
    ("heart_rate", 130, 2),
    ("heart_rate", 131, 3),
    ("temperature", 35.0, 3),
    ("temperature", 35.1, 1),
    ("temperature", 36.0, 1),
    ("temperature", 36.1, 0),
    ("temperature", 38.0, 0),
    ("temperature", 38.1, 1),
    ("temperature", 39.0, 1),
    ("temperature", 39.1, 2),
    ("glasgow", 15, 0),
    ("glasgow", 14, 3),
    ("glasgow", 3, 3),
]


@pytest.mark.parametrize(
    ("field", "value", "points"), EDGES, ids=[f"{f}={v}->{p}" for f, v, p in EDGES]
)
def test_news2_parameter_bands(field: str, value: float, points: int) -> None:
    score, _, _ = news2(rec(**{field: value}))
    assert score == points


TABLES: dict[str, News2Parameter] = {p.field: p for p in NEWS2_VITALS}


def _points(p: News2Parameter, value: float) -> int:
    """Independent oracle: half up on the value's shortest text (Decimal), then the bands."""
    if math.isfinite(value):
        step = Decimal(1).scaleb(-p.decimals)
        value = float(Decimal(repr(value)).quantize(step, rounding=ROUND_HALF_UP))
    return p.points[sum(value > upper for upper in p.uppers)]


@pytest.mark.parametrize("field", list(TABLES))
def test_news2_points_between_and_around_the_edges(field: str) -> None:
    """Recorded values (rounded half up to the chart's precision, then looked up): every
    bound, one ulp either side, .4 / .5 / .6 of the recorded unit either side, infinities."""
    p = TABLES[field]
    unit = 10.0**-p.decimals
    values = [-math.inf, math.inf, 0.0]
    for upper in p.uppers:
        values += [upper, math.nextafter(upper, math.inf), math.nextafter(upper, -math.inf)]
        values += [round(upper + k * unit, 4) for k in (-0.6, -0.5, -0.4, 0.4, 0.5, 0.6, 1.5)]
    for value in values:
        assert news2(rec(**{field: value}))[0] == _points(p, value), value


# Whole patients, scored by hand from the RCP 2017 chart.
PATIENTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("all_normal", {}, 0, "low"),
    # RR 24 (2) + SpO2 94 (1) + SBP 95 (2) + HR 118 (2) + T 38.6 (1) + alert (0) = 8
    (
        "septic",
        dict(respiratory_rate=24, spo2=94, systolic_bp=95, heart_rate=118, temperature=38.6),
        8,
        "high",
    ),
    # RR 22 (2) + SpO2 95 (1) + SBP 105 (1) + HR 95 (1) = 5
    ("urgent", dict(respiratory_rate=22, spo2=95, systolic_bp=105, heart_rate=95), 5, "medium"),
    # HR 135 alone: 3 in a single parameter -> low-medium
    ("single_red", dict(heart_rate=135), 3, "low-medium"),
    # RR 21 (2) + SpO2 94 (1) + HR 95 (1) = 4, no single 3
    ("four", dict(respiratory_rate=21, spo2=94, heart_rate=95), 4, "low"),
    # SpO2 91 (3) + RR 21 (2) + T 38.5 (1) = 6: medium outranks the single red score
    ("six", dict(spo2=91, respiratory_rate=21, temperature=38.5), 6, "medium"),
    # new confusion (GCS 13: 3) + RR 25 (3) + SBP 88 (3) + HR 132 (3) + SpO2 89 (3) + T 34.5 (3)
    (
        "maximal",
        dict(
            glasgow=13,
            respiratory_rate=25,
            systolic_bp=88,
            heart_rate=132,
            spo2=89,
            temperature=34.5,
        ),
        18,
        "high",
    ),
    # GCS 14 alone = 3 -> low-medium
    ("confused", dict(glasgow=14), 3, "low-medium"),
    # 7 exactly: RR 25 (3) + SpO2 93 (2) + T 39.5 (2)
    ("seven", dict(respiratory_rate=25, spo2=93, temperature=39.5), 7, "high"),
]


@pytest.mark.parametrize(
    ("overrides", "score", "band"), [p[1:] for p in PATIENTS], ids=[p[0] for p in PATIENTS]
)
def test_news2_aggregate_and_band(overrides: dict[str, Any], score: int, band: str) -> None:
    result = evaluate(rec(**overrides))
    assert (result.news2_score, result.news2_band) == (score, band)


@pytest.mark.parametrize(
    "missing", ["respiratory_rate", "spo2", "systolic_bp", "heart_rate", "temperature"]
)
def test_news2_needs_every_vital_sign(missing: str) -> None:
    r = rec()
    del r[missing]
    assert evaluate(r).news2_score is None
    assert evaluate({**rec(), missing: None}).news2_band is None


def test_news2_without_gcs_scores_alert_and_says_so() -> None:
    r = rec()
    del r["glasgow"]
    result = evaluate(r)
    assert result.news2_score == 0
    assert [w.code for w in result.warnings] == ["news2_consciousness_assumed"]


# (id, overrides, warning code, severity, message fragment) -- and the value just on the safe side
WARNINGS = [
    ("hypoxia", dict(spo2=88), "hypoxia", "high", "SpO2 88 % < 90 %"),
    ("severe_hypoxia", dict(spo2=82), "hypoxia", "critical", "SpO2 82 % < 90 %"),
    (
        "hypotension",
        dict(systolic_bp=85, diastolic_bp=50),
        "hypotension",
        "high",
        "SBP 85 mmHg < 90 mmHg",
    ),
    (
        "shock_index",
        dict(heart_rate=110, systolic_bp=100),
        "shock_index",
        "high",
        "Shock index 1.10 (HR 110 / SBP 100) > 1.0",
    ),
    (
        "tachycardia",
        dict(heart_rate=140, systolic_bp=150),
        "tachycardia",
        "medium",
        "Heart rate 140 /min > 130 /min",
    ),
    ("bradycardia", dict(heart_rate=38), "bradycardia", "high", "Heart rate 38 /min ≤ 40 /min"),
    (
        "hyperthermia",
        dict(temperature=39.4),
        "hyperthermia",
        "medium",
        "Temperature 39.4 °C > 39 °C",
    ),
    ("hyperpyrexia", dict(temperature=40.5), "hyperthermia", "high", "40.5 °C"),
    ("hypothermia", dict(temperature=34.2), "hypothermia", "high", "Temperature 34.2 °C < 35 °C"),
    (
        "hyperglycaemia",
        dict(glucose=25.3),
        "hyperglycaemia",
        "high",
        "Glucose 25.3 mmol/L > 20 mmol/L",
    ),
    ("hypoglycaemia", dict(glucose=3.1), "hypoglycaemia", "high", "Glucose 3.1 mmol/L < 4"),
    ("lactate", dict(lactate=4.0), "hyperlactataemia", "high", "Lactate 4 mmol/L ≥ 4 mmol/L"),
    ("troponin_99th", dict(troponin=30), "troponin_elevated", "medium", "Troponin 30 ng/L > 14"),
    ("troponin_rule_in", dict(troponin=52), "troponin_elevated", "high", "Troponin 52 ng/L ≥ 52"),
    ("gcs", dict(glasgow=8), "low_gcs", "critical", "GCS 8 ≤ 8"),
    (
        "news2_7",
        dict(respiratory_rate=25, spo2=93, temperature=39.5),
        "news2_high",
        "critical",
        "NEWS2 7 ≥ 7",
    ),
    (
        "news2_5",
        dict(respiratory_rate=22, spo2=95, systolic_bp=105, heart_rate=95),
        "news2_medium",
        "high",
        "NEWS2 5 ≥ 5",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "code", "severity", "fragment"),
    [w[1:] for w in WARNINGS],
    ids=[w[0] for w in WARNINGS],
)
def test_warning_fires_with_value_in_message(
    overrides: dict[str, Any], code: str, severity: str, fragment: str
) -> None:
    fired = {w.code: w for w in evaluate(rec(**overrides)).warnings}
    assert code in fired
    assert fired[code].severity == severity
    assert fragment in fired[code].message


SAFE_SIDE = [
    ("spo2_90", dict(spo2=90), "hypoxia"),
    ("sbp_90", dict(systolic_bp=90), "hypotension"),
    ("shock_index_1", dict(heart_rate=100, systolic_bp=100), "shock_index"),
    ("hr_130", dict(heart_rate=130, systolic_bp=140), "tachycardia"),
    ("hr_41", dict(heart_rate=41), "bradycardia"),
    ("t_39", dict(temperature=39.0), "hyperthermia"),
    ("t_35", dict(temperature=35.0), "hypothermia"),
    ("glucose_20", dict(glucose=20), "hyperglycaemia"),
    ("glucose_4", dict(glucose=4), "hypoglycaemia"),
    ("lactate_3_9", dict(lactate=3.9), "hyperlactataemia"),
    ("troponin_14", dict(troponin=14), "troponin_elevated"),
    ("gcs_9", dict(glasgow=9), "low_gcs"),
]


@pytest.mark.parametrize(
    ("overrides", "code"), [s[1:] for s in SAFE_SIDE], ids=[s[0] for s in SAFE_SIDE]
)
def test_warning_silent_at_threshold(overrides: dict[str, Any], code: str) -> None:
    assert code not in {w.code for w in evaluate(rec(**overrides)).warnings}


def test_normal_patient_has_no_warning() -> None:
    assert evaluate(rec()).warnings == []


def test_warnings_most_severe_first() -> None:
    result = evaluate(rec(spo2=88, glasgow=7, temperature=39.4))
    ranks = {"low": 0, "medium": 1, "high": 2, "critical": 3}
    severities = [ranks[w.severity] for w in result.warnings]
    assert severities == sorted(severities, reverse=True)
    assert result.warnings[0].severity == "critical"


def test_insufficient_record_warning_names_missing_critical_fields() -> None:
    result = evaluate(
        {"age": 60, "sex": "F", "heart_rate": 90, "systolic_bp": 120, "diastolic_bp": 80}
    )
    fired = {w.code: w for w in result.warnings}
    assert result.news2_score is None
    message = fired["insufficient_data"].message
    for name in ("respiratory_rate", "temperature", "spo2"):
        assert name in message
    assert "heart_rate" not in message


def test_low_quality_record_has_no_insufficient_warning() -> None:
    r = rec()
    del r["spo2"]
    assert "insufficient_data" not in {w.code for w in evaluate(r).warnings}


def _edge_records() -> list[dict[str, Any]]:
    """Every vital at and around each NEWS2 band edge, with and without GCS, and each vital
    missing in turn (None, absent, NaN)."""
    out: list[dict[str, Any]] = []
    for field, p in TABLES.items():
        half = 0.5 * 10.0**-p.decimals
        for upper in p.uppers:
            for value in (
                upper - 0.1,
                upper,
                upper + 0.1,
                math.nextafter(upper, math.inf),
                round(upper + half, 4),
                round(upper + half * 0.8, 4),
            ):
                out.append(rec(**{field: value}))
                out.append(rec(**{field: value, "glasgow": 14}))
                out.append({k: v for k, v in rec(**{field: value}).items() if k != "glasgow"})
        out.append(rec(**{field: None}))
        out.append(rec(**{field: math.nan}))
        out.append({k: v for k, v in rec().items() if k != field})
    out.append(rec(glasgow=math.nan))
    out.extend(rec(**patient) for _, patient, _, _ in PATIENTS)
    return out


def test_news2_many_equals_news2_on_every_edge() -> None:
    """The vectorised form (batches) gives what `news2` gives record by record."""
    from app.serving.predictor import build_columns
    from train_pipeline.contract import ED_COHORT

    records = _edge_records()
    cols = build_columns(records, ED_COHORT.features)
    assert news2_many(cols) == [news2(r) for r in records]
    assert {band for _, band, _ in news2_many(cols)} >= {
        "low",
        "low-medium",
        "medium",
        "high",
        None,
    }


# Every threshold of THRESHOLD_RULES, and the numbers just around it.
PROBES = sorted(
    {
        v + d
        for v in (0.5, 4, 8, 14, 20, 35, 39, 40, 52, 85, 90, 100, 130)
        for d in (-1e-9, 0.0, 1e-9, -0.5, 0.5)
    }
)


def _threshold_records() -> list[dict[str, Any]]:
    out = _edge_records()
    for rule in THRESHOLD_RULES:
        for field in rule.fields:
            out.extend(rec(**{field: v}) for v in PROBES)
            out.append(rec(**{field: math.nan}))
            out.append({k: v for k, v in rec().items() if k != field})
    for hr in (89.0, 90.0, 90.0 + 1e-12, 91.0, 150.0):  # shock index around HR = SBP = 90
        out.append(rec(heart_rate=hr, systolic_bp=90.0, diastolic_bp=60.0))
    return [*out, {}, {"spo2": 80.0, "glucose": 30.0}]  # insufficient, with warnings too


def test_warnings_many_equals_evaluate_on_every_threshold() -> None:
    """The vectorised warnings (batches) are `evaluate`'s, in the same order, record by record:
    every rule's threshold and its neighbours, absent and NaN values, the NEWS2 edges."""
    from app.serving.predictor import build_columns
    from app.serving.quality import assess
    from train_pipeline.contract import ED_COHORT

    records = _threshold_records()
    cols = build_columns(records, ED_COHORT.features)
    qualities = [assess(r) for r in records]
    expected = [
        [{"code": w.code, "severity": w.severity, "message": w.message} for w in result.warnings]
        for result in (evaluate(r, q) for r, q in zip(records, qualities, strict=True))
    ]
    assert warnings_many(cols, qualities, news2_many(cols)) == expected
    fired = {w["code"] for ws in expected for w in ws}
    assert fired >= {rule.code for rule in THRESHOLD_RULES} | {"insufficient_data"}
