"""`RetrainConfig`: the plain values one retrain needs, built from `Settings` at the edge.

Its own module so the job, the challenger and the promotion rules all read it without importing
one another (it imports nothing from `retrain`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.settings import Settings
from train_pipeline import register


@dataclass(frozen=True)
class RetrainConfig:
    """Plain values a retrain needs (built from `Settings` at the edge)."""

    data_path: Path
    tracking_uri: str
    bentoml_home: Path
    diagnosis_model_name: str = "healthpredict-diagnosis"
    treatment_model_name: str = "healthpredict-treatment"
    alias: str = "champion"
    metric: str = "f1_macro"
    margin: float = 0.0
    task: str = register.DEFAULT_TASK
    model_type: str | None = None  # None: the champion's
    params: dict[str, Any] = field(default_factory=dict)  # booster overrides (e.g. iterations)
    threads: int | None = None
    seed: int | None = None  # None: the champion run's seed
    test_size: float | None = None  # None: the champion run's, else 0.2
    holdout_path: Path | None = None  # an explicit held-out CSV instead of the split
    allow_no_signal: bool = False  # alias a challenger that fails the champion gate anyway
    full_report: bool = False  # also `make train`'s baselines, SHAP plots, data report (slow)
    shadow_alias: str = "challenger"  # set on a retrained pair that is not promoted
    shadow_min_predictions: int = 0  # > 0: promotion needs shadow evidence (`shadow_gate`)
    database_url: str | None = None  # the store holding the shadow answers and feedback

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> RetrainConfig:
        values: dict[str, Any] = dict(
            data_path=settings.training_data_path,
            tracking_uri=settings.mlflow_tracking_uri,
            bentoml_home=settings.bentoml_home,
            diagnosis_model_name=settings.diagnosis_model_name,
            treatment_model_name=settings.treatment_model_name,
            alias=settings.model_alias,
            metric=settings.retrain_metric,
            margin=settings.retrain_margin,
            holdout_path=settings.retrain_holdout_path,
            shadow_alias=settings.shadow_alias,
            shadow_min_predictions=settings.shadow_min_predictions,
            database_url=settings.database_url,
        )
        return cls(**(values | overrides))

    @property
    def names(self) -> dict[str, str]:
        return register.model_names(self.task, self.diagnosis_model_name, self.treatment_model_name)
