"""Loading bad / messy CSVs (clear `DataError`s) and cleaning (duplicates, targets, ranges)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from train_pipeline import contract
from train_pipeline.data.clean import clean
from train_pipeline.data.generate import generate_cohort
from train_pipeline.data.load import DataError, load_task_data

TASK = contract.ED_COHORT


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    return generate_cohort(n_rows=600, seed=11)


def _write(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path, index=False)
    return path


def test_generated_csv_round_trips(cohort: pd.DataFrame, tmp_path: Path) -> None:
    df = load_task_data(_write(cohort, tmp_path / "c.csv"), TASK)
    assert list(df.columns) == list(cohort.columns)
    assert df["heart_rate"].isna().sum() == cohort["heart_rate"].isna().sum()
    assert (df["symptoms"] == cohort["symptoms"]).all()


@pytest.mark.parametrize("column", ["diagnosis", "treatment"])
def test_missing_target_column_names_it(cohort: pd.DataFrame, tmp_path: Path, column: str) -> None:
    path = _write(cohort.drop(columns=[column]), tmp_path / "bad.csv")
    with pytest.raises(DataError, match=column) as info:
        load_task_data(path, TASK)
    assert info.value.column == column


def test_missing_feature_column_names_it(cohort: pd.DataFrame, tmp_path: Path) -> None:
    path = _write(cohort.drop(columns=["spo2"]), tmp_path / "bad.csv")
    with pytest.raises(DataError, match="spo2"):
        load_task_data(path, TASK)


def test_numeric_column_full_of_text_names_it(cohort: pd.DataFrame, tmp_path: Path) -> None:
    bad = cohort.copy()
    bad["heart_rate"] = "fast"
    with pytest.raises(DataError, match="heart_rate") as info:
        load_task_data(_write(bad, tmp_path / "bad.csv"), TASK)
    assert info.value.column == "heart_rate"
    assert "unparseable" in str(info.value)


def test_a_few_unparseable_cells_become_missing(cohort: pd.DataFrame, tmp_path: Path) -> None:
    bad = cohort.copy().astype({"glucose": object})
    bad.loc[:4, "glucose"] = "high"
    df = load_task_data(_write(bad, tmp_path / "few.csv"), TASK)
    assert df.loc[:4, "glucose"].isna().all()


def test_unknown_diagnosis_is_an_error(cohort: pd.DataFrame, tmp_path: Path) -> None:
    bad = cohort.copy()
    bad.loc[0, "diagnosis"] = "flu"
    with pytest.raises(DataError, match="'flu'"):
        load_task_data(_write(bad, tmp_path / "bad.csv"), TASK)


def test_missing_csv_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_task_data(tmp_path / "nope.csv", TASK)


def test_messy_cells_markers_aliases_and_whitespace(cohort: pd.DataFrame, tmp_path: Path) -> None:
    messy = cohort.head(20).copy().astype(object)
    messy = messy.rename(columns={"heart_rate": "heartRate", "spo2": " saturation_oxygene "})
    messy.loc[0, "heartRate"] = "N/A"
    messy.loc[1, "heartRate"] = "?"
    messy.loc[2, "sex"] = " female\t"
    messy.loc[3, "diagnosis"] = "stroke\t"
    messy.loc[3, "treatment"] = " thrombolysis"
    messy.loc[4, "smoker"] = "yes"
    df = load_task_data(_write(messy, tmp_path / "messy.csv"), TASK)
    assert df.loc[:1, "heart_rate"].isna().all()
    assert df.loc[2, "sex"] == "F"
    assert df.loc[3, "diagnosis"] == "stroke" and df.loc[3, "treatment"] == "thrombolysis"
    assert df.loc[4, "smoker"] == 1.0
    assert df["spo2"].notna().sum() >= 15


def test_clean_drops_duplicates_and_missing_targets(cohort: pd.DataFrame) -> None:
    df = cohort.copy()
    n_dup = int(df.duplicated().sum())
    assert n_dup > 0
    df.loc[0, "diagnosis"] = np.nan
    out, report = clean(df, TASK)
    assert report.duplicates_removed == n_dup
    assert report.missing_target_removed == 1
    assert report.rows_out == len(out) == len(df) - n_dup - 1
    assert not out.duplicated().any()
    assert set(report.as_dict()) >= {
        "rows_in",
        "rows_out",
        "duplicates_removed",
        "missing_target_removed",
        "out_of_range",
        "out_of_range_total",
    }


def test_clean_sets_impossible_values_to_nan_and_counts_them(cohort: pd.DataFrame) -> None:
    df = cohort.drop_duplicates().reset_index(drop=True).copy()
    df["temperature"] = df["temperature"].astype(float)
    df.loc[0, "temperature"] = 372.0
    df.loc[1, "heart_rate"] = 0
    df.loc[2, ["systolic_bp", "diastolic_bp"]] = [90, 120]
    df.loc[3, "sex"] = "X"
    df.loc[4, "symptoms"] = "cough;levitation"
    out, report = clean(df, TASK)
    assert np.isnan(out.loc[0, "temperature"]) and pd.isna(out.loc[1, "heart_rate"])
    assert report.out_of_range["temperature"] >= 1 and report.out_of_range["heart_rate"] >= 1
    assert pd.isna(out.loc[2, "diastolic_bp"]) and report.diastolic_not_below_systolic >= 1
    assert pd.isna(out.loc[3, "sex"]) and report.unknown_categories["sex"] == 1
    assert out.loc[4, "symptoms"] == "cough" and report.unknown_categories["symptoms"] == 1
