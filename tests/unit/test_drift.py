"""Drift: a window drawn like training shows no dataset drift; a shifted one does."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from app.monitoring.drift import DriftResult, compute_drift, expand, to_frame, top_symptoms
from train_pipeline.contract import ED_COHORT
from train_pipeline.data.generate import generate_cohort

SHIFTED = ("age", "temperature", "spo2")


def shift(df: pd.DataFrame) -> pd.DataFrame:
    """Older, feverish, hypoxic patients (ranges kept within the contract)."""
    out = df.copy()
    out["age"] = (out["age"] + 25).clip(upper=110)
    out["temperature"] = (out["temperature"] + 1.8).clip(upper=44)
    out["spo2"] = (out["spo2"] - 8).clip(lower=40)
    return out


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return to_frame(generate_cohort(800, seed=11).to_dict("records"))


@pytest.fixture(scope="module")
def live() -> pd.DataFrame:
    return generate_cohort(400, seed=12)


@pytest.fixture(scope="module")
def same(reference: pd.DataFrame, live: pd.DataFrame) -> DriftResult:
    return compute_drift(reference, to_frame(live.to_dict("records")), run_id="r1")


@pytest.fixture(scope="module")
def shifted(reference: pd.DataFrame, live: pd.DataFrame) -> DriftResult:
    return compute_drift(reference, to_frame(shift(live).to_dict("records")), run_id="r1")


def drifted(result: DriftResult) -> set[str]:
    return {f.feature for f in result.summary.features if f.drifted}


def test_window_drawn_like_training_has_no_dataset_drift(same: DriftResult) -> None:
    s = same.summary
    assert not s.dataset_drift
    assert s.drift_share < 0.2, drifted(same)
    assert not drifted(same) & set(SHIFTED)
    assert (s.window_size, s.reference_size, s.run_id) == (400, 800, "r1")


def test_shifted_window_drifts_on_the_shifted_features(
    shifted: DriftResult, same: DriftResult
) -> None:
    assert set(SHIFTED) <= drifted(shifted)
    assert shifted.summary.drift_share > same.summary.drift_share
    assert shifted.summary.n_drifted == len(drifted(shifted))


def test_every_contract_field_is_tested_or_explained(same: DriftResult) -> None:
    s = same.summary
    tested = {f.feature for f in s.features} | set(s.skipped)
    for name in ED_COHORT.feature_names:
        if name == "symptoms":
            assert "symptoms_count" in tested
        else:
            assert name in tested, name
    assert s.n_features == len(s.features)


def test_html_report_names_the_drifted_features(shifted: DriftResult) -> None:
    assert shifted.html.lstrip().lower().startswith("<html") or "<html" in shifted.html[:500]
    for name in SHIFTED:
        assert name in shifted.html


def test_sparse_columns_are_skipped_with_a_reason(
    reference: pd.DataFrame, live: pd.DataFrame
) -> None:
    window = live.head(40).copy()
    window["troponin"] = None
    result = compute_drift(reference, to_frame(window.to_dict("records")))
    assert "troponin" in result.summary.skipped
    assert "troponin" not in {f.feature for f in result.summary.features}


@pytest.mark.parametrize(
    ("symptoms", "expected"),
    [("fever;cough", ["fever", "cough"]), (["dyspnea"], ["dyspnea"]), (None, []), ("", [])],
    ids=["joined", "list", "none", "empty"],
)
def test_symptoms_expand_to_count_and_flags(symptoms: Any, expected: list[str]) -> None:
    frame = to_frame([{"age": 50, "sex": "M", "symptoms": symptoms}])
    assert frame.loc[0, "symptoms"] == expected
    out = expand(frame, ["fever", "cough"])
    assert out.loc[0, "symptoms_count"] == len(expected)
    assert out.loc[0, "symptoms_fever"] == int("fever" in expected)
    assert "symptoms" not in out


def test_top_symptoms_are_the_most_frequent(reference: pd.DataFrame) -> None:
    top = top_symptoms(reference)
    counts = pd.Series([c for codes in reference["symptoms"] for c in codes]).value_counts()
    assert len(top) == 8
    assert counts[top[0]] == counts.max()
