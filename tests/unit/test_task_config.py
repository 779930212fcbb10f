"""Task configs: the shipped YAMLs validate and load their real CSVs from ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from train_pipeline import contract
from train_pipeline.data.clean import clean
from train_pipeline.data.load import load_task_data
from train_pipeline.task_config import (
    DEFAULT_SHARED_DATA,
    PROJECT_ROOT,
    TaskConfig,
    available_tasks,
    load_task_config,
)

REAL_TASKS = [name for name in available_tasks() if name != "ed_cohort"]

# rows after cleaning and diagnosis class counts, from ../shared/data/*/SOURCE.md
EXPECTED = {
    "heart_cleveland": (303, {"absent": 164, "present": 139}),
    "drug200": (200, {"DrugY": 91, "drugX": 54, "drugA": 23, "drugB": 16, "drugC": 16}),
    "cirrhosis_pbc": (312, {"stage_1": 16, "stage_2": 67, "stage_3": 120, "stage_4": 109}),
    "ckd": (400, {"ckd": 250, "notckd": 150}),
    "pima_diabetes": (768, {"no_diabetes": 500, "diabetes": 268}),
    "stroke": (5110, {"no_stroke": 4861, "stroke": 249}),
    "dermatology": (
        366,
        {
            "psoriasis": 112,
            "seborrheic_dermatitis": 61,
            "lichen_planus": 72,
            "pityriasis_rosea": 49,
            "chronic_dermatitis": 52,
            "pityriasis_rubra_pilaris": 20,
        },
    ),
    "hepatitis": (155, {"die": 32, "live": 123}),
}


@pytest.fixture(scope="module")
def shared_data() -> Path:
    if not DEFAULT_SHARED_DATA.is_dir():
        pytest.fail(
            f"real test CSVs not found at {DEFAULT_SHARED_DATA} (expected ../shared/data "
            "beside the project); these tests need them"
        )
    return DEFAULT_SHARED_DATA


def _load(name: str, root: Path) -> tuple[TaskConfig, contract.TaskContract, pd.DataFrame]:
    cfg = load_task_config(name)
    task = cfg.to_contract()
    return cfg, task, clean(load_task_data(cfg.resolve_csv(root), task, cfg), task)[0]


def test_default_task_is_the_ed_contract() -> None:
    cfg = load_task_config()
    assert cfg.to_contract() is contract.ED_COHORT
    assert cfg.resolve_csv() == PROJECT_ROOT / "data" / "clinical_cohort.csv"


def test_at_least_the_required_tasks_ship() -> None:
    assert {"heart_cleveland", "drug200", "cirrhosis_pbc", "ckd"} <= set(REAL_TASKS)


@pytest.mark.parametrize("name", REAL_TASKS)
def test_real_csv_loads_through_its_config(name: str, shared_data: Path) -> None:
    _, task, df = _load(name, shared_data)
    rows, counts = EXPECTED[name]
    assert list(df.columns) == [
        *task.feature_names,
        *([task.diagnosis.name] + ([task.treatment.name] if task.treatment else [])),
    ]
    assert len(df) == rows
    assert df[task.diagnosis.name].value_counts().to_dict() == counts
    for feat in task.features:
        if feat.kind in ("numeric", "integer", "boolean"):
            assert pd.api.types.is_float_dtype(df[feat.name]), feat.name
        if feat.kind == "categorical" and feat.categories:
            assert set(df[feat.name].dropna()) <= set(feat.categories), feat.name


def test_ckd_tab_polluted_values_cleaned_by_config(shared_data: Path) -> None:
    raw = (shared_data / "ckd" / "chronic_kidney_disease_uci.csv").read_text()
    assert "\t" in raw  # the quirk is really there
    _, _, df = _load("ckd", shared_data)
    text = df.select_dtypes(exclude="number")
    assert not text.apply(lambda c: c.astype(str).str.contains("\t|\\?")).any().any()
    assert df["packed_cell_volume"].notna().sum() > 300  # numeric text like "44" or "\t43"
    assert set(df["diabetes"].dropna()) == {0.0, 1.0}


def test_pima_zeros_are_missing_but_pregnancies_zero_is_real(shared_data: Path) -> None:
    _, _, df = _load("pima_diabetes", shared_data)
    assert df["insulin"].isna().sum() == 374
    assert df["glucose"].isna().sum() == 5
    assert (df["pregnancies"] == 0).sum() > 100


def test_cirrhosis_has_both_targets_and_age_in_years(shared_data: Path) -> None:
    _, task, df = _load("cirrhosis_pbc", shared_data)
    assert task.treatment is not None
    assert df["treatment"].value_counts().to_dict() == {"d_penicillamine": 158, "placebo": 154}
    assert df["age"].between(25, 80).all()


def test_hepatitis_one_two_booleans_become_zero_one(shared_data: Path) -> None:
    _, _, df = _load("hepatitis", shared_data)
    assert set(df["antivirals"].dropna()) == {0.0, 1.0}
    # raw ANTIVIRALS: 24 x "1" (no), 131 x "2" (yes); SOURCE.md's table has the counts swapped
    assert df["antivirals"].sum() == 131
    assert df["sex"].value_counts().to_dict() == {"M": 139, "F": 16}


def test_unknown_task_name_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="heart_cleveland"):
        load_task_config("no_such_task")


def test_invalid_config_names_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ncsv: x.csv\nfeatures:\n  - {name: age}\n")
    with pytest.raises(ValueError, match="diagnosis"):
        load_task_config(path)
    path.write_text("name: bad\ncsv: x.csv\ncontract: nope\n")
    with pytest.raises(ValueError, match="nope"):
        load_task_config(path)


def test_config_contract_carries_allowed_pairs_override(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "name: t\ncsv: t.csv\nfeatures:\n  - {name: age, tier: required}\n"
        "diagnosis: {column: dx, classes: {a: A, b: B}}\n"
        "treatment: {column: tx, classes: {x: X, y: Y}}\n"
        "allowed_pairs: {a: [x], b: [x, y]}\n"
    )
    task = load_task_config(path).to_contract()
    assert task.diagnosis.name == "diagnosis" and task.treatment is not None
    assert task.treatment.name == "treatment"
    assert dict(task.allowed_pairs) == {"a": ("x",), "b": ("x", "y")}
