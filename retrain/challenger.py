"""The challenger's data and fit: original split + corrected feedback rows, H2's fitting code.

Feedback rows only ever go to training: they are dropped when equal to a held-out row.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from train_pipeline.contract import TaskContract
from train_pipeline.data.load import load_task_data
from train_pipeline.fitting import (
    Assessment,
    FitOptions,
    assess_diagnosis,
    fit_and_assess_treatment,
    fit_diagnosis,
)
from train_pipeline.models import treatment
from train_pipeline.models.coherence import learn_allowed_pairs, merge_overrides
from train_pipeline.models.pipeline import DEFAULT_PARAMS, class_weights
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN
from train_pipeline.split import class_order, encode_labels, split_dataset
from train_pipeline.train import clean_frame

logger = logging.getLogger(__name__)

MODEL_PARAM_PREFIX = "model_"


def _parse(value: str) -> Any:
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    return {"True": True, "False": False, "None": None}.get(value, value)


def champion_recipe(run_params: Mapping[str, str], model_type: str) -> dict[str, Any]:
    """The booster parameters the champion's run logged (``model_<name>``), typed again, for
    the default booster keys; retraining reuses the champion's recipe."""
    known = set(DEFAULT_PARAMS.get(model_type, {})) | {"thread_count", "n_jobs"}
    return {
        key.removeprefix(MODEL_PARAM_PREFIX): _parse(value)
        for key, value in run_params.items()
        if key.startswith(MODEL_PARAM_PREFIX) and key.removeprefix(MODEL_PARAM_PREFIX) in known
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


def fit_treatment(
    task: TaskContract, train: pd.DataFrame, opts: FitOptions, out: Assessment
) -> None:
    """The treatment pipeline as `make train` fits it (true diagnoses in, class weights,
    allowed pairs learned from the same rows), without the baseline comparisons."""
    assert task.treatment is not None
    target, dtarget = task.treatment.name, task.diagnosis.name
    tr = train.loc[train[target].notna()].copy()
    tr[DIAGNOSIS_COLUMN] = tr[dtarget].astype(str)
    classes = class_order(task.treatment.codes, tr[target].astype(str).unique())
    y = encode_labels(tr[target], classes)
    pipe = treatment.build_pipeline(task, opts.model_type, opts.params, opts.seed)
    pipe.fit(tr, y, model__sample_weight=class_weights(y, opts.class_weight))
    learned = learn_allowed_pairs(tr[DIAGNOSIS_COLUMN], tr[target].astype(str))
    out.treatment_pipeline, out.treatment_classes = pipe, classes
    out.allowed_pairs = merge_overrides(learned, task.allowed_pairs)


def fit_challenger(
    task: TaskContract, train: pd.DataFrame, test: pd.DataFrame, opts: FitOptions, full: bool
) -> Assessment:
    """Both challenger pipelines, fitted by H2's code on the augmented training rows.

    ``full`` also runs `make train`'s whole assessment (baselines, SHAP, figures): slower.
    """
    pipe, classes = fit_diagnosis(task, train, opts, opts.params)
    out = Assessment(diagnosis_pipeline=pipe, diagnosis_classes=classes)
    if full:
        pred_diag = assess_diagnosis(task, train, test, out, opts.seed)
        if task.treatment is not None:
            fit_and_assess_treatment(task, train, test, pred_diag, out, opts, opts.params)
    elif task.treatment is not None:
        fit_treatment(task, train, opts, out)
    return out
