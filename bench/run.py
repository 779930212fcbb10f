"""`make bench`: one run, one client (wrk), one worker each, the same diagnosis model.

Targets: (a) HealthPredict ``POST /predict`` (diagnosis + treatment + quality + rules + audit),
(b) ``mlflow models serve`` of the registered diagnosis model, (c) a minimal BentoML service of
it from our store, (d) a bare FastAPI endpoint calling CatBoost on a NumPy row (orjson), (e)
HealthPredict ``POST /predict/batch`` with 1,000 patients, and for reference (f) the bare
endpoint of (d) evaluating the same trees with our NumPy forest instead of CatBoost (what the
forest alone buys a bare server). Writes ``bench/results/<date>.md``.

Usage: ``python bench/run.py [--duration 10] [--warmup 3] [--only a,b,c,d,e,f]
[--compare LABEL=REV ...]``. ``--compare`` also serves (a) (and (e)) from a git worktree of
revision REV, with the same models, settings and bodies, measured in the same run right after
(a): how a change to the request path is judged side by side (README, "Fast paths").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from bench.bodies import N_BODIES, cohort_rows, write_bodies  # noqa: E402
from bench.chart import draw  # noqa: E402
from bench.report import render  # noqa: E402
from bench.servers import (  # noqa: E402
    PY,
    Result,
    Server,
    cpu_seconds,
    first_drift_report,
    free_port,
    model_calls,
    settle,
    start,
    stop,
    tree_rss_mib,
)

console = Console(stderr=True)
LUA = ROOT / "bench" / "wrk" / "predict.lua"
API_KEY = "bench-clinician-key"
TARGETS = ("a", "b", "c", "d", "e", "f")


# --- models ----------------------------------------------------------------------------------
def ensure_models(settings: Settings) -> None:
    """Generate the cohort and train the default models unless a champion already exists."""
    if not settings.training_data_path.exists():
        console.log("generating the cohort (python -m train_pipeline data)")
        run([PY, "-m", "train_pipeline", "data", "--out", str(settings.training_data_path)])
    console.log(
        "training unless a champion exists (python -m train_pipeline train --skip-if-exists)"
    )
    run([PY, "-m", "train_pipeline", "train", "--skip-if-exists"])


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, cwd=ROOT, check=True)


# --- wrk ---------------------------------------------------------------------------------------
def wrk(
    server: Server,
    port: int,
    connections: int,
    duration: float,
    path: str | None = None,
    bodies: Path | None = None,
) -> Result:
    threads = min(2, connections)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
        "--",
        str(bodies or server.bodies),
        path or server.path,
        server.api_key,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("{"))
    d = json.loads(line)
    errors = d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"]
    return Result(
        server.key,
        connections,
        d["requests"] / (d["duration_us"] / 1e6),
        d["p50_us"] / 1000,
        d["p99_us"] / 1000,
        errors,
        d["requests"],
    )


# --- main --------------------------------------------------------------------------------------
def servers(
    settings: Settings, bodies: dict[str, Path], tmp: Path, ports: dict[str, int]
) -> list[Server]:
    mlflow_env = {"MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri}
    hp_env = {
        "HP_PORT": str(ports["a"]),
        "HP_HOST": "127.0.0.1",
        "HP_WORKERS": "1",
        "HP_DATABASE_URL": f"sqlite:///{tmp / 'bench-audit.db'}",
        "HP_API_KEYS": f"{API_KEY}:clinician",
        "HP_RATE_LIMIT_PER_MINUTE": "1000000000",
        "HP_ACCESS_LOG": "false",
        "HP_LOG_LEVEL": "WARNING",
    }
    return [
        Server(
            "a",
            "HealthPredict POST /predict",
            [PY, "-m", "app"],
            hp_env,
            "/health/ready",
            "/predict",
            bodies["canonical"],
            API_KEY,
        ),
        Server(
            "b",
            "mlflow models serve",
            [
                str(Path(PY).parent / "mlflow"),
                "models",
                "serve",
                "-m",
                f"models:/{settings.diagnosis_model_name}@{settings.model_alias}",
                "--env-manager",
                "local",
                "-w",
                "1",
                "-h",
                "127.0.0.1",
                "-p",
                str(ports["b"]),
            ],
            mlflow_env,
            "/ping",
            "/invocations",
            bodies["mlflow"],
        ),
        Server(
            "c",
            "BentoML service",
            [
                str(Path(PY).parent / "bentoml"),
                "serve",
                "bench.bento_service:Diagnosis",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["c"]),
            ],
            {"BENTOML_HOME": str(settings.bentoml_home), "BENTOML_DO_NOT_TRACK": "true"},
            "/readyz",
            "/predict",
            bodies["bentoml"],
        ),
        Server(
            "d",
            "bare FastAPI (NumPy row, orjson)",
            [PY, "bench/bare_server.py", "--port", str(ports["d"])],
            {**mlflow_env, "PYTHONPATH": str(ROOT)},
            "/ready",
            "/predict",
            bodies["canonical"],
        ),
        Server(
            "f",
            "bare FastAPI + our NumPy forest (for reference)",
            [PY, "bench/bare_server.py", "--port", str(ports["f"]), "--forest"],
            {**mlflow_env, "PYTHONPATH": str(ROOT)},
            "/ready",
            "/predict",
            bodies["canonical"],
        ),
    ]


def compared(
    base: Server, label: str, rev: str, tmp: Path, settings: Settings, port: int
) -> Server:
    """(a) served from a worktree of ``rev`` (same venv, models, store settings and bodies:
    the paths its settings would take inside the worktree are pinned to this checkout's)."""
    tree = tmp / f"worktree-{label}"
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(tree), rev], cwd=ROOT, check=True
    )
    return Server(
        f"a:{label}",
        f"HealthPredict POST /predict at {rev} ({label})",
        base.cmd,
        {
            **base.env,
            "HP_PORT": str(port),
            "HP_MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
            "HP_BENTOML_HOME": str(settings.bentoml_home),
            "HP_DATA_DIR": str(settings.data_dir),
            "HP_TRAINING_DATA_PATH": str(settings.training_data_path),
        },
        base.ready_path,
        base.path,
        base.bodies,
        base.api_key,
        cwd=tree,
    )


def remove_worktrees(todo: list[Server]) -> None:
    for server in todo:
        if server.cwd is not None:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(server.cwd)], cwd=ROOT, check=False
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per server")
    parser.add_argument("--batch", type=int, default=1000, help="patients per batch request")
    parser.add_argument("--only", default=",".join(TARGETS), help="targets to run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--hp-env",
        action="append",
        default=[],
        metavar="HP_X=VALUE",
        help="extra setting for the HealthPredict server (tuning runs)",
    )
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=REV",
        help="also serve (a)/(e) from git revision REV, labelled LABEL (side-by-side runs)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk (make bench does it)")
    settings = Settings()
    ensure_models(settings)
    wanted = set(args.only.split(","))
    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="hp-bench-"))
    payloads = cohort_rows(settings.training_data_path, N_BODIES)
    bodies = write_bodies(tmp, payloads, args.batch)
    ports = {k: free_port() for k in "abcdf"}
    todo = [
        s
        for s in servers(settings, bodies, tmp, ports)
        if s.key in wanted or (s.key == "a" and "e" in wanted)
    ]
    base = next((s for s in todo if s.key == "a"), None)
    if base is not None:  # --hp-env applies to the HealthPredict server (and compared ones)
        base.env.update(kv.split("=", 1) for kv in args.hp_env)
    for spec in args.compare:
        label, _, rev = spec.partition("=")
        if base is None or not rev:
            sys.exit(f"--compare {spec}: needs LABEL=REV and target a or e")
        ports[f"a:{label}"] = port = free_port()
        todo.insert(todo.index(base) + 1, compared(base, label, rev, tmp, settings, port))
    batch: list[Result] = []
    for server in todo:
        port = ports[server.key]
        is_a = server.key.split(":")[0] == "a"
        console.rule(f"({server.key}) {server.name}")
        try:
            start(server, port, tmp)
            settled = settle(server.proc.pid) if server.proc else 0.0
            console.log(
                f"ready after {server.ready_s:.1f} s, idle {settled:.1f} s later; "
                f"warm-up {args.warmup:g} s"
            )
            wrk(server, port, 8, args.warmup)
            if is_a and server.proc:
                waited = first_drift_report(port, server.api_key) + settle(server.proc.pid)
                console.log(f"first drift report done and idle after {waited:.1f} s")
            if server.key in wanted or (is_a and "a" in wanted):
                for conns in (1, 8):
                    r = wrk(server, port, conns, args.duration)
                    server.results.append(r)
                    console.log(
                        f"{conns} conn: {r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, "
                        f"p99 {r.p99_ms:.2f} ms, errors {r.errors}"
                    )
            server.rss_mib = tree_rss_mib(server.proc.pid) if server.proc else math.nan
            if is_a:
                server.mean_batch = model_calls(port)
                console.log(f"micro-batching: {server.mean_batch:.2f} requests per model call")
            if is_a and "e" in wanted:
                for conns in (1, 2):
                    before = cpu_seconds(server.proc.pid) if server.proc else None
                    r = wrk(server, port, conns, args.duration, "/predict/batch", bodies["batch"])
                    r.target = server.key.replace("a", "e", 1)
                    if before is not None and server.proc and r.requests:
                        after = cpu_seconds(server.proc.pid)
                        spent = [b - a for a, b in zip(before, after, strict=True)]
                        r.cpu_ms = (1000 * spent[0] / r.requests, 1000 * spent[1] / r.requests)
                    batch.append(r)
                    console.log(
                        f"batch {conns} conn: {r.rps * args.batch:,.0f} patients/s, "
                        f"p50 {r.p50_ms:.0f} ms, errors {r.errors}, CPU per request {r.cpu_text()}"
                    )
        except Exception as exc:  # a failed target is reported, the others still run
            console.log(f"[red]{server.name} failed: {exc}")
        finally:
            stop(server)
            for db_file in tmp.glob("bench-audit.db*"):  # ~1.3 GB of audit rows a run
                db_file.unlink()
    remove_worktrees(todo)
    report = render(todo, batch, args, load_before, os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    # a partial run (--only) never overwrites the day's full report
    partial = "" if wanted >= set(TARGETS) else "-" + "".join(sorted(wanted))
    path = args.out / f"{datetime.now(UTC):%Y-%m-%d}{partial}.md"
    picture = draw(todo, batch, args.batch, path.with_suffix(".png"))
    report += f"\n![throughput and p99 of every server]({picture.name})\n"
    path.write_text(report)
    console.print(report)
    console.log(f"written to {path} (server logs in {tmp})")


if __name__ == "__main__":
    main()
