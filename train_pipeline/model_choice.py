"""Which model a training run fits, and with which parameters: the "choose the model" stage.

``model_type="auto"`` (the CLI's default) runs the model search of `selection.select_model`
(Optuna over CatBoost, XGBoost and logistic regression, CV on the train split only); a named
family is fitted with its defaults and the run's rounds and threads, no search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from train_pipeline.contract import TaskContract
from train_pipeline.fitting import FitOptions, threads_params
from train_pipeline.models.pipeline import BOOSTERS, DEFAULT_PARAMS
from train_pipeline.selection import CANDIDATES, SearchBudget, Selection, select_model

AUTO = "auto"


@dataclass(frozen=True)
class ModelChoice:
    """The fit options of a run (model type, seed, main and CV parameters) and the treatment's
    parameters."""

    opts: FitOptions
    treat_params: dict[str, Any]
    selection: Selection | None = None  # the model search behind an ``auto`` choice

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
    budget: SearchBudget | None = None,
    metric: str = "f1_macro",
) -> ModelChoice:
    """The model and parameters to fit on `train_df` (the train split, never the held-out rows).

    Args:
        model_type: ``auto`` (search every candidate) or one family (its defaults, no search).
        iterations: boosting rounds (None: the family's default); CV and treatment use fewer.
        threads: booster threads (None: all cores).
        budget / metric: the search's budget and the task's primary metric (``auto`` only).
    """

    def base(family: str) -> dict[str, Any]:
        params = {**DEFAULT_PARAMS[family], **threads_params(family, threads)}
        if iterations is not None and family in BOOSTERS:
            params["iterations" if family == "catboost" else "n_estimators"] = iterations
        return params

    selection = None
    params = base(model_type) if model_type != AUTO else {}
    if model_type == AUTO:
        selection = select_model(
            task, train_df, CANDIDATES, base, budget or SearchBudget(), metric, seed
        )
        model_type, params = selection.winner, dict(selection.best.params)
    cv_params, treat_params = dict(params), dict(params)
    if model_type in BOOSTERS:
        rounds_key = "iterations" if model_type == "catboost" else "n_estimators"
        cv_params = _scaled(params, rounds_key, 0.25, 2.0)
        treat_params = _scaled(params, rounds_key, 2 / 3, 1.3)
    opts = FitOptions(
        model_type=model_type, seed=seed, params=params, cv_folds=cv_folds, cv_params=cv_params
    )
    return ModelChoice(opts=opts, treat_params=treat_params, selection=selection)


def _scaled(params: dict[str, Any], rounds_key: str, rounds: float, rate: float) -> dict[str, Any]:
    """Fewer boosting rounds at a proportionally higher learning rate (same total step).

    Keeps `make train` under its 3-minute budget: CV runs a quarter of the rounds at twice the
    rate (it measures fold-to-fold spread; the held-out split gives the headline numbers), and
    the treatment model, whose strongest input is the diagnosis, two thirds at 1.3 times.
    """
    out = {**params, rounds_key: max(int(params[rounds_key] * rounds), 10)}
    out["learning_rate"] = min(0.5, float(params.get("learning_rate", 0.1)) * rate)
    return out
