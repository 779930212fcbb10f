"""Train every shipped task with the default model search and write the README's results table.

`python -m docs.task_results` (make task-results): each task trains into its own MLflow store
under ``--store`` (default ``task_results/``, git-ignored), with `make train`'s defaults
(``--model auto``, the HP_TRAIN_* budget), then one Markdown table goes to ``--out``: the
selected model, held-out macro-F1 (at the operating point's threshold where the task has one) and
ROC-AUC with bootstrap 95 % intervals, logistic regression and the majority class on the same
held-out rows, the calibration error before and after calibration (and its noise floor: what a
perfectly calibrated model with the same probabilities shows on that many rows), the champion
gate, the operating point where the task configures one, and the seconds each task took. A
documentation tool: it calls `train_pipeline.train.train` like the CLI does. ``--seeds 42,1,2``
trains each task on other train/test splits too (split and model seed; 42 is the shipped one),
one line per split: what the recipe is worth beyond the one held-out draw.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.settings import PROJECT_ROOT, Settings
from train_pipeline.selection import SearchBudget
from train_pipeline.task_config import available_tasks
from train_pipeline.train import TrainResult, train

SEED = 42
"""The shipped split's seed (`train`'s default)."""

HEADER = (
    "| task | selected (CV score) | held-out macro-F1 [95 % CI] | ROC-AUC [95 % CI] | "
    "logistic regression macro-F1 | majority macro-F1 | calibration error (before → after) | "
    "gate | "
    "operating point (held-out) | seconds |"
)


def _ci(m: dict[str, float], key: str) -> str:
    if key not in m:
        return "–"
    lo, hi = m.get(f"{key}_lo"), m.get(f"{key}_hi")
    span = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    return f"{m[key]:.3f}{span}"


def row(result: TrainResult, seconds: float, name: str | None = None) -> str:
    """One task's line of the table (``name``: the task cell, default the task)."""
    m = {k.removeprefix("diagnosis_"): v for k, v in result.metrics.items()}
    sel = result.selection
    chosen = f"{result.meta.model_type}"
    if sel is not None:
        chosen += f" ({sel.metric} {sel.best.cv_mean:.3f})"
    gate = "champion" if result.aliased else "**no signal: not aliased**"
    op = "–"
    if "op_threshold" in m:
        op = (
            f"t={m['op_threshold']:.3f}: sens {_ci(m, 'op_sensitivity')}, "
            f"spec {_ci(m, 'op_specificity')}"
        )
    # a binary task with an operating point decides at its threshold, not at the argmax
    f1 = _ci(m, "op_f1_macro") + " at t" if "op_f1_macro" in m else _ci(m, "f1_macro")
    calibration = f"{m['calibration_error']:.3f} (not calibrated)"
    if m.get("calibrated"):
        calibration = f"{m['calibration_error_uncalibrated']:.3f} → {m['calibration_error']:.3f}"
    if "calibration_error_noise_floor" in m:  # a perfectly calibrated model's, on these rows
        calibration += f" (floor {m['calibration_error_noise_floor']:.3f})"
    cells = [
        name or result.task,
        chosen,
        f1,
        _ci(m, "roc_auc_ovr"),
        f"{m['baseline_logreg_f1_macro']:.3f}",
        f"{m['baseline_majority_f1_macro']:.3f}",
        calibration,
        gate,
        op,
        f"{seconds:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def run(
    tasks: list[str], store: Path, budget: SearchBudget, seeds: tuple[int, ...] = (SEED,)
) -> list[str]:
    """Train each task on each seed's split; its table line (a failure is a line too, never a
    silent gap). A seed other than the shipped one is named in the task cell."""
    lines = []
    for task in tasks:
        for seed in seeds:
            name = task if seed == SEED else f"{task} (seed {seed})"
            home = store / (task if seed == SEED else f"{task}-seed{seed}")
            home.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            try:
                result = train(
                    task=task,
                    model_type="auto",
                    seed=seed,
                    tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
                    bentoml_home=home / "bentoml",
                    budget=budget,
                )
            except Exception as exc:  # reported in the table
                lines.append(f"| {name} | failed: {type(exc).__name__}: {exc} |")
                continue
            lines.append(row(result, time.perf_counter() - started, name))
            print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    p = argparse.ArgumentParser(prog="python -m docs.task_results", description=__doc__)
    p.add_argument("--tasks", default=",".join(available_tasks()), help="comma-separated")
    p.add_argument("--store", type=Path, default=PROJECT_ROOT / "task_results")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "task_results" / "results.md")
    p.add_argument("--trials", type=int, default=settings.train_trials)
    p.add_argument("--time-budget", type=float, default=settings.train_time_budget_s)
    p.add_argument(
        "--seeds",
        default=str(SEED),
        help="comma-separated split and model seeds (the shipped split is 42; others measure "
        "the recipe on fresh train/test splits)",
    )
    args = p.parse_args(argv)
    budget = SearchBudget(trials=args.trials, time_budget_s=args.time_budget)
    started = time.perf_counter()
    seeds = tuple(int(x) for x in args.seeds.split(","))
    lines = run(args.tasks.split(","), args.store, budget, seeds)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    info: dict[str, Any] = {"trials": budget.trials, "time budget s": budget.time_budget_s}
    text = "\n".join(
        [
            f"`python -m docs.task_results` ({stamp}, {info}, "
            f"{time.perf_counter() - started:.0f} s in all):",
            "",
            HEADER,
            "|" + "---|" * HEADER.count(" | ") + "---|",
            *lines,
            "",
        ]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
