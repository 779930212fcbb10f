"""Task-config fields of issue 14: the primary metric and a binary task's operating point."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from train_pipeline.gate import signal_gate
from train_pipeline.task_config import TaskConfig, load_task_config


def _spec(task: str, **extra: object) -> dict[str, object]:
    return {**load_task_config(task).model_dump(mode="json", exclude_defaults=True), **extra}


def test_stroke_ships_a_screening_operating_point() -> None:
    stroke = load_task_config("stroke")
    assert stroke.primary_metric == "roc_auc"
    assert stroke.operating_point is not None and stroke.operating_point.sensitivity == 0.8
    assert load_task_config("ed_cohort").primary_metric == "f1_macro"


@pytest.mark.parametrize(
    "extra",
    [
        {"operating_point": {"sensitivity": 0.8}},  # dermatology has six classes
        {"primary_metric": "f2"},
    ],
)
def test_binary_only_settings_are_refused_on_a_multiclass_task(extra: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="binary diagnosis"):
        TaskConfig.model_validate(_spec("dermatology", **extra))


@pytest.mark.parametrize(
    "op", [{}, {"sensitivity": 0.8, "metric": "f2"}, {"sensitivity": 1.2}, {"metric": "f3"}]
)
def test_an_operating_point_is_one_valid_rule(op: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TaskConfig.model_validate(_spec("pima_diabetes", operating_point=op))


def test_gate_verdicts() -> None:
    assert signal_gate((0.01, 0.2)).passed
    refused = signal_gate((-0.02, 0.1))
    assert not refused.passed and "no demonstrable signal" in refused.reason
    assert not signal_gate((float("nan"), 0.1)).passed
    overridden = signal_gate((-0.02, 0.1), allow_no_signal=True)
    assert overridden.passed and overridden.overridden
