"""The treatment pipeline: patient features + a diagnosis code -> treatment probabilities.

Trained on true diagnoses; at serving time (and in evaluation) it receives the predicted one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.pipeline import Pipeline

from train_pipeline.contract import Feature, TaskContract
from train_pipeline.models.pipeline import assemble, make_classifier

DIAGNOSIS_COLUMN = "diagnosis"


def diagnosis_feature(task: TaskContract) -> Feature:
    """The extra categorical input of the treatment pipeline (codes of the diagnosis target)."""
    return Feature(
        DIAGNOSIS_COLUMN,
        "categorical",
        "diagnosis code",
        "required",
        "Diagnosis (true at training, predicted at serving)",
        categories=task.diagnosis.codes,
    )


def treatment_features(task: TaskContract) -> tuple[Feature, ...]:
    """The task's features plus the diagnosis column (a task feature of that name is replaced)."""
    return (*(f for f in task.features if f.name != DIAGNOSIS_COLUMN), diagnosis_feature(task))


def build_pipeline(
    task: TaskContract,
    model_type: str = "catboost",
    params: Mapping[str, Any] | None = None,
    seed: int = 42,
) -> Pipeline:
    """An UNFITTED treatment pipeline; input = the task's fields + a ``diagnosis`` column."""
    if task.treatment is None:
        raise ValueError(f"task {task.name!r} has no treatment target")
    return assemble(treatment_features(task), make_classifier(model_type, params, seed), seed)
