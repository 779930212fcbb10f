"""Which model a training run fits, and with which parameters: the "choose the model" stage.

Today the family's defaults with the run's rounds and threads; a model search (e.g. Optuna on
the train split) replaces the body of `choose_model` and nothing downstream changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from train_pipeline.contract import TaskContract
from train_pipeline.fitting import FitOptions, threads_params
from train_pipeline.models.pipeline import DEFAULT_PARAMS


@dataclass(frozen=True)
class ModelChoice:
    """The fit options of a run (model type, seed, main and CV parameters) and the treatment's
    parameters."""

    opts: FitOptions
    treat_params: dict[str, Any]

    @property
    def params(self) -> dict[str, Any]:
        return self.opts.params

    @property
    def cv_params(self) -> dict[str, Any]:
        return self.opts.cv_params


def choose_model(
    task: TaskContract,
    train_df: pd.DataFrame,
    model_type: str = "catboost",
    seed: int = 42,
    iterations: int | None = None,
    threads: int | None = None,
    cv_folds: int = 3,
) -> ModelChoice:
    """The model and parameters to fit on `train_df` (the train split, never the held-out rows).

    Args:
        task: the task contract; with `train_df`, what a model search would run on (the
            defaults used now need neither).
        iterations: boosting rounds (None: the family's default); CV and treatment use fewer.
        threads: booster threads (None: all cores).
    """
    params = {**DEFAULT_PARAMS[model_type], **threads_params(model_type, threads)}
    rounds_key = "iterations" if model_type == "catboost" else "n_estimators"
    if iterations is not None:
        params[rounds_key] = iterations
    cv_params = _scaled(params, rounds_key, 0.25, 2.0)
    treat_params = _scaled(params, rounds_key, 2 / 3, 1.3)
    opts = FitOptions(
        model_type=model_type, seed=seed, params=params, cv_folds=cv_folds, cv_params=cv_params
    )
    return ModelChoice(opts=opts, treat_params=treat_params)


def _scaled(params: dict[str, Any], rounds_key: str, rounds: float, rate: float) -> dict[str, Any]:
    """Fewer boosting rounds at a proportionally higher learning rate (same total step).

    Keeps `make train` under its 3-minute budget: CV runs a quarter of the rounds at twice the
    rate (it measures fold-to-fold spread; the held-out split gives the headline numbers), and
    the treatment model, whose strongest input is the diagnosis, two thirds at 1.3 times.
    """
    out = {**params, rounds_key: max(int(params[rounds_key] * rounds), 10)}
    out["learning_rate"] = min(0.5, float(params.get("learning_rate", 0.1)) * rate)
    return out
