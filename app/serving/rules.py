"""Deterministic clinical rules: NEWS2 (RCP 2017) and threshold warnings, independent of the model.

Thresholds cite their source inline. Messages carry the value and the threshold, never anything
that identifies the patient.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.serving.quality import INSUFFICIENT_CRITICAL_MISSING, QualityAssessment, assess
from train_pipeline.contract import ED_COHORT

Severity = Literal["low", "medium", "high", "critical"]
SEVERITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
CRITICAL = ED_COHORT.names_in_tier("critical")
_CRITICAL_NEEDED = len(CRITICAL) - INSUFFICIENT_CRITICAL_MISSING + 1


@dataclass(frozen=True)
class ClinicalWarning:
    """One rule that fired: machine code, severity, and a human message with the value."""

    code: str
    severity: Severity
    message: str


Warning = ClinicalWarning  # the name interfaces.md uses (shadows the builtin here only)


@dataclass(frozen=True)
class RulesResult:
    """NEWS2 aggregate and band (None when a vital sign is missing) and the warnings fired."""

    news2_score: int | None
    news2_band: str | None
    warnings: list[ClinicalWarning]


# --- NEWS2, Royal College of Physicians 2017, chart 1 (SpO2 scale 1, patient assumed on air) ---
# Each table: (upper bound inclusive, points), checked in order; the last row catches the rest.
NEWS2_RESPIRATORY_RATE = ((8, 3), (11, 1), (20, 0), (24, 2), (float("inf"), 3))
NEWS2_SPO2_SCALE1 = ((91, 3), (93, 2), (95, 1), (float("inf"), 0))
NEWS2_SYSTOLIC_BP = ((90, 3), (100, 2), (110, 1), (219, 0), (float("inf"), 3))
NEWS2_PULSE = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (float("inf"), 3))
NEWS2_TEMPERATURE = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (float("inf"), 2))
NEWS2_AIR_POINTS = 0  # "air" scores 0, supplemental oxygen 2: the record has no oxygen field.
NEWS2_NEW_CONFUSION_POINTS = 3  # ACVPU: anything but Alert scores 3; here GCS < 15.

# Aggregate bands (RCP 2017 "clinical risk"): 0-4 low, a red score of 3 in any single
# parameter low-medium, 5-6 medium (urgent response), >= 7 high (emergency response).
NEWS2_MEDIUM = 5
NEWS2_HIGH = 7

_NEWS2_VITALS = {
    "respiratory_rate": NEWS2_RESPIRATORY_RATE,
    "spo2": NEWS2_SPO2_SCALE1,
    "systolic_bp": NEWS2_SYSTOLIC_BP,
    "heart_rate": NEWS2_PULSE,
    "temperature": NEWS2_TEMPERATURE,
}


# Per vital: the tables' upper bounds and points, for `bisect_left` (the first row whose upper
# bound the value does not exceed).
_NEWS2_BOUNDS = tuple(
    (name, [upper for upper, _ in table], [points for _, points in table])
    for name, table in _NEWS2_VITALS.items()
)


def news2(record: Mapping[str, Any]) -> tuple[int | None, str | None, bool]:
    """NEWS2 aggregate score and band; ``(None, None, False)`` if a vital sign is missing.

    Consciousness comes from the Glasgow scale (GCS < 15 counts as not Alert, 3 points); when
    GCS is absent the patient is scored as Alert and the third value is True so the caller can
    say so.
    """
    parts: list[int] = []
    for name, uppers, points in _NEWS2_BOUNDS:
        value = record.get(name)
        if value is None or value != value:  # absent (NaN too, as the feature columns see it)
            return None, None, False
        parts.append(points[bisect_left(uppers, float(value))])
    gcs = record.get("glasgow")
    if gcs is not None and gcs != gcs:
        gcs = None
    parts.append(NEWS2_NEW_CONFUSION_POINTS if gcs is not None and gcs < 15 else 0)
    parts.append(NEWS2_AIR_POINTS)
    score = sum(parts)
    if score >= NEWS2_HIGH:
        band = "high"
    elif score >= NEWS2_MEDIUM:
        band = "medium"
    elif 3 in parts:
        band = "low-medium"
    else:
        band = "low"
    return score, band, gcs is None


News2Result = tuple[int | None, str | None, bool]
"""What `news2` returns: score, band, and whether consciousness was assumed (GCS absent)."""


def news2_many(columns: Mapping[str, Any]) -> list[News2Result]:
    """`news2` of every record, from its feature columns (numbers as float arrays, NaN when
    absent): the same tables, one `np.searchsorted` (= `bisect_left`) per vital sign."""
    gcs = np.asarray(columns["glasgow"], dtype=float)
    score = np.zeros(len(gcs), dtype=np.int64)
    valid = np.ones(len(gcs), dtype=bool)
    red = np.zeros(len(gcs), dtype=bool)  # a single parameter scoring 3
    for name, uppers, points in _NEWS2_BOUNDS:
        value = np.asarray(columns[name], dtype=float)
        valid &= ~np.isnan(value)
        index = np.searchsorted(uppers, value, side="left").clip(max=len(points) - 1)
        part = np.asarray(points)[index]
        score += part
        red |= part == 3
    # GCS < 15: not Alert (NaN compares False: scored as Alert); then the air/oxygen part
    for part in (np.where(gcs < 15, NEWS2_NEW_CONFUSION_POINTS, 0), NEWS2_AIR_POINTS):
        score += part
        red |= np.equal(part, 3)
    band = np.where(
        score >= NEWS2_HIGH,
        "high",
        np.where(score >= NEWS2_MEDIUM, "medium", np.where(red, "low-medium", "low")),
    )
    return [
        (s, b, a) if ok else (None, None, False)
        for s, b, a, ok in zip(
            score.tolist(), band.tolist(), np.isnan(gcs).tolist(), valid.tolist(), strict=True
        )
    ]


def _g(value: float) -> str:
    return f"{value:g}"


# hs-cTnT assay assumed (Roche Elecsys, ng/L): 99th percentile upper reference limit 14 ng/L;
# ESC 2020 NSTE-ACS 0 h/1 h algorithm rules in at >= 52 ng/L on the first sample.
TROPONIN_URL_99TH = 14.0
TROPONIN_RULE_IN = 52.0


@dataclass(frozen=True)
class ThresholdRule:
    """A warning on measured values: ``fires`` takes the values of ``fields`` (floats, NaN when
    absent) and works alike on numbers and on NumPy columns (NaN compares False); ``severity``
    and ``message`` take the numbers of a record it fired on."""

    code: str
    fields: tuple[str, ...]
    fires: Callable[..., Any]
    severity: Callable[..., Severity]
    message: Callable[..., str]


def _fixed(severity: Severity) -> Callable[..., Severity]:
    return lambda *_: severity


# In the order they are reported (before the sort by severity).
THRESHOLD_RULES: tuple[ThresholdRule, ...] = (
    # BTS 2017 oxygen guideline: SpO2 < 90 % on air is significant hypoxaemia.
    ThresholdRule(
        "hypoxia",
        ("spo2",),
        lambda s: s < 90,
        lambda s: "critical" if s < 85 else "high",
        lambda s: f"SpO2 {_g(s)} % < 90 %",
    ),
    # SBP < 90 mmHg: hypotension (Sepsis-3 / qSOFA uses <= 100 as the softer marker).
    ThresholdRule(
        "hypotension",
        ("systolic_bp",),
        lambda sbp: sbp < 90,
        _fixed("high"),
        lambda sbp: f"SBP {_g(sbp)} mmHg < 90 mmHg",
    ),
    # Shock index HR / SBP > 1.0 (Allgöwer): occult shock / haemodynamic instability. For a
    # positive SBP, HR / SBP > 1.0 is HR > SBP (a correctly rounded quotient of x > y > 0 is
    # never 1.0), which needs no division.
    ThresholdRule(
        "shock_index",
        ("heart_rate", "systolic_bp"),
        lambda hr, sbp: (sbp > 0) & (hr > sbp),
        _fixed("high"),
        lambda hr, sbp: f"Shock index {hr / sbp:.2f} (HR {_g(hr)} / SBP {_g(sbp)}) > 1.0",
    ),
    # HR > 130: NEWS2 red zone (>= 131 scores 3); HR <= 40 likewise.
    ThresholdRule(
        "tachycardia",
        ("heart_rate",),
        lambda hr: hr > 130,
        _fixed("medium"),
        lambda hr: f"Heart rate {_g(hr)} /min > 130 /min",
    ),
    ThresholdRule(
        "bradycardia",
        ("heart_rate",),
        lambda hr: hr <= 40,
        _fixed("high"),
        lambda hr: f"Heart rate {_g(hr)} /min ≤ 40 /min",
    ),
    # Temperature: NEWS2 scores >= 39.1 °C 2 points; hypothermia is core temperature < 35 °C.
    ThresholdRule(
        "hyperthermia",
        ("temperature",),
        lambda t: t > 39.0,
        lambda t: "high" if t >= 40.0 else "medium",
        lambda t: f"Temperature {_g(t)} °C > 39 °C",
    ),
    ThresholdRule(
        "hypothermia",
        ("temperature",),
        lambda t: t < 35.0,
        _fixed("high"),
        lambda t: f"Temperature {_g(t)} °C < 35 °C",
    ),
    # Glucose > 20 mmol/L: JBDS hyperglycaemic emergencies (check ketones: DKA / HHS).
    ThresholdRule(
        "hyperglycaemia",
        ("glucose",),
        lambda g: g > 20,
        _fixed("high"),
        lambda g: f"Glucose {_g(g)} mmol/L > 20 mmol/L",
    ),
    # Glucose < 4 mmol/L: hypoglycaemia ("four is the floor", JBDS).
    ThresholdRule(
        "hypoglycaemia",
        ("glucose",),
        lambda g: g < 4,
        _fixed("high"),
        lambda g: f"Glucose {_g(g)} mmol/L < 4 mmol/L",
    ),
    # Lactate >= 4 mmol/L: Surviving Sepsis Campaign 2021 (tissue hypoperfusion, shock).
    ThresholdRule(
        "hyperlactataemia",
        ("lactate",),
        lambda lac: lac >= 4,
        _fixed("high"),
        lambda lac: f"Lactate {_g(lac)} mmol/L ≥ 4 mmol/L",
    ),
    ThresholdRule(
        "troponin_elevated",
        ("troponin",),
        lambda t: t >= TROPONIN_RULE_IN,
        _fixed("high"),
        lambda t: f"Troponin {_g(t)} ng/L ≥ {_g(TROPONIN_RULE_IN)} ng/L (hs-cTnT rule-in)",
    ),
    ThresholdRule(
        "troponin_elevated",
        ("troponin",),
        lambda t: (t > TROPONIN_URL_99TH) & (t < TROPONIN_RULE_IN),
        _fixed("medium"),
        lambda t: f"Troponin {_g(t)} ng/L > {_g(TROPONIN_URL_99TH)} ng/L (hs-cTnT 99th pct)",
    ),
    # GCS <= 8: unable to protect the airway ("GCS 8, intubate").
    ThresholdRule(
        "low_gcs",
        ("glasgow",),
        lambda gcs: gcs <= 8,
        _fixed("critical"),
        lambda gcs: f"GCS {_g(gcs)} ≤ 8: airway at risk",
    ),
)
_NAN = float("nan")


def _threshold_warnings(r: Mapping[str, Any]) -> list[ClinicalWarning]:
    out: list[ClinicalWarning] = []
    for rule in THRESHOLD_RULES:
        values = [_NAN if (v := r.get(f)) is None else v for f in rule.fields]
        if rule.fires(*values):
            out.append(ClinicalWarning(rule.code, rule.severity(*values), rule.message(*values)))
    return out


def _news2_warnings(
    score: int | None, band: str | None, gcs_assumed: bool
) -> list[ClinicalWarning]:
    if score is None:
        return []
    out: list[ClinicalWarning] = []
    if score >= NEWS2_HIGH:
        out.append(
            ClinicalWarning(
                "news2_high", "critical", f"NEWS2 {score} ≥ {NEWS2_HIGH}: emergency response"
            )
        )
    elif score >= NEWS2_MEDIUM:
        out.append(
            ClinicalWarning(
                "news2_medium", "high", f"NEWS2 {score} ≥ {NEWS2_MEDIUM}: urgent response"
            )
        )
    elif band == "low-medium":
        out.append(
            ClinicalWarning(
                "news2_red_parameter",
                "medium",
                f"NEWS2 {score}: one parameter scores 3, urgent review",
            )
        )
    if gcs_assumed:
        out.append(
            ClinicalWarning(
                "news2_consciousness_assumed",
                "low",
                "NEWS2 scored the patient as Alert: GCS not given",
            )
        )
    return out


def evaluate(
    record: Mapping[str, Any],
    quality: QualityAssessment | None = None,
    news2_result: News2Result | None = None,
) -> RulesResult:
    """Run every rule on one canonical record.

    Args:
        record: canonical-name dict (absent or None = missing).
        quality: the record's assessment, if already computed (avoids doing it twice).
        news2_result: its `news2`, if already computed (`news2_many` for a batch).

    Returns:
        NEWS2 score and band, and the warnings sorted by severity (most severe first).
    """
    quality = quality or assess(record)
    score, band, gcs_assumed = news2_result or news2(record)
    warnings = [*_threshold_warnings(record), *_news2_warnings(score, band, gcs_assumed)]
    if quality.quality == "insufficient":
        warnings.append(_insufficient(quality))
    warnings.sort(key=lambda w: -SEVERITY_RANK[w.severity])
    return RulesResult(score, band, warnings)


def _insufficient(quality: QualityAssessment) -> ClinicalWarning:
    missing = quality.missing_critical
    return ClinicalWarning(
        "insufficient_data",
        "high",
        f"No prediction: {len(missing)} critical fields missing ({', '.join(missing)}); "
        f"at least {_CRITICAL_NEEDED} of the {len(CRITICAL)} are needed",
    )


def warnings_many(
    columns: Mapping[str, Any],
    qualities: Sequence[QualityAssessment],
    news2_results: Sequence[News2Result],
) -> list[list[dict[str, str]]]:
    """The warnings of `evaluate` for every record, as response blocks, from its feature
    columns (numbers as float arrays, NaN when absent): each `THRESHOLD_RULES` entry is one
    NumPy comparison over the batch; only the records it fired on are formatted."""
    fired: list[list[ClinicalWarning]] = [[] for _ in qualities]
    with np.errstate(invalid="ignore"):
        for rule in THRESHOLD_RULES:
            cols = [np.asarray(columns[f], dtype=float) for f in rule.fields]
            hits = np.flatnonzero(rule.fires(*cols))
            if not len(hits):
                continue
            for i, values in zip(
                hits.tolist(), zip(*(c[hits].tolist() for c in cols), strict=True), strict=True
            ):
                fired[i].append(
                    ClinicalWarning(rule.code, rule.severity(*values), rule.message(*values))
                )
    out: list[list[dict[str, str]]] = []
    for warnings, quality, (score, band, assumed) in zip(
        fired, qualities, news2_results, strict=True
    ):
        if score is not None and (score >= NEWS2_MEDIUM or band == "low-medium" or assumed):
            warnings += _news2_warnings(score, band, assumed)
        if quality.quality == "insufficient":
            warnings.append(_insufficient(quality))
        if len(warnings) > 1:
            warnings.sort(key=lambda w: -SEVERITY_RANK[w.severity])
        out.append(
            [{"code": w.code, "severity": w.severity, "message": w.message} for w in warnings]
        )
    return out
