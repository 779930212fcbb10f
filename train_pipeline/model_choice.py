"""Which model a training run fits, and with which parameters: the "choose the model" stage.

``model_type="auto"`` (the CLI's default) runs the model search of `selection.select_model`
(Optuna over CatBoost, XGBoost and logistic regression, CV on the train split only); a named
family is fitted with its defaults and the run's rounds and threads, no search.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from train_pipeline.calibration import CalibrationChoice, choose_calibration
from train_pipeline.contract import TaskContract
from train_pipeline.fitting import FitOptions, threads_params
from train_pipeline.models.pipeline import BOOSTERS, DEFAULT_PARAMS
from train_pipeline.parsimony import repeats_for
from train_pipeline.selection import (
    CANDIDATES,
    SearchBudget,
    Selection,
    out_of_fold,
    select_model,
)
from train_pipeline.split import class_order

AUTO = "auto"


@dataclass(frozen=True)
class ModelChoice:
    """The fit options of a run (model type, seed, main and CV parameters) and the treatment's
    parameters."""

    opts: FitOptions
    treat_params: dict[str, Any]
    selection: Selection | None = None  # the model search behind an ``auto`` choice
    calibration: CalibrationChoice | None = None  # `with_calibration`'s decision
    oof: tuple[np.ndarray, np.ndarray] | None = None  # out-of-fold (labels, proba) as served

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
    calibration: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> ModelChoice:
    """The model and parameters to fit on `train_df` (the train split, never the held-out rows).

    Args:
        model_type: ``auto`` (search every candidate) or one family (its defaults, no search).
        iterations: boosting rounds (None: the family's default); CV and treatment use fewer.
        threads: booster threads (None: all cores).
        budget / metric: the search's budget and the task's primary metric (``auto`` only).
        calibration: `with_calibration`'s mode, run after the choice (stage ``calibrate``
            reported to ``progress``).
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
        model_type, params = selection.winner, selection.params
    cv_params, treat_params = dict(params), dict(params)
    if model_type in BOOSTERS:
        rounds_key = "iterations" if model_type == "catboost" else "n_estimators"
        cv_params = _scaled(params, rounds_key, 0.25, 2.0)
        treat_params = _scaled(params, rounds_key, 2 / 3, 1.3)
    opts = FitOptions(
        model_type=model_type, seed=seed, params=params, cv_folds=cv_folds, cv_params=cv_params
    )
    choice = ModelChoice(opts=opts, treat_params=treat_params, selection=selection)
    if progress is not None:
        progress("calibrate")
    return with_calibration(choice, task, train_df, metric, budget, calibration)


def with_calibration(
    choice: ModelChoice,
    task: TaskContract,
    train_df: pd.DataFrame,
    metric: str,
    budget: SearchBudget | None = None,
    mode: str = "auto",
) -> ModelChoice:
    """The choice with its calibration decided (`calibration.choose_calibration`) on the
    out-of-fold probabilities of the training split: the search's winning trial's, or a CV of
    a forced model (the search's rows and rounds). ``oof`` keeps them as they will be served
    (calibrated when a method is chosen), for the operating point. ``mode``: ``auto``,
    ``none`` (no calibration, nothing compared) or a method to apply whatever the comparison."""
    if mode == "none":
        return choice
    opts = choice.opts
    if choice.selection is not None:
        y, proba = choice.selection.oof_y, choice.selection.oof_proba
    else:
        y, proba = out_of_fold(
            task, train_df, opts.model_type, opts.params, budget or SearchBudget(), opts.seed
        )
    classes = class_order(task.diagnosis.codes, train_df[task.diagnosis.name].astype(str).unique())
    forced = None if mode == "auto" else mode
    repeats = repeats_for(len(y))  # a small split's gain must hold on several cross-fits
    cal = choose_calibration(y, proba, classes, metric, opts.seed, forced, repeats)
    opts = replace(opts, calibration=cal.method)
    return replace(choice, opts=opts, calibration=cal, oof=(y, cal.oof_proba))


def _scaled(params: dict[str, Any], rounds_key: str, rounds: float, rate: float) -> dict[str, Any]:
    """Fewer boosting rounds at a proportionally higher learning rate (same total step).

    Keeps `make train` under its 3-minute budget: CV runs a quarter of the rounds at twice the
    rate (it measures fold-to-fold spread; the held-out split gives the headline numbers), and
    the treatment model, whose strongest input is the diagnosis, two thirds at 1.3 times.
    """
    out = {**params, rounds_key: max(int(params[rounds_key] * rounds), 10)}
    out["learning_rate"] = min(0.5, float(params.get("learning_rate", 0.1)) * rate)
    return out
