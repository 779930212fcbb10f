"""A fitted, evaluated training run, and what it logs: bundle metadata, params, data, examples.

Pure values (no MLflow): `train.py` hands them to `register.log_bundle`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from train_pipeline.artifacts import reference_sample
from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.contract import TaskContract
from train_pipeline.fitting import Assessment
from train_pipeline.model_choice import ModelChoice
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN


@dataclass(frozen=True)
class FittedRun:
    """What the fit and evaluate stages hand to the register stage."""

    task: TaskContract
    choice: ModelChoice
    data_path: Path | None
    cleaned_rows: int
    train_df: pd.DataFrame
    test_df: pd.DataFrame
    out: Assessment
    pred_diag: np.ndarray
    """Predicted diagnosis of every held-out row (the treatment's input example)."""

    def bundle_meta(self) -> BundleMeta:
        """The bundle's metadata (its run id is filled in when the run is logged)."""
        out, opts = self.out, self.choice.opts
        return BundleMeta(
            task=self.task.name,
            contract_fingerprint=self.task.fingerprint(),
            run_id="",
            trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
            model_type=opts.model_type,
            diagnosis_classes=out.diagnosis_classes,
            treatment_classes=out.treatment_classes,
            allowed_pairs=out.allowed_pairs,
            metrics=dict(out.metrics),
            feature_importance=out.importance,
            reference_stats=reference_sample(self.train_df, self.task, 300, opts.seed),
            decision_threshold=out.metrics.get("diagnosis_op_threshold"),
        )

    def run_params(self) -> dict[str, Any]:
        """The MLflow run's params: the recipe, the split sizes and every model parameter."""
        choice = self.choice
        return {
            "model_type": choice.opts.model_type,
            "seed": choice.opts.seed,
            "task": self.task.name,
            "n_train": len(self.train_df),
            "n_test": len(self.test_df),
            "cv_folds": choice.opts.cv_folds,
            "class_weight": choice.opts.class_weight,
            "calibration": choice.opts.calibration or "none",
            "data_path": str(self.data_path or "frame"),
            **{f"model_{k}": v for k, v in choice.params.items()},
            **{f"treatment_model_{k}": v for k, v in choice.treat_params.items()},
            **{f"cv_model_{k}": v for k, v in choice.cv_params.items()},
            **self._selection_params(),
        }

    def _selection_params(self) -> dict[str, Any]:
        sel = self.choice.selection
        if sel is None:
            return {"selection": "forced"}
        return {
            "selection": "auto",
            "selection_metric": sel.metric,
            "selection_winner": sel.winner,
            "selection_reason": sel.reason(),
            "selection_rows": sel.n_rows,
        }

    def trial_runs(self) -> list[dict[str, Any]]:
        """The search's trials as nested MLflow runs (name, params, metrics, tags)."""
        sel = self.choice.selection
        if sel is None:
            return []
        return [
            {
                "name": f"{t.family}-trial-{t.number}",
                "params": {"family": t.family, **t.params},
                "metrics": (
                    {f"cv_{sel.metric}": t.score, "seconds": t.seconds}
                    if t.score is not None
                    else {"seconds": t.seconds}
                ),
                "tags": {"trial.state": t.state, "trial.selected": str(t.family == sel.winner)},
            }
            for t in sel.trials
        ]

    def data_info(self) -> dict[str, Any]:
        """The model card's "Data" section."""
        return {
            "source": str(self.data_path or "in-memory frame"),
            "rows after cleaning": self.cleaned_rows,
            "train rows": len(self.train_df),
            "held-out rows": len(self.test_df),
            "diagnosis classes": len(self.out.diagnosis_classes),
        }

    def pipelines(self) -> dict[str, tuple[Pipeline, pd.DataFrame]]:
        """Role -> (fitted pipeline, input example rows); the treatment's add the diagnosis."""
        features = list(self.task.feature_names)
        examples = self.test_df[features].head(5)
        pipelines = {"diagnosis": (self.out.diagnosis_pipeline, examples)}
        if self.out.treatment_pipeline is not None:
            example = examples.assign(**{DIAGNOSIS_COLUMN: self.pred_diag[:5]})
            pipelines["treatment"] = (self.out.treatment_pipeline, example)
        return pipelines
