"""Deterministic clinical rules: NEWS2 (RCP 2017) and threshold warnings, independent of the model.

Thresholds cite their source inline. Messages carry the value and the threshold, never anything
that identifies the patient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from app.serving.quality import INSUFFICIENT_CRITICAL_MISSING, QualityAssessment, assess
from train_pipeline.contract import ED_COHORT
from train_pipeline.features.news2 import (
    CONSCIOUSNESS,
    NEWS2_AIR_POINTS,
    NEWS2_HIGH,
    NEWS2_MEDIUM,
    NEWS2_PARAMETERS,
    NEWS2_RED_POINTS,
    NEWS2_VITALS,
    PULSE,
    TEMPERATURE,
    News2Block,
    news2_band,
    news2_bands,
    recorded,
    recorded_many,
)

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


# --- NEWS2, Royal College of Physicians 2017 -------------------------------------------------
# The chart, its rounding of values to their recorded precision, and the aggregate bands are the
# one table of `train_pipeline.features.news2`, which the model's NEWS2 features read too.
News2Result = tuple[int | None, str | None, bool]
"""What `news2` returns: score, band, and whether consciousness was assumed (GCS absent)."""


_NEWS2_BLOCK = News2Block(range(len(NEWS2_PARAMETERS)), NEWS2_PARAMETERS)
_GCS = NEWS2_PARAMETERS.index(CONSCIOUSNESS)
_VITALS = [k for k, p in enumerate(NEWS2_PARAMETERS) if p in NEWS2_VITALS]


def news2(record: Mapping[str, Any]) -> News2Result:
    """NEWS2 aggregate score and band; ``(None, None, False)`` if a vital sign is missing.

    Consciousness comes from the Glasgow scale (GCS < 15 counts as not Alert, 3 points); when
    GCS is absent the patient is scored as Alert and the third value is True so the caller can
    say so.
    """
    parts: list[float] = []
    for parameter in NEWS2_VITALS:
        value = record.get(parameter.field)
        if value is None or value != value:  # absent (NaN too, as the feature columns see it)
            return None, None, False
        parts.append(parameter.score(float(value)))
    gcs = record.get(CONSCIOUSNESS.field)
    assumed = gcs is None or gcs != gcs
    parts.append(CONSCIOUSNESS.score(float(gcs)) if gcs is not None and not assumed else 0.0)
    score = int(sum(parts)) + NEWS2_AIR_POINTS
    return score, news2_band(score, NEWS2_RED_POINTS in parts), assumed


def news2_many(columns: Mapping[str, Any]) -> list[News2Result]:
    """`news2` of every record, from its feature columns (numbers as float arrays, NaN when
    absent): the sub-scores of the same `News2Block` the model's NEWS2 features are read from
    (one block of NumPy calls for every parameter of every record)."""
    values = np.column_stack([np.asarray(columns[p.field], dtype=float) for p in NEWS2_PARAMETERS])
    parts, total = _NEWS2_BLOCK.scores(values)  # a NaN GCS adds 0: scored as Alert
    missing = np.isnan(parts)
    valid = ~missing[:, _VITALS].any(axis=1)
    red = (parts == NEWS2_RED_POINTS).any(axis=1)  # NaN compares False
    score = total.astype(np.int64) + NEWS2_AIR_POINTS
    band = news2_bands(score, red)
    return [
        (s, b, a) if ok else (None, None, False)
        for s, b, a, ok in zip(
            score.tolist(),
            band.tolist(),
            missing[:, _GCS].tolist(),
            valid.tolist(),
            strict=True,
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
    and ``message`` take the numbers of a record it fired on. With ``charted``, a rule whose
    threshold is a NEWS2 band edge reads the values as the NEWS2 chart records them (rounded
    half up, `train_pipeline.features.news2.recorded`), so it fires exactly when that band
    scores."""

    code: str
    fields: tuple[str, ...]
    fires: Callable[..., Any]
    severity: Callable[..., Severity]
    message: Callable[..., str]
    charted: bool = False


_DECIMALS = {p.field: p.decimals for p in NEWS2_PARAMETERS}
# Edges of the NEWS2 bands the vital-sign warnings repeat (RCP 2017 chart 1).
_PULSE_LOW_RED = PULSE.uppers[0]  # <= 40 /min scores 3
_PULSE_HIGH_RED = PULSE.uppers[-1]  # > 130 /min scores 3
_TEMPERATURE_HIGH = TEMPERATURE.uppers[-1]  # > 39.0 °C scores 2


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
    # HR > 130: NEWS2 red zone (>= 131 scores 3); HR <= 40 likewise. Charted values: the
    # warning fires exactly when the NEWS2 pulse band scores 3.
    ThresholdRule(
        "tachycardia",
        ("heart_rate",),
        lambda hr: hr > _PULSE_HIGH_RED,
        _fixed("medium"),
        lambda hr: f"Heart rate {_g(hr)} /min > {_g(_PULSE_HIGH_RED)} /min",
        charted=True,
    ),
    ThresholdRule(
        "bradycardia",
        ("heart_rate",),
        lambda hr: hr <= _PULSE_LOW_RED,
        _fixed("high"),
        lambda hr: f"Heart rate {_g(hr)} /min ≤ {_g(_PULSE_LOW_RED)} /min",
        charted=True,
    ),
    # Temperature: NEWS2 scores >= 39.1 °C 2 points (charted, as for the pulse); hypothermia is
    # core temperature < 35 °C (not a NEWS2 edge: the measured value).
    ThresholdRule(
        "hyperthermia",
        ("temperature",),
        lambda t: t > _TEMPERATURE_HIGH,
        lambda t: "high" if t >= 40.0 else "medium",
        lambda t: f"Temperature {_g(t)} °C > {_g(_TEMPERATURE_HIGH)} °C",
        charted=True,
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
        if rule.charted:
            places = [_DECIMALS[f] for f in rule.fields]
            values = [recorded(float(v), d) for v, d in zip(values, places, strict=True)]
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
            if rule.charted:
                places = [_DECIMALS[f] for f in rule.fields]
                cols = [recorded_many(c, d) for c, d in zip(cols, places, strict=True)]
            fires = rule.fires(*cols)
            if not fires.any():  # most rules fire on no record of a small batch
                continue
            hits = fires.nonzero()[0]
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
