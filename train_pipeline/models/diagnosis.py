"""The diagnosis pipeline: patient features -> diagnosis class probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.pipeline import Pipeline

from train_pipeline.contract import TaskContract
from train_pipeline.models.pipeline import assemble, make_classifier


def build_pipeline(
    task: TaskContract,
    model_type: str = "catboost",
    params: Mapping[str, Any] | None = None,
    seed: int = 42,
) -> Pipeline:
    """An UNFITTED diagnosis pipeline taking a DataFrame (or column mapping) of `task`'s fields."""
    return assemble(task.features, make_classifier(model_type, params, seed), seed)
