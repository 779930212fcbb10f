"""`python -m retrain`: retrain from feedback now (what `make retrain` runs), with progress.

Settings are read here (the edge); the job is recorded in the store like API/Celery jobs
(executor ``cli``), so `GET /retrain/{id}` reports it too. Exit code 0 when the job ran
(promoted or kept), 1 when it failed, 2 when another job is running, 3 when the challenger
failed the champion gate (no signal over the majority class; ``--allow-no-signal`` overrides).

``--job-id ID`` runs a job the API queued instead (its in-process executor starts this as a
child process, with its settings as ``HP_*`` variables): no progress display, no migration;
after a promotion it says so on stdout and waits for the API's line on stdin saying it has
reloaded its models, then records the job as succeeded.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from app.api.retrain import PROMOTED_LINE, RELOADED_LINE
from app.log_config import configure_logging
from app.settings import Settings, get_settings
from app.store import db, retrain_jobs
from app.store.retrain_jobs import blocking_job
from retrain.config import RetrainConfig
from retrain.job import RetrainResult
from retrain.runner import execute_job, notify_api
from train_pipeline.gate import NO_SIGNAL_EXIT

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
    p.add_argument(
        "--allow-no-signal",
        action="store_true",
        help="promote a winning challenger even when it does not beat the majority class",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--job-id", default=None, help="run this queued job (what the API starts)")
    return p


def _config(args: argparse.Namespace, settings: Settings) -> RetrainConfig:
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
    return replace(
        config, full_report=args.full_report, allow_no_signal=args.allow_no_signal, **overrides
    )


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


def ask_parent_to_reload(result: RetrainResult) -> None:
    """Tell the API that started us about the promotion; wait until it has reloaded."""
    sys.stdout.write(f"{PROMOTED_LINE} {result.challenger_run_id}\n")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip()
    if answer != RELOADED_LINE:
        logger.warning("the API did not confirm its reload", extra={"answer": answer[:100]})


def run_queued(make_session: sessionmaker[Session], job_id: str, config: RetrainConfig) -> int:
    """Run job ``job_id``, queued by the API (`ask_parent_to_reload` after a promotion)."""
    with make_session() as session:
        job = retrain_jobs.get_retrain_job(session, job_id)
        if job is None or job.status != "queued":
            logger.error("not a queued retrain job", extra={"job_id": job_id})
            return 2
    result = execute_job(make_session, job_id, config, on_promoted=ask_parent_to_reload)
    return 0 if result is not None else 1


def run_new(
    make_session: sessionmaker[Session], settings: Settings, config: RetrainConfig, as_json: bool
) -> int:
    """Queue a ``cli`` job and run it with a progress display (2 while another job is active)."""
    with make_session() as session:
        active = blocking_job(session, settings.retrain_job_timeout_s)
        if active is not None:
            console.print(f"[red]job {active.id} is {active.status}; try again later[/]")
            return 2
        job = retrain_jobs.create_retrain_job(session, executor="cli", trigger="cli")
    console.print(f"retrain job [bold]{job.id}[/]")
    with console.status("retraining") as status:
        result = execute_job(
            make_session,
            job.id,
            config,
            on_promoted=notify_api(settings),
            progress=lambda stage: _stage(status, stage),
        )
    if result is None:
        console.print(f"[red]retrain failed[/]: see the log and GET /retrain/{job.id}")
        return 1
    console.print(_summary(result))
    console.print(f"{result.decision}: {result.reason}")
    if as_json:
        sys.stdout.write(
            json.dumps({"job_id": job.id, "decision": result.decision, **result.scores()}) + "\n"
        )
    if not result.gate_passed:
        console.print("[bold red]champion gate: the challenger shows no signal (see above)[/]")
        return NO_SIGNAL_EXIT
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings.log_level)
    config = _config(args, settings)
    if args.job_id is None:
        db.upgrade(settings.database_url)  # the API that queued a job has migrated already
    engine = db.make_engine(settings.database_url)
    make_session = db.make_sessionmaker(engine)
    try:
        if args.job_id is not None:
            return run_queued(make_session, args.job_id, config)
        return run_new(make_session, settings, config, args.json)
    finally:
        engine.dispose()


if __name__ == "__main__":
    raise SystemExit(main())
