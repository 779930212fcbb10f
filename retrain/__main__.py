"""`python -m retrain`: retrain from feedback now (what `make retrain` runs), with progress.

Settings are read here (the edge); the job is recorded in the store like API/Celery jobs
(executor ``cli``), so `GET /retrain/{id}` reports it too. Exit code 0 when the job ran
(promoted or kept), 1 when it failed, 2 when another job is running.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from app.settings import Settings
    from retrain.job import RetrainConfig, RetrainResult

logger = logging.getLogger("retrain")
console = Console(stderr=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m retrain", description=__doc__)
    p.add_argument("--data", type=Path, default=None, help="original CSV (HP_TRAINING_DATA_PATH)")
    p.add_argument(
        "--holdout",
        type=Path,
        default=None,
        help="explicit held-out CSV (default: the data's deterministic test split)",
    )
    p.add_argument("--metric", default=None, help="decision metric (HP_RETRAIN_METRIC)")
    p.add_argument("--margin", type=float, default=None, help="required gain (HP_RETRAIN_MARGIN)")
    p.add_argument(
        "--iterations", type=int, default=None, help="boosting rounds (default: the champion's)"
    )
    p.add_argument("--threads", type=int, default=None, help="booster threads (all cores)")
    p.add_argument(
        "--full-report",
        action="store_true",
        help="also make train's baselines, SHAP and data-quality artifacts (slower)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    return p


def _config(args: argparse.Namespace, settings: Settings) -> RetrainConfig:
    from retrain.job import RetrainConfig

    config = RetrainConfig.from_settings(settings)
    given = (
        ("data_path", args.data),
        ("holdout_path", args.holdout),
        ("metric", args.metric),
        ("margin", args.margin),
        ("threads", args.threads),
    )
    overrides: dict[str, Any] = {k: v for k, v in given if v is not None}
    if args.iterations is not None:
        overrides["params"] = {"iterations": args.iterations}
    return replace(config, full_report=args.full_report, **overrides)


def _summary(result: RetrainResult) -> Table:
    table = Table(title=f"decision: {result.decision}")
    table.add_column("score")
    table.add_column("champion", justify="right")
    table.add_column("challenger", justify="right")
    champ, chall = result.champion_scores, result.challenger_scores
    for key in champ:
        fmt = [f"{v:.4f}" if v is not None else "n/a" for v in (champ[key], chall.get(key))]
        table.add_row(key, *fmt)
    return table


def _stage(status: Any, stage: str) -> None:
    console.log(stage)
    status.update(stage)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from app.log_config import configure_logging
    from app.settings import get_settings
    from app.store import db, repository
    from retrain.runner import blocking_job, execute_job, notify_api

    settings = get_settings()
    configure_logging(settings.log_level)
    config = _config(args, settings)
    db.upgrade(settings.database_url)
    engine = db.make_engine(settings.database_url)
    make_session = db.make_sessionmaker(engine)
    try:
        with make_session() as session:
            active = blocking_job(session, settings.retrain_job_timeout_s)
            if active is not None:
                console.print(f"[red]job {active.id} is {active.status}; try again later[/]")
                return 2
            job = repository.create_retrain_job(session, executor="cli", trigger="cli")
        console.print(f"retrain job [bold]{job.id}[/]")
        with console.status("retraining") as status:
            result = execute_job(
                make_session,
                job.id,
                config,
                on_promoted=notify_api(settings),
                progress=lambda stage: _stage(status, stage),
            )
    finally:
        engine.dispose()
    if result is None:
        console.print(f"[red]retrain failed[/]: see the log and GET /retrain/{job.id}")
        return 1
    console.print(_summary(result))
    if args.json:
        sys.stdout.write(
            json.dumps({"job_id": job.id, "decision": result.decision, **result.scores()}) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
