"""Data expectations on the default synthetic cohort: proportions, coherence, missingness, signs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from train_pipeline import contract
from train_pipeline.data.clean import clean
from train_pipeline.data.generate import (
    DEFAULT_ROWS,
    DEFAULT_SEED,
    generate_cohort,
    write_cohort,
)
from train_pipeline.data.treatments import ALLOWED_TREATMENTS, has_symptom, treatment_by_rule

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RARE = ("dka", "pulmonary_embolism", "gi_bleed")
VITALS = ("heart_rate", "systolic_bp", "diastolic_bp", "respiratory_rate", "temperature", "spo2")
LABS = ("wbc", "crp", "troponin", "creatinine", "hemoglobin", "lactate", "bicarbonate")


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return generate_cohort()


@pytest.fixture(scope="module")
def cleaned(cohort: pd.DataFrame) -> pd.DataFrame:
    return clean(cohort, contract.ED_COHORT)[0]


def test_default_size_and_every_class_present(cohort: pd.DataFrame) -> None:
    assert len(cohort) == DEFAULT_ROWS
    assert set(cohort["diagnosis"]) == set(contract.ED_COHORT.diagnosis.codes)
    assert set(cohort["treatment"]) == set(contract.ED_COHORT.treatment.codes)


def test_class_proportions(cohort: pd.DataFrame) -> None:
    share = cohort["diagnosis"].value_counts(normalize=True)
    for code in RARE:
        assert 0.005 < share[code] <= 0.02, (code, share[code])
    common = share.drop(list(RARE))
    assert common.between(0.05, 0.23).all(), common.to_dict()


def test_treatment_always_allowed_for_the_recorded_diagnosis(cohort: pd.DataFrame) -> None:
    ok = [
        t in ALLOWED_TREATMENTS[d]
        for d, t in zip(cohort["diagnosis"], cohort["treatment"], strict=True)
    ]
    assert all(ok)


def test_treatment_follows_patient_rules(cohort: pd.DataFrame) -> None:
    # The rules saw complete values; the CSV has missing values and 3 % judgement noise.
    agree = (treatment_by_rule(cohort) == cohort["treatment"]).mean()
    assert agree > 0.9
    for diag, options in ALLOWED_TREATMENTS.items():
        given = set(cohort.loc[cohort["diagnosis"] == diag, "treatment"])
        assert given == set(options), diag  # both options of two-option classes occur


def test_stroke_on_anticoagulants_is_not_thrombolysed(cohort: pd.DataFrame) -> None:
    stroke = cohort[cohort["diagnosis"] == "stroke"]
    on_ac = stroke[stroke["anticoagulant_use"] == 1]
    assert len(on_ac) > 20
    assert (on_ac["treatment"] == "stroke_unit_no_thrombolysis").mean() > 0.9


def test_pneumonia_severity_drives_iv_antibiotics(cohort: pd.DataFrame) -> None:
    pneu = cohort[cohort["diagnosis"] == "pneumonia"]
    old_confused = pneu[(pneu["age"] >= 65) & has_symptom(pneu["symptoms"], "confusion")]
    young_well = pneu[(pneu["age"] < 50) & (pneu["respiratory_rate"] < 25)]
    assert (old_confused["treatment"] == "iv_antibiotics_admit").mean() > 0.9
    assert (young_well["treatment"] == "oral_antibiotics").mean() > 0.8


def test_labs_are_missing_more_often_than_vitals(cohort: pd.DataFrame) -> None:
    missing = cohort.isna().mean()
    assert missing[list(VITALS)].max() <= 0.05
    assert missing[list(VITALS)].min() > 0.0
    assert missing[list(LABS)].min() >= 0.2
    assert missing[list(LABS)].min() > missing[list(VITALS)].max()
    chest = has_symptom(cohort["symptoms"], "chest_pain")
    trop_missing = cohort["troponin"].isna()
    assert trop_missing[chest].mean() < trop_missing[~chest].mean() - 0.3
    for name in contract.ED_COHORT.names_in_tier("required"):
        assert cohort[name].notna().all(), name


def test_duplicates_present_before_clean_and_absent_after(
    cohort: pd.DataFrame, cleaned: pd.DataFrame
) -> None:
    assert 0.01 < cohort.duplicated().mean() < 0.03
    assert not cleaned.duplicated().any()


def test_out_of_range_typos_exist_and_clean_removes_them(
    cohort: pd.DataFrame, cleaned: pd.DataFrame
) -> None:
    report = clean(cohort, contract.ED_COHORT)[1]
    assert report.out_of_range_total >= 6
    for feat in contract.ED_COHORT.features:
        if feat.minimum is not None:
            assert cleaned[feat.name].dropna().between(feat.minimum, feat.maximum).all()
    both = cleaned[["systolic_bp", "diastolic_bp"]].dropna()
    assert (both["diastolic_bp"] < both["systolic_bp"]).all()


def _median(df: pd.DataFrame, diag: str, col: str) -> float:
    return float(df.loc[df["diagnosis"] == diag, col].median())


def _rest(df: pd.DataFrame, diag: str, col: str) -> float:
    return float(df.loc[df["diagnosis"] != diag, col].median())


@pytest.mark.parametrize(
    ("diag", "col", "direction"),
    [
        ("sepsis", "lactate", ">"),
        ("sepsis", "heart_rate", ">"),
        ("sepsis", "wbc", ">"),
        ("sepsis", "systolic_bp", "<"),
        ("pneumonia", "crp", ">"),
        ("pneumonia", "spo2", "<"),
        ("pneumonia", "temperature", ">"),
        ("acs", "troponin", ">"),
        ("heart_failure", "spo2", "<"),
        ("copd_exacerbation", "respiratory_rate", ">"),
        ("stroke", "systolic_bp", ">"),
        ("stroke", "age", ">"),
        ("dka", "glucose", ">"),
        ("dka", "bicarbonate", "<"),
        ("dka", "respiratory_rate", ">"),
        ("pulmonary_embolism", "heart_rate", ">"),
        ("gi_bleed", "hemoglobin", "<"),
        ("gastroenteritis", "heart_rate", ">"),
        ("uti", "crp", ">"),
        ("non_urgent", "temperature", "<"),
    ],
    ids=lambda v: str(v),
)
def test_directional_shifts(cleaned: pd.DataFrame, diag: str, col: str, direction: str) -> None:
    mine, rest = _median(cleaned, diag, col), _rest(cleaned, diag, col)
    assert (mine > rest) if direction == ">" else (mine < rest), (mine, rest)


def test_septic_lactate_above_non_urgent(cleaned: pd.DataFrame) -> None:
    assert _median(cleaned, "sepsis", "lactate") > 2 > _median(cleaned, "non_urgent", "lactate")
    assert _median(cleaned, "dka", "glucose") > 20
    assert _median(cleaned, "gi_bleed", "hemoglobin") < 11


@pytest.mark.parametrize(
    ("diag", "symptom"),
    [
        ("stroke", "focal_weakness"),
        ("uti", "dysuria"),
        ("dka", "polyuria"),
        ("gi_bleed", "melena"),
        ("heart_failure", "orthopnea"),
        ("copd_exacerbation", "wheezing"),
        ("viral_uri", "runny_nose"),
        ("acs", "chest_pain"),
        ("gastroenteritis", "diarrhea"),
    ],
)
def test_hallmark_symptoms(cohort: pd.DataFrame, diag: str, symptom: str) -> None:
    present = has_symptom(cohort["symptoms"], symptom)
    is_diag = (cohort["diagnosis"] == diag).to_numpy()
    assert present[is_diag].mean() > 0.45  # atypical presenters and label noise lower it
    assert present[is_diag].mean() > 4 * present[~is_diag].mean()


def test_comorbidities_follow_the_diagnosis(cohort: pd.DataFrame) -> None:
    by = cohort.groupby("diagnosis")
    assert by["copd"].mean()["copd_exacerbation"] > 0.75
    assert by["diabetes"].mean()["dka"] > 0.8
    assert by["heart_disease"].mean()["heart_failure"] > 0.7
    assert by["anticoagulant_use"].mean()["gi_bleed"] > 2 * cohort["anticoagulant_use"].mean()


def test_classes_overlap_not_trivially_separable(cleaned: pd.DataFrame) -> None:
    # Atypical presentations and mild severity: hallmark symptoms are absent in some rows.
    stroke = cleaned[cleaned["diagnosis"] == "stroke"]
    neuro = np.zeros(len(stroke), dtype=bool)
    for code in ("focal_weakness", "speech_difficulty", "facial_droop"):
        neuro |= has_symptom(stroke["symptoms"], code)
    assert 0.01 < 1 - neuro.mean() < 0.2


def test_dataset_dvc_tracks_the_default_cohort(tmp_path: Path) -> None:
    dvc_file = PROJECT_ROOT / "dataset.dvc"
    assert dvc_file.is_file(), "dataset.dvc is missing at the project root"
    outs = yaml.safe_load(dvc_file.read_text())["outs"]
    assert outs[0]["path"] == "data/clinical_cohort.csv"
    fresh = write_cohort(tmp_path / "clinical_cohort.csv", DEFAULT_ROWS, DEFAULT_SEED)
    data = fresh.read_bytes()
    assert hashlib.md5(data).hexdigest() == outs[0]["md5"], (
        "the generator's output changed: run `make data` and `dvc add` (dataset.dvc is stale)"
    )
    assert len(data) == outs[0]["size"]
