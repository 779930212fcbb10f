"""`python -m train_pipeline data|train`: the training CLI (what `make data` / `make train` run).

Options default to the service's ``HP_*`` variables (`CliDefaults`, read here at the edge and
passed to `train(...)` as plain values), so `make train` registers what `make run` serves.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from train_pipeline.train import TrainResult

logger = logging.getLogger("train_pipeline")
console = Console(stderr=True)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class CliDefaults(BaseSettings):
    """The ``HP_*`` variables (and ``.env``) training shares with the service, with the same
    defaults as `app.settings.Settings` (tests/unit/test_train_cli_defaults.py compares them);
    training reads them itself so it imports nothing from the service."""

    model_config = SettingsConfigDict(env_prefix="HP_", env_file=".env", extra="ignore")

    training_data_path: Path = PROJECT_ROOT / "data" / "clinical_cohort.csv"
    mlflow_tracking_uri: str = f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    bentoml_home: Path = PROJECT_ROOT / "bentoml_home"
    diagnosis_model_name: str = "healthpredict-diagnosis"
    treatment_model_name: str = "healthpredict-treatment"
    model_alias: str = "champion"
    train_trials: int = 4
    train_time_budget_s: float = 60.0

    @model_validator(mode="after")
    def _honour_tool_env_vars(self) -> CliDefaults:
        # MLflow's and BentoML's own variables apply when the HP_ ones are not given.
        if "mlflow_tracking_uri" not in self.model_fields_set and os.environ.get(
            "MLFLOW_TRACKING_URI"
        ):
            self.mlflow_tracking_uri = os.environ["MLFLOW_TRACKING_URI"]
        if "bentoml_home" not in self.model_fields_set and os.environ.get("BENTOML_HOME"):
            self.bentoml_home = Path(os.environ["BENTOML_HOME"])
        return self


def _add_registry_options(t: argparse.ArgumentParser, env: CliDefaults) -> None:
    """Where the models go and under which names (defaults: the service's settings)."""
    t.add_argument(
        "--tracking-uri",
        default=env.mlflow_tracking_uri,
        help="MLflow tracking/registry URI (HP_MLFLOW_TRACKING_URI, MLFLOW_TRACKING_URI)",
    )
    t.add_argument(
        "--bentoml-home",
        type=Path,
        default=env.bentoml_home,
        help="BentoML model store (HP_BENTOML_HOME, BENTOML_HOME)",
    )
    t.add_argument(
        "--diagnosis-model-name",
        default=env.diagnosis_model_name,
        help="registered diagnosis model name (HP_DIAGNOSIS_MODEL_NAME)",
    )
    t.add_argument(
        "--treatment-model-name",
        default=env.treatment_model_name,
        help="registered treatment model name (HP_TREATMENT_MODEL_NAME)",
    )
    t.add_argument("--alias", default=env.model_alias, help="alias set (HP_MODEL_ALIAS)")


def _add_data_command(sub: Any, env: CliDefaults) -> None:
    d = sub.add_parser("data", help="write the synthetic ED cohort CSV")
    d.add_argument("--rows", type=int, default=None, help="rows (default: the generator's)")
    d.add_argument("--seed", type=int, default=None, help="seed (default: the generator's)")
    d.add_argument(
        "--out", type=Path, default=env.training_data_path, help="CSV (HP_TRAINING_DATA_PATH)"
    )


def _parser(env: CliDefaults | None = None) -> argparse.ArgumentParser:
    env = env or CliDefaults()
    p = argparse.ArgumentParser(prog="python -m train_pipeline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    _add_data_command(sub, env)
    t = sub.add_parser("train", help="train, log to MLflow, register, save to BentoML")
    t.add_argument(
        "--data",
        type=Path,
        default=None,
        help="CSV (default: HP_TRAINING_DATA_PATH for ed_cohort, else the task's CSV)",
    )
    t.set_defaults(default_data=env.training_data_path)
    group = t.add_mutually_exclusive_group()
    group.add_argument("--task", default="ed_cohort", help="shipped task config name")
    group.add_argument("--config", type=Path, default=None, help="task config YAML path")
    t.add_argument(
        "--model",
        choices=("auto", "catboost", "xgboost", "logreg"),
        default="auto",
        help="auto: Optuna search over every family, chosen by CV on the train split",
    )
    t.add_argument(
        "--trials",
        type=int,
        default=env.train_trials,
        help="auto: Optuna trials per candidate family (HP_TRAIN_TRIALS)",
    )
    t.add_argument(
        "--time-budget",
        type=float,
        default=env.train_time_budget_s,
        help="auto: seconds per candidate family at most (HP_TRAIN_TIME_BUDGET_S)",
    )
    t.add_argument(
        "--calibration",
        choices=("auto", "none", "sigmoid", "isotonic", "temperature"),
        default="auto",
        help="diagnosis calibration: auto (chosen by CV on the train split), off, or forced",
    )
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--iterations", type=int, default=None, help="boosting rounds (300)")
    t.add_argument("--rows", type=int, default=None, help="use only the first N rows")
    t.add_argument("--threads", type=int, default=None, help="booster threads (all cores)")
    t.add_argument(
        "--allow-no-signal",
        action="store_true",
        help="set the alias even when the model does not beat the majority class (override)",
    )
    t.add_argument(
        "--skip-if-exists",
        action="store_true",
        help="do nothing when the champion alias already exists (make run)",
    )
    _add_registry_options(t, env)
    return p


def _data(args: argparse.Namespace) -> int:
    from train_pipeline.data import generate  # lazy, like the training stack in _train

    kwargs = {k: v for k, v in (("n_rows", args.rows), ("seed", args.seed)) if v is not None}
    with console.status(f"generating cohort -> {args.out}"):
        path = generate.write_cohort(Path(args.out), **kwargs)
    console.print(f"[green]wrote[/] {path}")
    return 0


def _champion_exists(args: argparse.Namespace, task: str) -> bool:
    """Whether the task's diagnosis model already has the alias (``--skip-if-exists``)."""
    from train_pipeline import register  # lazy: MLflow/BentoML code, not needed by `data`
    from train_pipeline.task_config import load_task_config

    name = load_task_config(task).to_contract().name
    names = register.model_names(name, args.diagnosis_model_name, args.treatment_model_name)
    if not register.champion_exists(args.tracking_uri, names["diagnosis"], args.alias):
        return False
    console.print(
        f"[green]{names['diagnosis']}@{args.alias} exists in {args.tracking_uri}: "
        "training skipped[/]"
    )
    return True


def _train(args: argparse.Namespace) -> int:
    # lazy: the training stack (sklearn, boosters, MLflow) takes seconds; `data` needs none of it
    from train_pipeline.selection import SearchBudget
    from train_pipeline.train import STAGES, train

    task = str(args.config) if args.config else args.task
    if args.skip_if_exists and _champion_exists(args, task):
        return 0
    data = args.data
    if data is None and task == "ed_cohort":
        data = args.default_data
    started = time.perf_counter()
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        job = bar.add_task("training", total=len(STAGES))

        def progress(stage: str) -> None:
            if stage in STAGES:
                bar.update(job, description=stage, completed=STAGES.index(stage))

        result = train(
            data_path=data,
            task=task,
            model_type=args.model,
            seed=args.seed,
            tracking_uri=args.tracking_uri,
            bentoml_home=args.bentoml_home,
            n_rows=args.rows,
            iterations=args.iterations,
            threads=args.threads,
            model_names=(args.diagnosis_model_name, args.treatment_model_name),
            alias=args.alias,
            allow_no_signal=args.allow_no_signal,
            calibration=args.calibration,
            budget=SearchBudget(trials=args.trials, time_budget_s=args.time_budget),
            progress=progress,
        )
        bar.update(job, description="done", completed=len(STAGES))
    _summary(result, time.perf_counter() - started)
    return _gate_exit(result, args.alias)


def _gate_exit(result: TrainResult, alias: str) -> int:
    """0 when the alias moved (or no gate applied); `NO_SIGNAL_EXIT` with the reason if not."""
    from train_pipeline.gate import NO_SIGNAL_EXIT

    gate = result.gate
    if gate is None or gate.passed:
        if gate is not None and gate.overridden:
            console.print(f"[yellow]champion gate overridden: {gate.reason}[/]")
        return 0
    console.print(
        f"[bold red]'{alias}' NOT set[/]: the diagnosis model has {gate.reason}. Versions "
        f"v{result.diagnosis_version}/v{result.treatment_version or '-'} are registered without "
        "the alias; --allow-no-signal sets it anyway."
    )
    return NO_SIGNAL_EXIT


def _summary(result: TrainResult, wall: float) -> None:
    m = result.metrics
    table = Table(title=f"HealthPredict training: task {result.task}")
    table.add_column("metric (held-out)")
    roles = [r for r in ("diagnosis", "treatment") if f"{r}_f1_macro" in m]
    for role in roles:
        table.add_column(role + (" (end-to-end)" if role == "treatment" else ""), justify="right")
    for key in (
        "f1_macro",
        "balanced_accuracy",
        "accuracy",
        "roc_auc_ovr",
        "log_loss",
        "calibration_error",
        "cv_f1_macro_mean",
        "baseline_majority_f1_macro",
        "baseline_logreg_f1_macro",
        "latency_per_sample_ms",
    ):
        cells = [f"{m[f'{r}_{key}']:.3f}" if f"{r}_{key}" in m else "-" for r in roles]
        table.add_row(key, *cells)
    console.print(table)
    if result.selection is not None:
        _selection_table(result)
    if "diagnosis_op_threshold" in m:
        console.print(
            f"operating point: threshold {m['diagnosis_op_threshold']:.4f}; held-out "
            + ", ".join(
                f"{k} {m[f'diagnosis_op_{k}']:.3f} [{m[f'diagnosis_op_{k}_lo']:.3f}, "
                f"{m[f'diagnosis_op_{k}_hi']:.3f}]"
                for k in ("sensitivity", "specificity", "ppv", "npv")
            )
        )
    console.print(
        "stage seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.stage_seconds.items())
    )
    for role in roles:
        cmp = result.baselines[role]
        if not cmp.beats_majority:
            console.print(
                f"[bold red]WARNING: the {role} model does NOT beat the majority-class "
                "baseline on held-out data: no demonstrable signal.[/]"
            )
        if not cmp.beats_logreg:
            console.print(
                f"[yellow]The {role} model does not beat logistic regression on macro-F1.[/]"
            )
    console.print(
        f"run [bold]{result.run_id}[/]: diagnosis v{result.diagnosis_version}, treatment "
        f"v{result.treatment_version or '-'}; BentoML store {result.bentoml_home}\n"
        f"tracking URI {result.tracking_uri}  ({wall:.0f} s)\n"
        f"open the UI: [bold]mlflow ui --backend-store-uri {result.tracking_uri}[/]"
    )


def _selection_table(result: TrainResult) -> None:
    sel = result.selection
    assert sel is not None
    table = Table(title=f"model selection: CV {sel.metric} on {sel.n_rows} training rows")
    for col in ("candidate", f"CV {sel.metric}", "±", "trials (pruned)"):
        table.add_column(col, justify="left" if col == "candidate" else "right")
    for c in sorted(sel.candidates, key=lambda c: -c.cv_mean):
        name = f"[bold]{c.family}[/] (selected)" if c.family == sel.winner else c.family
        table.add_row(name, f"{c.cv_mean:.4f}", f"{c.cv_std:.4f}", f"{c.trials} ({c.pruned})")
    console.print(table)
    console.print(sel.reason())


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code (2: bad input, with a clear message)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    try:
        return _data(args) if args.command == "data" else _train(args)
    except (ValueError, FileNotFoundError) as exc:  # DataError is a ValueError
        console.print(f"[bold red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
