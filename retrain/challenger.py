"""The challenger's data and fit: original split + corrected feedback rows, H2's fitting code.

Feedback rows only ever go to training: they are dropped when equal to a held-out row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from retrain import promote as pr
from retrain.config import RetrainConfig
from train_pipeline.contract import TaskContract
from train_pipeline.data.load import load_task_data
from train_pipeline.fitting import (
    Assessment,
    FitOptions,
    assess_diagnosis,
    fit_and_assess_treatment,
    fit_diagnosis,
    fit_treatment,
    threads_params,
)
from train_pipeline.models.calibrated import METHODS
from train_pipeline.models.pipeline import DEFAULT_PARAMS
from train_pipeline.split import split_dataset
from train_pipeline.train import clean_frame, resolve_task

logger = logging.getLogger(__name__)

MODEL_PARAM_PREFIX = "model_"
TREATMENT_PARAM_PREFIX = "treatment_model_"
DEFAULT_TEST_SIZE = 0.2
DEFAULT_SEED = 42
ProgressFn = Callable[[str], None]


def _parse(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return {"True": True, "False": False, "None": None}.get(value, value)


def champion_recipe(
    run_params: Mapping[str, str], model_type: str, prefix: str = MODEL_PARAM_PREFIX
) -> dict[str, Any]:
    """The booster parameters the champion's run logged (``model_<name>`` for the diagnosis,
    ``treatment_model_<name>`` for the treatment), typed again, for the default booster keys;
    retraining reuses the champion's recipe."""
    known = set(DEFAULT_PARAMS.get(model_type, {})) | {"thread_count", "n_jobs"}
    return {
        key.removeprefix(prefix): _parse(value)
        for key, value in run_params.items()
        if key.startswith(prefix) and key.removeprefix(prefix) in known
    }


def feedback_frame(
    rows: Sequence[dict[str, Any]], task: TaskContract, task_cfg: Any, tmp: Path
) -> pd.DataFrame:
    """Corrected rows in exactly the training frame's dtypes (through the same CSV loader)."""
    columns = [*task.feature_names, task.diagnosis.name]
    if task.treatment is not None:
        columns.append(task.treatment.name)
    if not rows:
        return pd.DataFrame(columns=columns)
    path = tmp / "feedback.csv"
    pd.DataFrame(list(rows)).reindex(columns=columns).to_csv(path, index=False)
    return load_task_data(path, task, task_cfg)


def without_leaks(
    feedback: pd.DataFrame, test: pd.DataFrame, columns: Sequence[str]
) -> pd.DataFrame:
    """Drop feedback rows whose features equal a held-out row (they must never score)."""
    if feedback.empty:
        return feedback

    def keys(df: pd.DataFrame) -> pd.Series:
        return pd.util.hash_pandas_object(df[list(columns)].astype(str), index=False)

    leaked = keys(feedback).isin(set(keys(test))).to_numpy()
    if leaked.any():
        logger.warning(
            "feedback rows equal to held-out rows dropped", extra={"n": int(leaked.sum())}
        )
    return feedback.loc[~leaked].reset_index(drop=True)


def load_split(
    data_path: Path,
    task: TaskContract,
    task_cfg: Any,
    seed: int,
    test_size: float,
    holdout_path: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The original data's (train, held-out) split, made the way `make train` makes it.

    With ``holdout_path`` (an adjudicated evaluation CSV), that file is the held-out set and
    all of ``data_path`` trains (minus rows equal to held-out ones).
    """
    df = clean_frame(load_task_data(data_path, task, task_cfg), task)
    df = df.loc[df[task.diagnosis.name].notna()]
    if holdout_path is None:
        return split_dataset(df, task.feature_names, task.diagnosis.name, test_size, seed)
    test = clean_frame(load_task_data(holdout_path, task, task_cfg), task)
    return without_leaks(df, test, task.feature_names), test.reset_index(drop=True)


def fit_challenger(
    task: TaskContract,
    train: pd.DataFrame,
    test: pd.DataFrame,
    opts: FitOptions,
    full: bool,
    treatment_params: dict[str, Any] | None = None,
) -> Assessment:
    """Both challenger pipelines, fitted by H2's code on the augmented training rows.

    ``full`` also runs `make train`'s whole assessment (baselines, SHAP, figures): slower.
    ``treatment_params`` default to the diagnosis parameters (``opts.params``).
    """
    treat_params = opts.params if treatment_params is None else treatment_params
    pipe, classes = fit_diagnosis(task, train, opts, opts.params)
    out = Assessment(diagnosis_pipeline=pipe, diagnosis_classes=classes)
    if full:
        pred_diag = assess_diagnosis(task, train, test, out, opts.seed)
        if task.treatment is not None:
            fit_and_assess_treatment(task, train, test, pred_diag, out, opts, treat_params)
    elif task.treatment is not None:
        fit_treatment(task, train, opts, treat_params, out)
    return out


@dataclass
class Prepared:
    """Everything fixed before fitting: the task, the champion, the split."""

    task: TaskContract
    task_cfg: Any
    champion: pr.Champion
    seed: int
    test_size: float
    train: pd.DataFrame
    test: pd.DataFrame


def prepare(config: RetrainConfig) -> Prepared:
    """Load the champion, then the original data split exactly as its run split it."""
    task, task_cfg = resolve_task(config.task)
    champion = pr.load_champion(config)
    if champion.meta.contract_fingerprint != task.fingerprint():
        raise ValueError(
            "the champion was trained on another feature contract "
            f"({champion.meta.contract_fingerprint} != {task.fingerprint()})"
        )
    params = champion.run_params
    seed = config.seed if config.seed is not None else int(params.get("seed", DEFAULT_SEED))
    test_size = config.test_size or float(params.get("test_size", DEFAULT_TEST_SIZE))
    train, test = load_split(config.data_path, task, task_cfg, seed, test_size, config.holdout_path)
    if "n_test" in params and config.holdout_path is None and int(params["n_test"]) != len(test):
        logger.warning(
            "held-out size differs from the champion run's (other data or split?)",
            extra={"champion_n_test": params["n_test"], "n_test": len(test)},
        )
    return Prepared(task, task_cfg, champion, seed, test_size, train, test)


def score_both(p: Prepared, out: Assessment) -> tuple[dict[str, float], dict[str, float]]:
    """(champion, challenger) scores on the same held-out rows, same label space."""
    champ = p.champion
    classes = pr.common_classes(
        p.task,
        p.test,
        (out.diagnosis_classes, out.treatment_classes),
        (champ.meta.diagnosis_classes, champ.meta.treatment_classes),
    )
    challenger = pr.score_pair(
        p.task,
        p.test,
        (out.diagnosis_pipeline, out.diagnosis_classes),
        (out.treatment_pipeline, out.treatment_classes, out.allowed_pairs),
        classes,
    )
    champion = pr.score_pair(
        p.task,
        p.test,
        (champ.diagnosis_pipeline, champ.meta.diagnosis_classes),
        (champ.treatment_pipeline, champ.meta.treatment_classes, champ.meta.allowed_pairs),
        classes,
    )
    return champion, challenger


def fit_options(config: RetrainConfig, p: Prepared) -> tuple[FitOptions, dict[str, Any]]:
    """Options and treatment parameters: the champion's recipe (its logged booster
    parameters, per model, and its calibration method), then the config's threads and
    overrides (applied to both)."""
    model_type = config.model_type or p.champion.meta.model_type
    same_kind = model_type == p.champion.meta.model_type
    base = DEFAULT_PARAMS[model_type]
    extra = {**threads_params(model_type, config.threads), **config.params}
    diag = champion_recipe(p.champion.run_params, model_type) if same_kind else {}
    treat = (
        champion_recipe(p.champion.run_params, model_type, TREATMENT_PARAM_PREFIX)
        if same_kind
        else {}
    )
    params = {**base, **diag, **extra}
    treat_params = {**base, **(treat or diag), **extra}
    # the champion's calibration is part of its recipe (run param ``calibration``)
    method = p.champion.run_params.get("calibration") if same_kind else None
    calibration = method if method in METHODS else None
    opts = FitOptions(model_type=model_type, seed=p.seed, params=params, calibration=calibration)
    return opts, treat_params


@dataclass
class Trained:
    """A fitted challenger and both models' held-out scores."""

    out: Assessment
    opts: FitOptions
    treatment_params: dict[str, Any]
    n_train: int
    n_feedback: int
    champion_scores: dict[str, float]
    challenger_scores: dict[str, float]


def train_challenger(
    config: RetrainConfig,
    p: Prepared,
    feedback_rows: Sequence[dict[str, Any]],
    tmp: Path,
    say: ProgressFn,
) -> Trained:
    """Fit on the original training rows + feedback (never the held-out rows), score both."""
    feedback = without_leaks(
        feedback_frame(feedback_rows, p.task, p.task_cfg, tmp), p.test, p.task.feature_names
    )
    augmented = pd.concat([p.train, feedback], ignore_index=True) if len(feedback) else p.train
    opts, treat_params = fit_options(config, p)
    say(f"fit challenger ({len(p.train)} original + {len(feedback)} feedback rows)")
    out = fit_challenger(p.task, augmented, p.test, opts, config.full_report, treat_params)
    say(f"score champion and challenger on {len(p.test)} held-out rows")
    champion_scores, challenger_scores = score_both(p, out)
    return Trained(
        out, opts, treat_params, len(augmented), len(feedback), champion_scores, challenger_scores
    )
