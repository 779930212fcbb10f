"""Behavioural tests of the registered diagnosis model (directional, invariance, minimum
functionality), on hand-written textbook patients rather than generator output."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from train_pipeline.contract import ED_COHORT, SYMPTOM_SEPARATOR

pytestmark = pytest.mark.slow

HEALTHY: dict[str, Any] = {
    "age": 45,
    "sex": "M",
    "heart_rate": 78,
    "systolic_bp": 128,
    "diastolic_bp": 78,
    "respiratory_rate": 15,
    "temperature": 36.9,
    "spo2": 98,
    "pain_scale": 2,
    "glasgow": 15,
    "glucose": 5.5,
    "wbc": 7.5,
    "crp": 3,
    "troponin": 5,
    "creatinine": 80,
    "hemoglobin": 14,
    "lactate": 1.1,
    "bicarbonate": 25,
    "bmi": 25,
    "smoker": 0,
    "diabetes": 0,
    "hypertension": 0,
    "heart_disease": 0,
    "copd": 0,
    "anticoagulant_use": 0,
    "symptoms": [],
}

# One textbook presentation per diagnosis (overrides of HEALTHY).
TEXTBOOK: dict[str, dict[str, Any]] = {
    "non_urgent": {"symptoms": ["minor_injury"], "pain_scale": 4},
    "viral_uri": {
        "age": 30,
        "temperature": 38.0,
        "heart_rate": 92,
        "crp": 10,
        "symptoms": ["sore_throat", "runny_nose", "cough", "fatigue"],
    },
    "pneumonia": {
        "age": 68,
        "temperature": 38.8,
        "heart_rate": 108,
        "respiratory_rate": 26,
        "spo2": 90,
        "systolic_bp": 112,
        "wbc": 16,
        "crp": 150,
        "symptoms": ["fever", "cough", "sputum", "dyspnea", "crackles"],
    },
    "sepsis": {
        "age": 72,
        "temperature": 39.3,
        "heart_rate": 125,
        "respiratory_rate": 28,
        "systolic_bp": 82,
        "diastolic_bp": 48,
        "spo2": 92,
        "glasgow": 12,
        "wbc": 22,
        "lactate": 5.5,
        "crp": 220,
        "creatinine": 190,
        "bicarbonate": 16,
        "symptoms": ["fever", "chills", "confusion", "fatigue"],
    },
    "acs": {
        "age": 64,
        "heart_rate": 95,
        "systolic_bp": 145,
        "troponin": 900,
        "pain_scale": 8,
        "smoker": 1,
        "hypertension": 1,
        "symptoms": ["chest_pain", "nausea"],
    },
    "heart_failure": {
        "age": 78,
        "spo2": 90,
        "respiratory_rate": 24,
        "troponin": 40,
        "creatinine": 140,
        "heart_disease": 1,
        "hypertension": 1,
        "symptoms": ["dyspnea", "orthopnea", "leg_swelling", "crackles"],
    },
    "copd_exacerbation": {
        "age": 70,
        "copd": 1,
        "smoker": 1,
        "spo2": 88,
        "respiratory_rate": 26,
        "crp": 20,
        "symptoms": ["dyspnea", "wheezing", "cough", "sputum"],
    },
    "stroke": {
        "age": 75,
        "systolic_bp": 185,
        "diastolic_bp": 100,
        "glasgow": 13,
        "hypertension": 1,
        "symptoms": ["focal_weakness", "speech_difficulty", "facial_droop"],
    },
    "uti": {
        "sex": "F",
        "age": 40,
        "temperature": 38.4,
        "heart_rate": 100,
        "wbc": 13,
        "crp": 60,
        "symptoms": ["dysuria", "flank_pain", "fever"],
    },
    "gastroenteritis": {
        "age": 35,
        "heart_rate": 100,
        "systolic_bp": 105,
        "temperature": 37.8,
        "symptoms": ["diarrhea", "vomiting", "nausea", "abdominal_pain"],
    },
    "dka": {
        "age": 28,
        "diabetes": 1,
        "glucose": 32,
        "bicarbonate": 9,
        "respiratory_rate": 28,
        "heart_rate": 115,
        "lactate": 2.5,
        "symptoms": ["polyuria", "polydipsia", "vomiting", "abdominal_pain"],
    },
    "pulmonary_embolism": {
        "age": 55,
        "heart_rate": 115,
        "spo2": 89,
        "respiratory_rate": 26,
        "troponin": 40,
        "symptoms": ["dyspnea", "pleuritic_pain", "leg_swelling"],
    },
    "gi_bleed": {
        "age": 68,
        "heart_rate": 120,
        "systolic_bp": 92,
        "diastolic_bp": 55,
        "hemoglobin": 8,
        "symptoms": ["hematemesis", "melena", "dizziness"],
    },
}


def frame(*patients: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for p in patients:
        row = {**HEALTHY, **p}
        row["symptoms"] = SYMPTOM_SEPARATOR.join(row["symptoms"])
        rows.append(row)
    return pd.DataFrame(rows)[list(ED_COHORT.feature_names)]


@pytest.fixture(scope="module")
def model(trained_store: Any) -> Any:
    import mlflow.sklearn

    mlflow.set_registry_uri(trained_store.tracking_uri)
    return mlflow.sklearn.load_model("models:/healthpredict-diagnosis@champion")


@pytest.fixture(scope="module")
def classes(trained_store: Any) -> list[str]:
    from mlflow import MlflowClient

    from train_pipeline.bundle_meta import BundleMeta

    client = MlflowClient(tracking_uri=trained_store.tracking_uri)
    path = client.download_artifacts(trained_store.run_id, "bundle_meta.json")
    with open(path) as fh:
        return BundleMeta.from_json(fh.read()).diagnosis_classes


def test_every_class_has_a_textbook_patient() -> None:
    assert set(TEXTBOOK) == set(ED_COHORT.diagnosis.codes)


@pytest.mark.parametrize("code", list(TEXTBOOK), ids=list(TEXTBOOK))
def test_minimum_functionality_textbook_patient_in_top3(
    model: Any, classes: list[str], code: str
) -> None:
    proba = model.predict_proba(frame(TEXTBOOK[code]))[0]
    top3 = [classes[i] for i in np.argsort(proba)[::-1][:3]]
    assert code in top3, f"{code} not in top-3 {top3}"


def test_directional_sepsis_signs_raise_sepsis(model: Any, classes: list[str]) -> None:
    k = classes.index("sepsis")
    base = TEXTBOOK["uti"]
    steps = [
        {},
        {"lactate": 4.5},
        {"lactate": 4.5, "temperature": 39.4},
        {"lactate": 4.5, "temperature": 39.4, "heart_rate": 128},
        {
            "lactate": 4.5,
            "temperature": 39.4,
            "heart_rate": 128,
            "systolic_bp": 80,
            "diastolic_bp": 45,
        },
    ]
    p = model.predict_proba(frame(*({**base, **s} for s in steps)))[:, k]
    assert p[-1] > 3 * p[0] and p[-1] - p[0] > 0.1, p
    assert np.all(np.diff(p) > -0.02), p  # each added sign never lowers it materially


def test_directional_troponin_raises_acs(model: Any, classes: list[str]) -> None:
    k = classes.index("acs")
    chest = {"age": 60, "symptoms": ["chest_pain"], "pain_scale": 7}
    p = model.predict_proba(frame({**chest, "troponin": 4}, {**chest, "troponin": 1500}))[:, k]
    assert p[1] > p[0], p


def test_invariance_smoking_does_not_change_a_minor_injury(model: Any, classes: list[str]) -> None:
    patients = [
        {**TEXTBOOK["non_urgent"], "age": a, "sex": s} for a in (25, 45, 65) for s in ("M", "F")
    ]
    smokers = [{**p, "smoker": 1} for p in patients]
    before = model.predict_proba(frame(*patients)).argmax(axis=1)
    after = model.predict_proba(frame(*smokers)).argmax(axis=1)
    assert [classes[i] for i in before] == [classes[i] for i in after]
    assert all(classes[i] == "non_urgent" for i in before)


def test_invariance_to_symptom_order(model: Any) -> None:
    a = frame({**TEXTBOOK["pneumonia"]})
    b = frame({**TEXTBOOK["pneumonia"], "symptoms": TEXTBOOK["pneumonia"]["symptoms"][::-1]})
    np.testing.assert_allclose(model.predict_proba(a), model.predict_proba(b))
