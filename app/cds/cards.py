"""A prediction body (DESIGN §4) -> the CDS Hooks card that shows it (CDS Hooks §Card Attributes).

The card's ``uuid`` is the prediction id; the summary names the diagnosis, its probability and
the treatment in under 140 characters; the detail (GitHub-flavoured markdown) gives the warnings,
the top explanation factors in clinical words and what was missing or not usable.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from app.cds.fhir import Unusable
from train_pipeline.contract import ED_COHORT, SYMPTOMS

SUMMARY_MAX = 139
OVERRIDE_SYSTEM = "https://healthpredict.example/cds/override-reason"
# "diagnosis-is-<code>": the clinician names another of the top diagnoses, a full correction.
DIAGNOSIS_IS = "diagnosis-is-"
# Coded override reason -> feedback verdict (None: stored nowhere, see `app.cds.feedback`).
OVERRIDE_REASONS: tuple[tuple[str, str, str | None], ...] = (
    ("wrong-diagnosis", "The diagnosis is wrong", "wrong_diagnosis"),
    ("wrong-treatment", "The treatment is wrong", "wrong_treatment"),
    ("other", "Other reason", None),
)
_SYMPTOM_LABELS = dict(SYMPTOMS)


def indicator(body: dict[str, Any]) -> str:
    """critical: NEWS2 ≥ 7 or a critical warning; warning: NEWS2 5-6 or a high warning (RCP
    2017 NEWS2 response thresholds); else info."""
    score = (body.get("news2") or {}).get("score")
    severities = {w["severity"] for w in body.get("warnings") or ()}
    if (score is not None and score >= 7) or "critical" in severities:
        return "critical"
    if (score is not None and score >= 5) or "high" in severities:
        return "warning"
    return "info"


def source(body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model") or {}
    return {
        "label": (
            f"HealthPredict (diagnosis model v{model.get('diagnosis_version', '?')}, "
            f"treatment model v{model.get('treatment_version', '?')}, {model.get('source', '?')})"
        )
    }


def _percent(probability: float) -> str:
    return f"{probability * 100:.0f} %"


def summary(body: dict[str, Any]) -> str:
    diagnosis, treatment = body["diagnosis"], body["treatment"]
    if diagnosis is None:
        return "HealthPredict: not enough data for a diagnosis"
    text = f"{diagnosis['label']} ({_percent(diagnosis['probability'])})"
    if treatment is not None:
        text += f" → {treatment['label']}"
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def _value_words(name: str, value: Any) -> str:
    if name not in ED_COHORT.feature_names:
        return f"{name} {value}"
    feat = ED_COHORT.feature(name)
    if value is None:
        return f"{feat.description}: not measured"
    if feat.kind == "multilabel":
        labels = [_SYMPTOM_LABELS.get(c, c) for c in value] or ["none reported"]
        return f"Symptoms: {', '.join(labels).lower()}"
    if feat.kind == "boolean":
        return f"{feat.description}: {'yes' if value else 'no'}"
    shown = f"{value:.3g}" if isinstance(value, float) else str(value)
    return f"{feat.description} {shown} {feat.unit}"


def factors(explanation: Sequence[dict[str, Any]] | None, diagnosis: str) -> list[str]:
    """The top explanation factors as sentences a clinician reads."""
    lines = []
    for item in explanation or ():
        towards = "for" if item["contribution"] > 0 else "against"
        lines.append(
            f"{_value_words(item['feature'], item['value'])} (weighs {towards} {diagnosis})"
        )
    return lines


def _missing_lines(body: dict[str, Any], unusable: Sequence[Unusable]) -> list[str]:
    lines = [f"{ED_COHORT.feature(n).description}: not available" for n in body["missing_features"]]
    lines += [f"{u.label}: not used, {u.reason}" for u in unusable]
    return lines


def detail(body: dict[str, Any], unusable: Sequence[Unusable]) -> str:
    """The card's markdown detail."""
    parts = []
    if body["diagnosis"] is None:
        parts.append(
            "Too few vital signs to assess this patient safely: HealthPredict proposes no "
            "diagnosis and no treatment."
        )
    news2 = body.get("news2") or {}
    if news2.get("score") is not None:
        parts.append(f"**NEWS2** {news2['score']} ({news2['band']} risk).")
    sections = (
        ("Warnings", [f"{w['message']} ({w['severity']})" for w in body.get("warnings") or ()]),
        (
            "Main factors",
            factors(body.get("explanation"), (body["diagnosis"] or {}).get("label", "")),
        ),
        ("Missing or not usable", _missing_lines(body, unusable)),
    )
    for title, lines in sections:
        if lines:
            parts.append(f"**{title}**\n\n" + "\n".join(f"- {line}" for line in lines))
    parts.append(f"Prediction quality: {body['prediction_quality']}.")
    return "\n\n".join(parts)


def prediction_card(body: dict[str, Any], unusable: Sequence[Unusable]) -> dict[str, Any]:
    """The first card of a response: the prediction, with what it rests on."""
    card: dict[str, Any] = {
        "uuid": body["prediction_id"],
        "summary": summary(body),
        "indicator": "info" if body["diagnosis"] is None else indicator(body),
        "detail": detail(body, unusable),
        "source": source(body),
    }
    if body["diagnosis"] is not None:
        card["suggestions"] = [
            {
                "label": summary(body),
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, body["prediction_id"])),
                "isRecommended": True,
            }
        ]
        card["selectionBehavior"] = "at-most-one"
        card["overrideReasons"] = override_reasons(body)
    return card


def override_reasons(body: dict[str, Any]) -> list[dict[str, str]]:
    """The other top diagnoses as corrections ("diagnosis is rather …"), then the generic
    reasons."""
    others = [
        (f"{DIAGNOSIS_IS}{c['code']}", f"The diagnosis is rather: {c['label']}")
        for c in body["diagnosis"]["top_k"][1:]
    ]
    generic = [(code, display) for code, display, _ in OVERRIDE_REASONS]
    return [
        {"code": code, "system": OVERRIDE_SYSTEM, "display": display}
        for code, display in [*others, *generic]
    ]


def not_assessable_card(reasons: Sequence[str]) -> dict[str, Any]:
    """An info card when the FHIR data cannot make a valid record (no prediction, no uuid)."""
    return {
        "summary": "HealthPredict cannot assess this patient",
        "indicator": "info",
        "detail": "**Why**\n\n" + "\n".join(f"- {r}" for r in reasons),
        "source": {"label": "HealthPredict"},
    }
