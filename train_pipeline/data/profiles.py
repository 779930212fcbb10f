"""Per-diagnosis clinical profiles of the synthetic ED cohort (read by `generate.py`).

Each diagnosis shifts a healthy adult baseline by an amount scaled by a per-patient severity
``s ~ Beta(a, b)`` in [0, 1], so mild cases overlap with neighbouring classes (mild sepsis looks
like pneumonia or UTI, mild PE like anxiety / non-urgent chest pain) while severe ones are
textbook. Values below are the shift at ``s = 1``.

The baseline itself (vitals, labs, background symptoms, comorbidities by age) and the
`ClassProfile` type are in `healthy_baseline.py`; their names are re-exported here.

Classes (share of rows; main shifts; hallmark symptoms with probability):

- ``non_urgent`` (22 %): minor injuries and aches; normal vitals, pain 4±2.5; ``minor_injury``
  0.55, headache, abdominal pain, dizziness; bloods drawn in 25 %.
- ``viral_uri`` (14 %): mild fever (+1.2 °C), HR +10, CRP x3; sore throat 0.7, runny nose 0.75,
  cough 0.7, fever 0.45, headache; bloods 30 %.
- ``gastroenteritis`` (10 %): dehydration when severe: HR +35, SBP -25, lactate x2, creatinine
  x1.4, bicarbonate -4; vomiting 0.75, diarrhoea 0.8, abdominal pain, nausea.
- ``pneumonia`` (10 %): fever +2 °C, HR +28, RR +16, SpO2 -9, SBP -18, WBC x1.9, CRP x35; cough
  0.85, sputum 0.6, crackles 0.65, dyspnoea 0.6, fever 0.7, confusion rises with severity; more
  smokers and COPD.
- ``uti`` (9 %, 75 % female): fever +1.4 °C, HR +15, WBC x1.6, CRP x12; dysuria 0.8, flank pain
  0.35, fever 0.45; confusion in the frail elderly.
- ``acs`` (7 %, 68 % male): troponin x60 (wide: some unstable angina stays low), HR +15, SBP +10;
  chest pain 0.9, nausea, dyspnoea; hypertension, diabetes, smoking, heart disease x1.6-2.2.
- ``heart_failure`` (6 %, age 76): SpO2 -8, RR +10, HR +20, troponin x6, creatinine x1.5;
  dyspnoea 0.92, orthopnoea 0.65, leg swelling 0.7, crackles 0.7; heart disease in 80 %.
- ``copd_exacerbation`` (6 %): SpO2 -9, RR +12, HR +20, bicarbonate +3 (CO2 retention), CRP x6;
  dyspnoea 0.95, wheezing 0.8, cough 0.8, sputum; known COPD in 88 %, smokers 55 %.
- ``sepsis`` (5.5 %, age 68): fever +2.6 °C or hypothermia -3 °C (15 %), HR +45, SBP -45, RR +12,
  lactate x4, WBC x2.8 (10 % leukopenic), CRP x50, creatinine x1.8, bicarbonate -9, GCS drop;
  fever, chills, confusion (0.1 + 0.5·s), plus a urinary or chest source in some.
- ``stroke`` (5.5 %, age 73): SBP +45, DBP +18; focal weakness 0.82, speech difficulty 0.62,
  facial droop 0.55, GCS drop; hypertension x1.7, anticoagulants x2 (atrial fibrillation).
- ``dka`` (1.5 %, rare, age 35): glucose x6 at s=1 (median ≈ 28 mmol/L), bicarbonate -18,
  RR +14 (Kussmaul), HR +35; polyuria 0.75, polydipsia 0.7, vomiting 0.65, abdominal pain;
  known diabetes 92 %.
- ``pulmonary_embolism`` (1.6 %, rare): HR +35, RR +10, SpO2 -9, troponin x4; dyspnoea 0.8,
  pleuritic pain 0.55, leg swelling 0.3, syncope; rarely already anticoagulated.
- ``gi_bleed`` (1.7 %, rare): haemoglobin -7 g/dL, HR +35, SBP -30, lactate x2; haematemesis 0.55,
  melaena 0.6, dizziness; anticoagulant use x4.
"""

from __future__ import annotations

# The baseline and the profile type, re-exported: `generate.py` reads them from here.
from train_pipeline.data.healthy_baseline import (  # noqa: F401
    BACKGROUND_DEFAULT,
    BACKGROUND_SYMPTOMS,
    COMORBIDITY_BASE,
    LOGNORMAL_LABS,
    NORMAL_VITALS,
    ClassProfile,
    SymptomP,
)

PROFILES: dict[str, ClassProfile] = {
    "non_urgent": ClassProfile(
        share=0.222,
        age=(45, 19),
        severity=(1, 4),
        shift={"heart_rate": 6},
        symptoms={
            "minor_injury": 0.55,
            "headache": 0.12,
            "abdominal_pain": 0.1,
            "dizziness": 0.08,
            "chest_pain": 0.06,
            "palpitations": 0.05,
            "nausea": 0.06,
            "fatigue": 0.1,
        },
        pain=(4, 2.5),
        bloods=0.25,
    ),
    "viral_uri": ClassProfile(
        share=0.14,
        age=(38, 16),
        severity=(2, 4),
        shift={"heart_rate": 12, "temperature": 1.3, "respiratory_rate": 2},
        factor={"crp": 3.0},
        symptoms={
            "sore_throat": 0.7,
            "runny_nose": 0.75,
            "cough": 0.7,
            "fever": 0.45,
            "headache": 0.35,
            "fatigue": 0.4,
            "chills": 0.15,
            "sputum": 0.1,
        },
        pain=(3, 2),
        bloods=0.3,
    ),
    "gastroenteritis": ClassProfile(
        share=0.10,
        age=(40, 17),
        severity=(2, 3),
        shift={
            "heart_rate": 35,
            "systolic_bp": -25,
            "diastolic_bp": -12,
            "temperature": 0.8,
            "respiratory_rate": 3,
            "bicarbonate": -4,
        },
        factor={"lactate": 2.0, "creatinine": 1.4, "wbc": 1.3, "crp": 4.0},
        symptoms={
            "vomiting": 0.75,
            "diarrhea": 0.8,
            "abdominal_pain": 0.65,
            "nausea": 0.8,
            "fever": 0.3,
            "fatigue": 0.3,
            "dizziness": (0.1, 0.3),
        },
        pain=(5, 2),
        bloods=0.6,
    ),
    "pneumonia": ClassProfile(
        share=0.10,
        age=(62, 19),
        shift={
            "heart_rate": 28,
            "systolic_bp": -18,
            "diastolic_bp": -12,
            "temperature": 2.0,
            "respiratory_rate": 16,
            "spo2": -9,
        },
        factor={"wbc": 1.9, "crp": 35.0, "lactate": 1.4, "creatinine": 1.3, "troponin": 1.5},
        symptoms={
            "cough": 0.85,
            "sputum": 0.6,
            "fever": 0.7,
            "crackles": 0.65,
            "dyspnea": 0.6,
            "chills": 0.35,
            "pleuritic_pain": 0.25,
            "fatigue": 0.5,
            "confusion": (0.02, 0.3),
            "chest_pain": 0.12,
        },
        comorbidity_odds={"smoker": 1.4, "copd": 1.8},
        gcs_drop=2,
    ),
    "uti": ClassProfile(
        share=0.09,
        age=(55, 22),
        male=0.25,
        severity=(2, 3),
        shift={"heart_rate": 15, "temperature": 1.4, "systolic_bp": -5, "respiratory_rate": 3},
        factor={"wbc": 1.6, "crp": 12.0, "creatinine": 1.1},
        symptoms={
            "dysuria": 0.8,
            "flank_pain": 0.35,
            "fever": 0.45,
            "abdominal_pain": 0.3,
            "nausea": 0.25,
            "vomiting": 0.1,
            "confusion": (0.03, 0.2),
            "fatigue": 0.2,
            "polyuria": 0.1,
            "chills": 0.15,
        },
        pain=(4, 2),
        bloods=0.75,
    ),
    "acs": ClassProfile(
        share=0.07,
        age=(64, 12),
        male=0.68,
        severity=(2, 2.5),
        shift={"heart_rate": 15, "systolic_bp": 10, "respiratory_rate": 4, "spo2": -2},
        factor={"troponin": 60.0, "glucose": 1.15, "creatinine": 1.1},
        sigma={"troponin": 1.4},
        symptoms={
            "chest_pain": 0.9,
            "dyspnea": 0.35,
            "nausea": 0.3,
            "palpitations": 0.15,
            "dizziness": 0.15,
            "syncope": 0.05,
            "fatigue": 0.2,
        },
        comorbidity_odds={
            "hypertension": 1.6,
            "diabetes": 1.7,
            "smoker": 1.9,
            "heart_disease": 2.2,
        },
        pain=(6, 2),
    ),
    "heart_failure": ClassProfile(
        share=0.06,
        age=(76, 10),
        shift={
            "heart_rate": 20,
            "systolic_bp": 12,
            "respiratory_rate": 10,
            "spo2": -8,
            "hemoglobin": -1,
            "bmi": 2,
        },
        factor={"troponin": 6.0, "creatinine": 1.5, "crp": 2.0},
        symptoms={
            "dyspnea": 0.92,
            "orthopnea": 0.65,
            "leg_swelling": 0.7,
            "crackles": 0.7,
            "fatigue": 0.6,
            "cough": 0.3,
            "wheezing": 0.1,
            "chest_pain": 0.1,
        },
        comorbidity_odds={"hypertension": 1.5, "diabetes": 1.5, "anticoagulant_use": 2.5},
        comorbidity_fixed={"heart_disease": 0.8},
        pain=(2, 2),
    ),
    "copd_exacerbation": ClassProfile(
        share=0.06,
        age=(69, 10),
        shift={
            "heart_rate": 20,
            "respiratory_rate": 12,
            "spo2": -9,
            "temperature": 0.4,
            "systolic_bp": 5,
            "bicarbonate": 3,
        },
        factor={"crp": 6.0, "wbc": 1.3, "lactate": 1.2},
        symptoms={
            "dyspnea": 0.95,
            "wheezing": 0.8,
            "cough": 0.8,
            "sputum": 0.6,
            "fatigue": 0.3,
            "crackles": 0.15,
        },
        comorbidity_fixed={"copd": 0.88, "smoker": 0.55},
        pain=(2, 2),
    ),
    "sepsis": ClassProfile(
        share=0.055,
        age=(68, 16),
        male=0.55,
        severity=(3, 2),
        shift={
            "heart_rate": 45,
            "systolic_bp": -45,
            "diastolic_bp": -25,
            "respiratory_rate": 12,
            "temperature": 2.6,
            "spo2": -6,
            "bicarbonate": -9,
        },
        factor={
            "wbc": 2.8,
            "crp": 50.0,
            "lactate": 4.0,
            "creatinine": 1.8,
            "glucose": 1.3,
            "troponin": 4.0,
        },
        symptoms={
            "fever": 0.75,
            "chills": 0.5,
            "confusion": (0.1, 0.5),
            "fatigue": 0.6,
            "dyspnea": 0.3,
            "dizziness": 0.2,
            "cough": 0.2,
            "abdominal_pain": 0.15,
            "dysuria": 0.15,
            "vomiting": 0.15,
        },
        comorbidity_odds={"diabetes": 1.5, "copd": 1.3, "heart_disease": 1.3},
        pain=(4, 2.5),
        gcs_drop=6,
    ),
    "stroke": ClassProfile(
        share=0.055,
        age=(73, 12),
        shift={
            "heart_rate": 5,
            "systolic_bp": 45,
            "diastolic_bp": 18,
            "respiratory_rate": 1,
            "spo2": -1,
        },
        factor={"glucose": 1.1},
        symptoms={
            "focal_weakness": 0.82,
            "speech_difficulty": 0.62,
            "facial_droop": 0.55,
            "confusion": 0.25,
            "headache": 0.2,
            "dizziness": 0.25,
            "syncope": 0.03,
        },
        comorbidity_odds={
            "hypertension": 1.7,
            "diabetes": 1.4,
            "anticoagulant_use": 2.0,
            "heart_disease": 1.5,
            "smoker": 1.3,
        },
        pain=(2, 2),
        gcs_drop=5,
    ),
    "dka": ClassProfile(
        share=0.015,
        age=(35, 14),
        severity=(4, 2),
        shift={
            "heart_rate": 35,
            "systolic_bp": -15,
            "respiratory_rate": 14,
            "bicarbonate": -18,
            "bmi": -3,
        },
        factor={"glucose": 6.0, "lactate": 1.8, "wbc": 1.8, "creatinine": 1.5},
        symptoms={
            "polyuria": 0.75,
            "polydipsia": 0.7,
            "vomiting": 0.65,
            "nausea": 0.6,
            "abdominal_pain": 0.5,
            "fatigue": 0.5,
            "confusion": (0.05, 0.3),
        },
        comorbidity_fixed={"diabetes": 0.92},
        pain=(4, 2),
        gcs_drop=3,
    ),
    "pulmonary_embolism": ClassProfile(
        share=0.016,
        age=(58, 17),
        shift={
            "heart_rate": 35,
            "respiratory_rate": 10,
            "spo2": -9,
            "systolic_bp": -10,
            "temperature": 0.3,
        },
        factor={"troponin": 4.0, "lactate": 1.4, "crp": 3.0},
        symptoms={
            "dyspnea": 0.8,
            "pleuritic_pain": 0.55,
            "chest_pain": 0.35,
            "leg_swelling": 0.3,
            "cough": 0.2,
            "syncope": 0.1,
            "palpitations": 0.2,
            "dizziness": 0.15,
        },
        comorbidity_odds={"anticoagulant_use": 0.3, "smoker": 1.3},
        pain=(5, 2),
    ),
    "gi_bleed": ClassProfile(
        share=0.017,
        age=(66, 15),
        severity=(3, 2),
        shift={"heart_rate": 35, "systolic_bp": -30, "diastolic_bp": -15, "hemoglobin": -7},
        factor={"lactate": 2.0, "creatinine": 1.3},
        symptoms={
            "hematemesis": 0.55,
            "melena": 0.6,
            "dizziness": 0.4,
            "syncope": 0.15,
            "abdominal_pain": 0.3,
            "fatigue": 0.4,
            "nausea": 0.3,
            "vomiting": 0.2,
        },
        comorbidity_odds={"anticoagulant_use": 4.0, "heart_disease": 1.3},
        pain=(3, 2),
    ),
}

SEPSIS_HYPOTHERMIA = 0.15
"""Share of septic patients who are hypothermic (temperature shift -3 °C instead of +2.6)."""
SEPSIS_LEUKOPENIA = 0.10
"""Share of septic patients with a low WBC (factor 0.4 instead of 2.8)."""
