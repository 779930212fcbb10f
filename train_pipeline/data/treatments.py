"""Deterministic treatment rules of the synthetic ED cohort: diagnosis AND patient decide.

``ALLOWED_TREATMENTS`` is the coherence table the rules can produce; `treatment_by_rule` applies
the rules to a cohort frame (NaN compares as False, i.e. "not documented = absent").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from train_pipeline import contract

ALLOWED_TREATMENTS: dict[str, tuple[str, ...]] = {
    "non_urgent": ("discharge_home",),
    "viral_uri": ("discharge_home",),
    "gastroenteritis": ("discharge_home", "iv_fluids_antiemetics"),
    "pneumonia": ("oral_antibiotics", "iv_antibiotics_admit"),
    "uti": ("oral_antibiotics", "iv_antibiotics_admit"),
    "acs": ("antiplatelet_cath_lab",),
    "heart_failure": ("diuretics_admit",),
    "copd_exacerbation": ("bronchodilators_steroids",),
    "sepsis": ("sepsis_bundle_icu",),
    "stroke": ("thrombolysis", "stroke_unit_no_thrombolysis"),
    "dka": ("insulin_protocol",),
    "pulmonary_embolism": ("anticoagulation",),
    "gi_bleed": ("transfusion_endoscopy",),
}
"""Diagnosis -> treatments the rules can give (the first is the "mild" option)."""


def has_symptom(symptoms: pd.Series, code: str) -> np.ndarray:
    """Boolean array: does each separator-joined symptom string contain ``code``."""
    sep = contract.SYMPTOM_SEPARATOR
    padded = sep + symptoms.fillna("").astype(str) + sep
    return padded.str.contains(f"{sep}{code}{sep}", regex=False).to_numpy()


def _gt(col: pd.Series, value: float) -> np.ndarray:
    return (pd.to_numeric(col, errors="coerce") > value).fillna(False).to_numpy(bool)


def _ge(col: pd.Series, value: float) -> np.ndarray:
    return (pd.to_numeric(col, errors="coerce") >= value).fillna(False).to_numpy(bool)


def _lt(col: pd.Series, value: float) -> np.ndarray:
    return (pd.to_numeric(col, errors="coerce") < value).fillna(False).to_numpy(bool)


def _le(col: pd.Series, value: float) -> np.ndarray:
    return (pd.to_numeric(col, errors="coerce") <= value).fillna(False).to_numpy(bool)


def curb65(df: pd.DataFrame) -> np.ndarray:
    """CURB-65 (Lim et al., Thorax 2003); creatinine > 130 µmol/L stands in for urea > 7 mmol/L."""
    confusion = has_symptom(df["symptoms"], "confusion") | _lt(df["glasgow"], 15)
    return (
        confusion.astype(int)
        + _gt(df["creatinine"], 130)
        + _ge(df["respiratory_rate"], 30)
        + (_lt(df["systolic_bp"], 90) | _le(df["diastolic_bp"], 60))
        + _ge(df["age"], 65)
    )


def severe_flags(df: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-diagnosis boolean: does the patient need the second (escalated) treatment option."""
    symptoms = df["symptoms"]
    bool_col = lambda name: pd.to_numeric(df[name], errors="coerce").fillna(0).to_numpy() > 0  # noqa: E731
    confused = has_symptom(symptoms, "confusion")
    febrile = _ge(df["temperature"], 38.0) | has_symptom(symptoms, "fever")
    # Stroke: no thrombolysis on anticoagulants, at high bleeding risk (age > 80 with
    # hypertension) or with uncontrolled BP > 185 mmHg (AHA/ASA 2019 alteplase criteria).
    stroke_risk = (
        bool_col("anticoagulant_use")
        | (_gt(df["age"], 80) & bool_col("hypertension"))
        | _gt(df["systolic_bp"], 185)
    )
    return {
        "pneumonia": curb65(df) >= 2,
        "uti": (febrile & has_symptom(symptoms, "flank_pain")) | (_gt(df["age"], 75) & confused),
        "gastroenteritis": (
            _gt(df["heart_rate"], 110) | _lt(df["systolic_bp"], 100) | _gt(df["lactate"], 2.0)
        ),
        "stroke": stroke_risk,
    }


def treatment_by_rule(df: pd.DataFrame, diagnosis: pd.Series | None = None) -> pd.Series:
    """The rule-based treatment of each row (no noise).

    Args:
        df: cohort frame with the ED contract's feature columns.
        diagnosis: diagnosis per row; defaults to ``df["diagnosis"]``.
    """
    diag = (df["diagnosis"] if diagnosis is None else diagnosis).to_numpy()
    out = np.empty(len(df), dtype=object)
    severe = severe_flags(df)
    for code, options in ALLOWED_TREATMENTS.items():
        mask = diag == code
        if code in severe:
            out[mask] = np.where(severe[code][mask], options[1], options[0])
        else:
            out[mask] = options[0]
    return pd.Series(out, index=df.index, name="treatment")
