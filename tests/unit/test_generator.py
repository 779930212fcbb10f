"""Synthetic ED cohort generator: determinism, shape, value formats (small cohorts, fast)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from train_pipeline import contract
from train_pipeline.data.generate import generate_cohort, write_cohort
from train_pipeline.data.treatments import ALLOWED_TREATMENTS

N = 1500


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return generate_cohort(n_rows=N, seed=7)


def test_same_seed_gives_identical_frames_and_bytes(tmp_path: Path) -> None:
    pd.testing.assert_frame_equal(generate_cohort(N, seed=3), generate_cohort(N, seed=3))
    a = write_cohort(tmp_path / "a.csv", n_rows=N, seed=3).read_bytes()
    b = write_cohort(tmp_path / "sub" / "b.csv", n_rows=N, seed=3).read_bytes()
    assert a == b


def test_different_seed_gives_different_cohort() -> None:
    a, b = generate_cohort(N, seed=1), generate_cohort(N, seed=2)
    assert not a.equals(b)
    assert (a["age"] != b["age"]).mean() > 0.5


def test_columns_are_the_contract_features_then_targets(small: pd.DataFrame) -> None:
    assert list(small.columns) == [*contract.ED_COHORT.feature_names, "diagnosis", "treatment"]
    assert len(small) == N


def test_value_formats(small: pd.DataFrame) -> None:
    assert set(small["sex"]) == {"M", "F"}
    for name in contract.ED_COHORT.names_of("boolean"):
        assert set(small[name].dropna().unique()) <= {0, 1}, name
        assert small[name].notna().all(), name
    assert set(small["diagnosis"]) <= set(contract.ED_COHORT.diagnosis.codes)
    assert set(small["treatment"]) <= set(contract.ED_COHORT.treatment.codes)
    codes = set(contract.ED_COHORT.feature("symptoms").categories)
    seen = {c for cell in small["symptoms"] for c in cell.split(contract.SYMPTOM_SEPARATOR) if c}
    assert seen <= codes
    assert (small["symptoms"] == "").any()  # "no symptoms" is an empty string, not NaN
    assert small["age"].between(18, 110).all()


def test_written_csv_has_no_index_and_integer_vitals(tmp_path: Path) -> None:
    path = write_cohort(tmp_path / "c.csv", n_rows=300, seed=5)
    header, first = path.read_text().splitlines()[:2]
    assert header.split(",")[0] == "age"
    assert first.split(",")[0].isdigit()  # age written as 54, not 54.0
    back = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert len(back) == 300


def test_every_pair_is_coherent(small: pd.DataFrame) -> None:
    allowed = small.apply(lambda r: r["treatment"] in ALLOWED_TREATMENTS[r["diagnosis"]], axis=1)
    assert allowed.all()


def test_rejects_too_small_cohorts() -> None:
    with pytest.raises(ValueError, match="at least 100"):
        generate_cohort(n_rows=10)
