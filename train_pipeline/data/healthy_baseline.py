"""The healthy adult every synthetic ED patient starts from, and `ClassProfile`, the shape of a
diagnosis' departure from it (the values per diagnosis are in `profiles.py`).

Vitals (normal, mean±sd): HR 80±12, SBP 126±15 (+0.3/yr over 50, +10 if hypertensive), DBP
78±9, RR 16±2.5, T 36.8±0.35 °C, SpO2 97.5±1.3 %, haemoglobin 14 (M) / 13 (F) g/dL, bicarbonate
25±2.2, BMI 27±5. Labs log-normal around glucose 5.6 mmol/L (x1.6 if diabetic), WBC 7.5, CRP
4 mg/L, troponin 5 ng/L, creatinine 80 µmol/L, lactate 1.2 mmol/L. Background symptoms and
comorbidity prevalence by age complete the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NORMAL_VITALS: dict[str, tuple[float, float]] = {
    "heart_rate": (80.0, 12.0),
    "systolic_bp": (126.0, 15.0),
    "diastolic_bp": (78.0, 9.0),
    "respiratory_rate": (16.0, 2.5),
    "temperature": (36.8, 0.35),
    "spo2": (97.5, 1.3),
    "hemoglobin": (14.0, 1.3),
    "bicarbonate": (25.0, 2.2),
    "bmi": (27.0, 5.0),
}
"""Normally distributed fields: (mean, sd); class shifts are additive."""

LOGNORMAL_LABS: dict[str, tuple[float, float]] = {
    "glucose": (5.6, 0.15),
    "wbc": (7.5, 0.28),
    "crp": (4.0, 0.9),
    "troponin": (5.0, 0.7),
    "creatinine": (80.0, 0.22),
    "lactate": (1.2, 0.3),
}
"""Log-normal labs: (median, sigma of log); class shifts are multiplicative factors."""

BACKGROUND_SYMPTOMS: dict[str, float] = {
    "fatigue": 0.08,
    "headache": 0.05,
    "nausea": 0.05,
    "dizziness": 0.04,
    "cough": 0.04,
    "abdominal_pain": 0.03,
    "chest_pain": 0.02,
}
"""Probability of each symptom in any patient; every other symptom has ``BACKGROUND_DEFAULT``."""
BACKGROUND_DEFAULT = 0.008

COMORBIDITY_BASE: dict[str, tuple[float, float]] = {
    "smoker": (0.22, 0.0),
    "diabetes": (0.04, 0.22),
    "hypertension": (0.06, 0.55),
    "heart_disease": (0.01, 0.30),
    "copd": (0.01, 0.12),
    "anticoagulant_use": (0.005, 0.14),
}
"""Base prevalence: p = a + b * (age - 18) / 82, before class multipliers."""

# Symptom probabilities are either constant or (base, extra at severity 1).
SymptomP = float | tuple[float, float]


@dataclass(frozen=True)
class ClassProfile:
    """How one diagnosis looks: demographics, severity, shifts, symptoms, comorbidities."""

    share: float
    age: tuple[float, float]
    male: float = 0.5
    severity: tuple[float, float] = (2.5, 2.5)
    shift: dict[str, float] = field(default_factory=dict)
    factor: dict[str, float] = field(default_factory=dict)
    sigma: dict[str, float] = field(default_factory=dict)
    symptoms: dict[str, SymptomP] = field(default_factory=dict)
    comorbidity_odds: dict[str, float] = field(default_factory=dict)
    comorbidity_fixed: dict[str, float] = field(default_factory=dict)
    pain: tuple[float, float] = (3.0, 2.5)
    gcs_drop: float = 0.0
    bloods: float = 0.95
