"""Training orchestration: load -> split -> choose the model -> fit -> evaluate -> register.

Each stage is a function below; `STAGES` are the finer progress steps they report."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from train_pipeline import register
from train_pipeline.artifacts import write_run_files
from train_pipeline.bundle_meta import BundleMeta
from train_pipeline.contract import TaskContract
from train_pipeline.data.clean import clean
from train_pipeline.data.load import load_task_data
from train_pipeline.evaluate import BaselineComparison
from train_pipeline.fitted_run import FittedRun
from train_pipeline.fitting import (
    Assessment,
    assess_diagnosis,
    cross_validate,
    explain_diagnosis,
    fit_and_assess_treatment,
    fit_diagnosis,
)
from train_pipeline.gate import GateVerdict, signal_gate
from train_pipeline.held_out import add_held_out, add_operating_point
from train_pipeline.model_choice import ModelChoice, choose_model
from train_pipeline.selection import SearchBudget, Selection
from train_pipeline.split import split_dataset
from train_pipeline.task_config import TaskConfig, load_task_config

logger = logging.getLogger(__name__)

STAGES = (
    "load",
    "clean",
    "split",
    "select",
    "calibrate",
    "cv",
    "fit diagnosis",
    "fit treatment",
    "evaluate",
    "explain",
    "operating point",
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
    gate: GateVerdict | None = None  # None: no held-out baseline comparison to judge by
    selection: Selection | None = None  # the model search of an ``auto`` run

    @property
    def aliased(self) -> bool:
        """Whether this run's versions received the alias."""
        return bool(self.bentoml_tags)


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


def _register_gated(
    run: FittedRun,
    target: tuple[str, Path, dict[str, str], str],
    promote: bool,
    allow_no_signal: bool,
    enter: Progress,
) -> TrainResult:
    """Register the run; the alias moves only when the champion gate passes (or is overridden),
    and the gate's verdict is tagged on the run. The result carries the model selection."""
    tracking_uri, bentoml_home, names, alias = target
    gate = _gate(run, allow_no_signal)
    promote = promote and (gate is None or gate.passed)
    result = _register_stage(run, tracking_uri, bentoml_home, names, alias, promote, enter)
    if gate is not None:
        register.tag_run(tracking_uri, result.run_id, gate.tags())
        if not gate.passed:
            logger.warning("champion gate refused the alias: %s", gate.reason)
        result = replace(result, gate=gate)
    return replace(result, selection=run.choice.selection)


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
    allow_no_signal: bool = False,
    calibration: str = "auto",
    budget: SearchBudget | None = None,
    progress: Progress = _noop,
) -> TrainResult:
    """Train both pipelines, log one MLflow run, register them, save them to BentoML.

    Args:
        data_path: CSV to train on (default task: the generated cohort; others: the config's).
        task: ``ed_cohort`` or a task config name / YAML path.
        model_type: ``auto`` (Optuna search over every candidate family, `selection`, within
            `budget`, on the task's ``primary_metric``) or one family with its defaults.
        n_rows: use only the first `n_rows` rows (tests, quick runs).
        iterations: boosting rounds (default 300); CV uses a quarter of them, treatment two thirds.
        threads: booster threads (None: all cores).
        frame: train on this DataFrame instead of reading `data_path` (retraining).
        promote: move `alias` to the new versions and save them to BentoML (False: log and
            register only, e.g. a challenger). Even when True, the alias moves only when
            the diagnosis model passes the champion gate (`train_pipeline.gate`).
        allow_no_signal: move the alias even when the gate finds no signal (explicit override).
        calibration: ``auto`` (`model_choice.with_calibration`), ``none`` or a forced method.
    """
    start = time.perf_counter()
    timer = _StageTimer(progress)
    contract, config = resolve_task(task)
    df = _load_stage(contract, config, data_path, frame, n_rows, timer.enter)
    train_df, test_df = _split_stage(df, contract, test_size, seed, timer.enter)
    timer.enter("select")
    choice = choose_model(
        contract, train_df, model_type=model_type, seed=seed, iterations=iterations,
        threads=threads, cv_folds=cv_folds, budget=budget, metric=config.primary_metric,
        calibration=calibration, progress=timer.enter,
    )  # fmt: skip
    out = _fit_stage(contract, train_df, choice, timer.enter)
    pred_diag = _evaluate_stage(contract, train_df, test_df, out, choice, timer.enter)
    add_held_out(contract, test_df, out, choice)
    if config.operating_point is not None:
        timer.enter("operating point")
        add_operating_point(config, contract, train_df, test_df, out, choice, budget)
    run = FittedRun(contract, choice, data_path, len(df), train_df, test_df, out, pred_diag)
    names = register.model_names(contract.name, *model_names)
    target = (tracking_uri, bentoml_home, names, alias)
    result = _register_gated(run, target, promote, allow_no_signal, timer.enter)
    return replace(result, duration_s=time.perf_counter() - start, stage_seconds=timer.finish())


def _gate(run: FittedRun, allow_no_signal: bool) -> GateVerdict | None:
    """The champion gate's verdict on the diagnosis model's held-out baseline comparison."""
    cmp = run.out.baselines.get("diagnosis")
    if cmp is None:
        return None
    verdict = signal_gate(cmp.majority_margin_ci, allow_no_signal)
    run.out.metrics["diagnosis_gate_passed"] = float(verdict.passed)
    return verdict


def _load_stage(
    contract: TaskContract,
    config: TaskConfig,
    data_path: Path | None,
    frame: pd.DataFrame | None,
    n_rows: int | None,
    progress: Progress,
) -> pd.DataFrame:
    """Stages "load" and "clean": the task's rows with a diagnosis, cleaned."""
    progress("load")
    df = frame if frame is not None else load_frame(data_path, contract, config)
    if n_rows is not None:
        df = df.iloc[:n_rows]
    _check_columns(df, contract)
    progress("clean")
    df = clean_frame(df, contract)
    return df.loc[df[contract.diagnosis.name].notna()]


def _split_stage(
    df: pd.DataFrame, contract: TaskContract, test_size: float, seed: int, progress: Progress
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stage "split": stratified train / held-out rows."""
    progress("split")
    return split_dataset(df, contract.feature_names, contract.diagnosis.name, test_size, seed)


def _fit_stage(
    contract: TaskContract, train_df: pd.DataFrame, choice: ModelChoice, progress: Progress
) -> Assessment:
    """Stages "cv" and "fit diagnosis": CV scores on the train split, then the fitted model
    (and the model search's scores and card section)."""
    progress("cv")
    cv = cross_validate(contract, train_df, choice.opts, choice.cv_params)
    progress("fit diagnosis")
    pipe, classes = fit_diagnosis(contract, train_df, choice.opts, choice.params)
    out = Assessment(diagnosis_pipeline=pipe, diagnosis_classes=classes)
    out.metrics |= {f"diagnosis_{k}": v for k, v in cv.items()}
    if choice.selection is not None:
        out.metrics |= {f"diagnosis_{k}": v for k, v in choice.selection.metrics().items()}
        out.texts["model_selection.md"] = choice.selection.markdown() + "\n"
    return out


def _evaluate_stage(
    contract: TaskContract,
    train_df: pd.DataFrame,
    test_df: pd.DataFrame,
    out: Assessment,
    choice: ModelChoice,
    progress: Progress,
) -> np.ndarray:
    """Stages "evaluate", "fit treatment", "explain"; returns the held-out predicted diagnoses.

    The treatment model is fitted here because it is assessed end-to-end on the predicted
    diagnoses of the held-out rows.
    """
    seed = choice.opts.seed
    progress("evaluate")
    pred_diag = assess_diagnosis(contract, train_df, test_df, out, seed, explain=False)
    if contract.treatment is not None:
        progress("fit treatment")
        fit_and_assess_treatment(
            contract, train_df, test_df, pred_diag, out, choice.opts, choice.treat_params
        )
    progress("explain")
    explain_diagnosis(test_df, out, seed)
    return pred_diag


def _register_stage(
    run: FittedRun,
    tracking_uri: str,
    bentoml_home: Path,
    names: dict[str, str],
    alias: str,
    promote: bool,
    progress: Progress,
) -> TrainResult:
    """Stages "log" and "register": one MLflow run, then (if `promote`) alias and BentoML.

    Returns:
        the run's result, its timings (`duration_s`, `stage_seconds`) left for the caller.
    """
    meta = run.bundle_meta()
    run_params = run.run_params()
    data_info = run.data_info()
    pipelines = run.pipelines()
    progress("log")
    bundle, meta = _log_run(run, tracking_uri, names, meta, pipelines, run_params, data_info)
    progress("register")
    tags: dict[str, str] = {}
    if promote:
        fitted = {role: pipe for role, (pipe, _) in pipelines.items()}
        tags = _promote(tracking_uri, bentoml_home, names, alias, fitted, meta, bundle)
    return TrainResult(
        task=run.task.name,
        run_id=bundle.run_id,
        diagnosis_version=bundle.diagnosis_version,
        treatment_version=bundle.treatment_version,
        tracking_uri=tracking_uri,
        bentoml_home=str(bentoml_home),
        metrics=run.out.metrics,
        baselines=run.out.baselines,
        duration_s=0.0,
        meta=meta,
        bentoml_tags=tags,
    )


def _log_run(
    run: FittedRun,
    tracking_uri: str,
    names: dict[str, str],
    meta: BundleMeta,
    pipelines: dict[str, tuple[Pipeline, pd.DataFrame]],
    run_params: dict[str, Any],
    data_info: dict[str, Any],
) -> tuple[register.RegisteredBundle, BundleMeta]:
    """The run's files written to a temporary directory, then logged with both models."""
    with tempfile.TemporaryDirectory(prefix="hp-run-") as tmp:
        seed = run.choice.opts.seed
        write_run_files(Path(tmp), run.task, run.out, run.train_df, run_params, data_info, seed)
        return register.log_bundle(
            tracking_uri,
            register.experiment_name(run.task.name),
            pipelines,
            meta,
            names,
            run_params,
            run.out.metrics,
            Path(tmp),
            run_name=f"{run.task.name}-{run.choice.opts.model_type}",
            trials=run.trial_runs(),
        )


def _promote(
    tracking_uri: str,
    bentoml_home: Path,
    names: dict[str, str],
    alias: str,
    pipelines: dict[str, Pipeline],
    meta: BundleMeta,
    bundle: register.RegisteredBundle,
) -> dict[str, str]:
    """Point `alias` at the new versions and save the pipelines to BentoML (role -> tag)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    versions = {"diagnosis": bundle.diagnosis_version, "treatment": bundle.treatment_version}
    register.set_champion(client, names, versions, alias)
    return register.save_to_bentoml(bentoml_home, names, pipelines, meta, bundle)


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
