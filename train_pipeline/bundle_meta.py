"""What travels with every trained pair of pipelines: the metadata serving needs to trust them.

Written by training (`register.py`) next to both models in MLflow (run artifact `bundle_meta.json`,
and the same dict as BentoML model metadata); read by `app/serving/loader.py`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class BundleMeta:
    """Facts about one training run's diagnosis + treatment pipelines.

    Attributes:
        task: task contract name (``ed_cohort`` for the served task).
        contract_fingerprint: `TaskContract.fingerprint()` at training time.
        run_id: MLflow run that produced both pipelines ("" when MLflow was not used).
        trained_at: ISO-8601 UTC timestamp.
        model_type: ``catboost`` or ``xgboost``.
        diagnosis_classes: class codes, in the diagnosis pipeline's `classes_` order.
        treatment_classes: class codes, in the treatment pipeline's `classes_` order.
        allowed_pairs: diagnosis code -> treatment codes allowed for it (coherence table).
        metrics: headline held-out metrics (``diagnosis_f1_macro``, ``treatment_e2e_f1_macro``…).
        feature_importance: global mean |SHAP| per original feature, for the diagnosis model.
        reference_stats: small training reference sample for drift (column -> list of values).
        decision_threshold: binary tasks with an operating point: the positive class (the
            second diagnosis class) is predicted when its probability reaches this.
    """

    task: str
    contract_fingerprint: str
    run_id: str
    trained_at: str
    model_type: str
    diagnosis_classes: list[str]
    treatment_classes: list[str]
    allowed_pairs: dict[str, list[str]]
    metrics: dict[str, float] = field(default_factory=dict)
    feature_importance: dict[str, float] = field(default_factory=dict)
    reference_stats: dict[str, list[Any]] = field(default_factory=dict)
    decision_threshold: float | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BundleMeta:
        return cls(**json.loads(text))
