"""Training orchestration: load -> clean -> split -> CV -> fit -> evaluate -> explain -> log."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from train_pipeline import register
from train_pipeline.artifacts import reference_sample, write_run_files
from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.contract import TaskContract
from train_pipeline.data.clean import clean
from train_pipeline.data.load import load_task_data
from train_pipeline.evaluate import BaselineComparison
from train_pipeline.fitting import (
    Assessment,
    FitOptions,
    assess_diagnosis,
    cross_validate,
    explain_diagnosis,
    fit_and_assess_treatment,
    fit_diagnosis,
    threads_params,
)
from train_pipeline.models.pipeline import DEFAULT_PARAMS
from train_pipeline.models.treatment import DIAGNOSIS_COLUMN
from train_pipeline.split import split_dataset
from train_pipeline.task_config import TaskConfig, load_task_config

logger = logging.getLogger(__name__)

STAGES = (
    "load",
    "clean",
    "split",
    "cv",
    "fit diagnosis",
    "fit treatment",
    "evaluate",
    "explain",
    "log",
    "register",
)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced and where it went."""

    task: str
    run_id: str
    diagnosis_version: str | None
    treatment_version: str | None
    tracking_uri: str
    bentoml_home: str
    metrics: dict[str, float]
    baselines: dict[str, BaselineComparison]
    duration_s: float
    meta: BundleMeta
    bentoml_tags: dict[str, str] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)


class _StageTimer:
    """Wall seconds per stage (reported by the CLI, logged), forwarding to a progress hook."""

    def __init__(self, hook: Progress) -> None:
        self.hook = hook
        self.stage: str | None = None
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def enter(self, stage: str) -> None:
        now = time.perf_counter()
        if self.stage is not None:
            self.seconds[self.stage] = self.seconds.get(self.stage, 0.0) + now - self.started
        self.stage, self.started = stage, now
        logger.info("training stage", extra={"stage": stage})
        self.hook(stage)

    def finish(self) -> dict[str, float]:
        self.enter("done")
        return {k: round(v, 2) for k, v in self.seconds.items()}


def resolve_task(task: str | Path) -> tuple[TaskContract, TaskConfig]:
    """The task config (shipped name such as ``heart_cleveland``, or a YAML path) + contract."""
    config = load_task_config(task)
    return config.to_contract(), config


def load_frame(data_path: Path | None, task: TaskContract, config: TaskConfig) -> pd.DataFrame:
    """Canonical columns of the task's CSV (the config's own CSV when `data_path` is None).

    Raises:
        DataError: missing target/feature columns, unparseable values (names the column).
    """
    path = Path(data_path) if data_path is not None else config.resolve_csv()
    if not path.is_file():
        raise FileNotFoundError(f"training data {path} not found (run `make data`?)")
    return load_task_data(path, task, config)


def clean_frame(df: pd.DataFrame, task: TaskContract) -> pd.DataFrame:
    """Dedupe and out-of-range values -> NaN; the report goes to the log."""
    cleaned, report = clean(df, task)
    logger.info("cleaning report", extra={"report": report.as_dict()})
    return cleaned


def _noop(stage: str) -> None:
    return None


def train(
    data_path: Path | None = None,
    task: str | Path = register.DEFAULT_TASK,
    model_type: str = "catboost",
    seed: int = 42,
    tracking_uri: str = "sqlite:///mlflow.db",
    bentoml_home: Path = Path("bentoml_home"),
    n_rows: int | None = None,
    iterations: int | None = None,
    threads: int | None = None,
    cv_folds: int = 3,
    test_size: float = 0.2,
    model_names: tuple[str, str] = ("healthpredict-diagnosis", "healthpredict-treatment"),
    alias: str = "champion",
    frame: pd.DataFrame | None = None,
    promote: bool = True,
    progress: Progress = _noop,
) -> TrainResult:
    """Train both pipelines, log one MLflow run, register them, save them to BentoML.

    Args:
        data_path: CSV to train on (default task: the generated cohort; others: the config's).
        task: ``ed_cohort`` or a task config name / YAML path.
        n_rows: use only the first `n_rows` rows (tests, quick runs).
        iterations: boosting rounds (default 300); CV uses a third of them.
        threads: booster threads (None: all cores).
        frame: train on this DataFrame instead of reading `data_path` (retraining).
        promote: move `alias` to the new versions and save them to BentoML (False: log and
            register only, e.g. a challenger).
    """
    start = time.perf_counter()
    timer = _StageTimer(progress)
    progress = timer.enter
    contract, config = resolve_task(task)
    progress("load")
    df = frame if frame is not None else load_frame(data_path, contract, config)
    if n_rows is not None:
        df = df.iloc[:n_rows]
    _check_columns(df, contract)
    progress("clean")
    df = clean_frame(df, contract)
    df = df.loc[df[contract.diagnosis.name].notna()]
    progress("split")
    train_df, test_df = split_dataset(
        df, contract.feature_names, contract.diagnosis.name, test_size, seed
    )
    params = {**DEFAULT_PARAMS[model_type], **threads_params(model_type, threads)}
    rounds_key = "iterations" if model_type == "catboost" else "n_estimators"
    if iterations is not None:
        params[rounds_key] = iterations
    cv_params = _scaled(params, rounds_key, 0.25, 2.0)
    treat_params = _scaled(params, rounds_key, 2 / 3, 1.3)
    opts = FitOptions(
        model_type=model_type, seed=seed, params=params, cv_folds=cv_folds, cv_params=cv_params
    )
    progress("cv")
    cv = cross_validate(contract, train_df, opts, cv_params)
    progress("fit diagnosis")
    pipe, classes = fit_diagnosis(contract, train_df, opts, params)
    out = Assessment(diagnosis_pipeline=pipe, diagnosis_classes=classes)
    out.metrics |= {f"diagnosis_{k}": v for k, v in cv.items()}
    progress("evaluate")
    pred_diag = assess_diagnosis(contract, train_df, test_df, out, seed, explain=False)
    if contract.treatment is not None:
        progress("fit treatment")
        fit_and_assess_treatment(contract, train_df, test_df, pred_diag, out, opts, treat_params)
    progress("explain")
    explain_diagnosis(test_df, out, seed)
    meta = BundleMeta(
        task=contract.name,
        contract_fingerprint=contract.fingerprint(),
        run_id="",
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        model_type=model_type,
        diagnosis_classes=classes,
        treatment_classes=out.treatment_classes,
        allowed_pairs=out.allowed_pairs,
        metrics=dict(out.metrics),
        feature_importance=out.importance,
        reference_stats=reference_sample(train_df, contract, 300, seed),
    )
    run_params = {
        "model_type": model_type,
        "seed": seed,
        "task": contract.name,
        "n_train": len(train_df),
        "n_test": len(test_df),
        "cv_folds": cv_folds,
        "class_weight": opts.class_weight,
        "data_path": str(data_path or "frame"),
        **{f"model_{k}": v for k, v in params.items()},
        **{f"treatment_model_{k}": v for k, v in treat_params.items()},
        **{f"cv_model_{k}": v for k, v in cv_params.items()},
    }
    data_info = {
        "source": str(data_path or "in-memory frame"),
        "rows after cleaning": len(df),
        "train rows": len(train_df),
        "held-out rows": len(test_df),
        "diagnosis classes": len(classes),
    }
    names = register.model_names(contract.name, *model_names)
    pipelines = {"diagnosis": (pipe, test_df[list(contract.feature_names)].head(5))}
    if out.treatment_pipeline is not None:
        example = (
            test_df[list(contract.feature_names)]
            .head(5)
            .assign(**{DIAGNOSIS_COLUMN: pred_diag[:5]})
        )
        pipelines["treatment"] = (out.treatment_pipeline, example)
    progress("log")
    with tempfile.TemporaryDirectory(prefix="hp-run-") as tmp:
        write_run_files(Path(tmp), contract, out, train_df, run_params, data_info, seed)
        bundle, meta = register.log_bundle(
            tracking_uri,
            register.experiment_name(contract.name),
            pipelines,
            meta,
            names,
            run_params,
            out.metrics,
            Path(tmp),
            run_name=f"{contract.name}-{model_type}",
        )
    progress("register")
    tags: dict[str, str] = {}
    if promote:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        versions = {"diagnosis": bundle.diagnosis_version, "treatment": bundle.treatment_version}
        register.set_champion(client, names, versions, alias)
        tags = register.save_to_bentoml(
            bentoml_home, names, {r: p for r, (p, _) in pipelines.items()}, meta, bundle
        )
    return TrainResult(
        task=contract.name,
        run_id=bundle.run_id,
        diagnosis_version=bundle.diagnosis_version,
        treatment_version=bundle.treatment_version,
        tracking_uri=tracking_uri,
        bentoml_home=str(bentoml_home),
        metrics=out.metrics,
        baselines=out.baselines,
        duration_s=time.perf_counter() - start,
        meta=meta,
        bentoml_tags=tags,
        stage_seconds=timer.finish(),
    )


def _scaled(params: dict[str, Any], rounds_key: str, rounds: float, rate: float) -> dict[str, Any]:
    """Fewer boosting rounds at a proportionally higher learning rate (same total step).

    Keeps `make train` under its 3-minute budget: CV runs a quarter of the rounds at twice the
    rate (it measures fold-to-fold spread; the held-out split gives the headline numbers), and
    the treatment model, whose strongest input is the diagnosis, two thirds at 1.3 times.
    """
    out = {**params, rounds_key: max(int(params[rounds_key] * rounds), 10)}
    out["learning_rate"] = min(0.5, float(params.get("learning_rate", 0.1)) * rate)
    return out


def _check_columns(df: pd.DataFrame, task: TaskContract) -> None:
    """A clear error (not a KeyError deep in a transformer) when the data misses columns."""
    needed = [*task.feature_names, task.diagnosis.name]
    if task.treatment is not None:
        needed.append(task.treatment.name)
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"training data for task {task.name!r} lacks columns {missing}")


def result_dict(result: TrainResult) -> dict[str, Any]:
    """JSON-ready summary of a run (CLI ``--json``, logs)."""
    out = asdict(result)
    out.pop("meta")
    return out
