"""`python -m train_pipeline data|train`: the training CLI (what `make data` / `make train` run).

Settings are read here, at the edge, and passed to `train(...)` as plain values.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

logger = logging.getLogger("train_pipeline")
console = Console(stderr=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train_pipeline", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("data", help="write the synthetic ED cohort CSV")
    d.add_argument("--rows", type=int, default=None, help="rows (default: the generator's)")
    d.add_argument("--seed", type=int, default=None, help="seed (default: the generator's)")
    d.add_argument("--out", type=Path, default=None, help="CSV path (default: settings)")
    t = sub.add_parser("train", help="train, log to MLflow, register, save to BentoML")
    t.add_argument("--data", type=Path, default=None, help="CSV (default: the task's CSV)")
    group = t.add_mutually_exclusive_group()
    group.add_argument("--task", default="ed_cohort", help="shipped task config name")
    group.add_argument("--config", type=Path, default=None, help="task config YAML path")
    t.add_argument("--model", choices=("catboost", "xgboost"), default="catboost")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--iterations", type=int, default=None, help="boosting rounds (300)")
    t.add_argument("--rows", type=int, default=None, help="use only the first N rows")
    t.add_argument("--threads", type=int, default=None, help="booster threads (all cores)")
    t.add_argument(
        "--skip-if-exists",
        action="store_true",
        help="do nothing when the champion alias already exists (make run)",
    )
    return p


def _data(args: argparse.Namespace) -> int:
    from app.settings import get_settings
    from train_pipeline.data import generate

    out = args.out or get_settings().training_data_path
    kwargs = {k: v for k, v in (("n_rows", args.rows), ("seed", args.seed)) if v is not None}
    with console.status(f"generating cohort -> {out}"):
        path = generate.write_cohort(Path(out), **kwargs)
    console.print(f"[green]wrote[/] {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from app.settings import get_settings
    from train_pipeline import register
    from train_pipeline.train import STAGES, train

    settings = get_settings()
    task = str(args.config) if args.config else args.task
    uri = settings.mlflow_tracking_uri
    if args.skip_if_exists:
        from train_pipeline.task_config import load_task_config

        name = load_task_config(task).to_contract().name
        names = register.model_names(
            name, settings.diagnosis_model_name, settings.treatment_model_name
        )
        if register.champion_exists(uri, names["diagnosis"], settings.model_alias):
            console.print(
                f"[green]{names['diagnosis']}@{settings.model_alias} exists in {uri}: "
                "training skipped[/]"
            )
            return 0
    data = args.data
    if data is None and task == "ed_cohort":
        data = settings.training_data_path
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
            tracking_uri=uri,
            bentoml_home=settings.bentoml_home,
            n_rows=args.rows,
            iterations=args.iterations,
            threads=args.threads,
            model_names=(settings.diagnosis_model_name, settings.treatment_model_name),
            alias=settings.model_alias,
            progress=progress,
        )
        bar.update(job, description="done", completed=len(STAGES))
    _summary(result, time.perf_counter() - started)
    return 0


def _summary(result: object, wall: float) -> None:
    from train_pipeline.train import TrainResult

    assert isinstance(result, TrainResult)
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
