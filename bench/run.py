"""`make bench`: one run, one client (wrk), one worker each, the same diagnosis model.

Targets: (a) HealthPredict ``POST /predict`` (diagnosis + treatment + quality + rules + audit),
(b) ``mlflow models serve`` of the registered diagnosis model, (c) a minimal BentoML service of
it from our store, (d) a bare FastAPI endpoint (NumPy row, orjson), (e) HealthPredict
``POST /predict/batch`` with 1,000 patients. Writes ``bench/results/<date>.md``.

Usage: ``python bench/run.py [--duration 10] [--warmup 3] [--only a,b,c,d,e]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from train_pipeline.contract import ED_COHORT, SYMPTOM_SEPARATOR  # noqa: E402

console = Console(stderr=True)
LUA = ROOT / "bench" / "wrk" / "predict.lua"
PY = sys.executable
API_KEY = "bench-clinician-key"
N_BODIES = 500


@dataclass
class Result:
    """One wrk measurement."""

    target: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


@dataclass
class Server:
    """A target server: how to start it, when it is ready, how to call it."""

    key: str
    name: str
    cmd: list[str]
    env: dict[str, str]
    ready_path: str
    path: str
    bodies: Path
    api_key: str = ""
    proc: subprocess.Popen[bytes] | None = None
    ready_s: float = math.nan
    rss_mib: float = math.nan
    mean_batch: float = math.nan
    results: list[Result] = field(default_factory=list)


# --- data ------------------------------------------------------------------------------------
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


def cohort_rows(path: Path, n: int) -> list[dict[str, Any]]:
    """``n`` cohort rows as canonical API payloads (absent / out-of-range values left out)."""
    df = pd.read_csv(path).sample(n=n, random_state=0, replace=True)
    out = []
    for row in df.to_dict(orient="records"):
        rec: dict[str, Any] = {}
        for f in ED_COHORT.features:
            v = row.get(f.name)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            if f.kind in ("numeric", "integer"):
                v = float(v)
                if f.minimum is not None and not f.minimum <= v <= (f.maximum or math.inf):
                    continue
                rec[f.name] = int(v) if f.kind == "integer" else v
            elif f.kind == "boolean":
                rec[f.name] = bool(int(v))
            elif f.kind == "multilabel":
                rec[f.name] = [c for c in str(v).split(SYMPTOM_SEPARATOR) if c in f.categories]
            else:
                rec[f.name] = str(v)
        if rec.get("diastolic_bp", 0) >= rec.get("systolic_bp", math.inf):
            rec.pop("diastolic_bp", None)
        if all(name in rec for name in ED_COHORT.names_in_tier("required")):
            out.append(rec)
    return out


def frame_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A payload as the sklearn pipeline's DataFrame row (what MLflow / BentoML take)."""
    row: dict[str, Any] = {}
    for f in ED_COHORT.features:
        v = rec.get(f.name)
        if f.kind == "multilabel":
            row[f.name] = SYMPTOM_SEPARATOR.join(v or ())
        elif f.kind == "categorical":
            row[f.name] = v
        elif f.kind == "boolean":
            row[f.name] = float(bool(v))
        else:
            row[f.name] = math.nan if v is None else float(v)
    return row


def write_bodies(tmp: Path, payloads: list[dict[str, Any]], batch: int) -> dict[str, Path]:
    """One JSON body per line, per request format."""
    files = {
        "canonical": [json.dumps(p) for p in payloads],
        "mlflow": [json.dumps({"dataframe_records": [frame_row(p)]}) for p in payloads],
        "bentoml": [json.dumps({"records": [frame_row(p)]}) for p in payloads],
        "batch": [
            json.dumps({"records": [payloads[(k * 131 + i) % len(payloads)] for i in range(batch)]})
            for k in range(3)
        ],
    }
    paths = {}
    for name, lines in files.items():
        paths[name] = tmp / f"{name}.jsonl"
        paths[name].write_text("\n".join(lines) + "\n")
    return paths


# --- processes -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(server: Server, port: int, log_dir: Path, timeout_s: float = 180) -> None:
    """Start the server and wait until ``ready_path`` answers 200 (time to ready)."""
    log = (log_dir / f"{server.key}.log").open("wb")
    t0 = time.monotonic()
    server.proc = subprocess.Popen(
        server.cmd,
        cwd=ROOT,
        # the venv's bin first: `mlflow models serve` execs `uvicorn` from PATH
        env={**os.environ, "PATH": f"{Path(PY).parent}:{os.environ.get('PATH', '')}", **server.env},
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}{server.ready_path}"
    while time.monotonic() - t0 < timeout_s:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {log.name}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    server.ready_s = time.monotonic() - t0
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{server.name} not ready after {timeout_s} s; see {log.name}")


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and all its descendants (MiB), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def stop(server: Server) -> None:
    if server.proc is None or server.proc.poll() is not None:
        return
    os.killpg(server.proc.pid, signal.SIGTERM)
    try:
        server.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait()


def model_calls(port: int) -> float:
    """Mean records per diagnosis model call so far, from HealthPredict's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    calls = predictions = 0.0
    for line in text.splitlines():
        if line.startswith('healthpredict_stage_duration_seconds_count{stage="diagnosis"}'):
            calls = float(line.rsplit(" ", 1)[1])
        elif line.startswith("healthpredict_predictions_total{"):
            predictions += float(line.rsplit(" ", 1)[1])
    return predictions / calls if calls else math.nan


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
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per server")
    parser.add_argument("--batch", type=int, default=1000, help="patients per batch request")
    parser.add_argument("--only", default="a,b,c,d,e", help="targets to run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--hp-env",
        action="append",
        default=[],
        metavar="HP_X=VALUE",
        help="extra setting for the HealthPredict server (tuning runs)",
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
    ports = {k: free_port() for k in "abcd"}
    todo = [
        s
        for s in servers(settings, bodies, tmp, ports)
        if s.key in wanted or (s.key == "a" and "e" in wanted)
    ]
    batch: list[Result] = []
    for server in todo:
        port = ports[server.key]
        console.rule(f"({server.key}) {server.name}")
        try:
            start(server, port, tmp)
            console.log(f"ready after {server.ready_s:.1f} s; warm-up {args.warmup:g} s")
            wrk(server, port, 8, args.warmup)
            if server.key in wanted:
                for conns in (1, 8):
                    r = wrk(server, port, conns, args.duration)
                    server.results.append(r)
                    console.log(
                        f"{conns} conn: {r.rps:,.0f} req/s, p50 {r.p50_ms:.2f} ms, "
                        f"p99 {r.p99_ms:.2f} ms, errors {r.errors}"
                    )
            server.rss_mib = tree_rss_mib(server.proc.pid) if server.proc else math.nan
            if server.key == "a":
                server.mean_batch = model_calls(port)
                console.log(f"micro-batching: {server.mean_batch:.2f} requests per model call")
            if server.key == "a" and "e" in wanted:
                for conns in (1, 2):
                    r = wrk(server, port, conns, args.duration, "/predict/batch", bodies["batch"])
                    r.target = "e"
                    batch.append(r)
                    console.log(
                        f"batch {conns} conn: {r.rps * args.batch:,.0f} patients/s, "
                        f"p50 {r.p50_ms:.0f} ms, errors {r.errors}"
                    )
        except Exception as exc:  # a failed target is reported, the others still run
            console.log(f"[red]{server.name} failed: {exc}")
        finally:
            stop(server)
    report = render(todo, batch, args, load_before, os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{datetime.now(UTC):%Y-%m-%d}.md"
    path.write_text(report)
    console.print(report)
    console.log(f"written to {path} (server logs in {tmp})")


def versions() -> str:
    pkgs = [
        "fastapi",
        "uvicorn",
        "mlflow",
        "bentoml",
        "catboost",
        "scikit-learn",
        "numpy",
        "orjson",
        "pydantic",
    ]
    wrk_v = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[:2]
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return (
        f"Python {platform.python_version()}; "
        + ", ".join(f"{p} {version(p)}" for p in pkgs)
        + f"; {' '.join(wrk_v)}; {os.cpu_count()} x {cpu}"
    )


def render(
    todo: list[Server],
    batch: list[Result],
    args: argparse.Namespace,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
) -> str:
    extra = "".join(f" --hp-env {kv}" for kv in args.hp_env)
    lines = [
        f"# Benchmark {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `python bench/run.py --duration {args.duration:g} --warmup {args.warmup:g}"
        f" --only {args.only}{extra}` (`make bench`). wrk, loopback, one worker per server, "
        f"{args.duration:g} s per measurement after a {args.warmup:g} s warm-up at 8 connections; "
        "each request a different cohort patient.",
        "",
        f"Versions: {versions()}.",
        f"Load average before / after: {load_before[0]:.1f} / {load_after[0]:.1f} "
        "(the machine is shared; figures are from one run).",
        "",
        "| server | req/s, 1 conn | p50, 1 conn | req/s, 8 conn | p50, 8 conn | p99, 8 conn "
        "| errors | RSS after load | ready after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in todo:
        by = {r.connections: r for r in s.results}
        if not by:
            continue
        one, eight = by.get(1), by.get(8)
        lines.append(
            f"| ({s.key}) {s.name} | {_f(one, 'rps')} | {_f(one, 'p50_ms', ' ms')} "
            f"| {_f(eight, 'rps')} | {_f(eight, 'p50_ms', ' ms')} | {_f(eight, 'p99_ms', ' ms')} "
            f"| {sum(r.errors for r in s.results)} | {s.rss_mib:.0f} MiB | {s.ready_s:.1f} s |"
        )
    for s in todo:
        if s.key == "a" and not math.isnan(s.mean_batch):
            lines += [
                "",
                f"(a) micro-batching: {s.mean_batch:.2f} requests per model call on "
                "average over its warm-up and both runs (from its /metrics).",
            ]
        if s.key == "a" and args.hp_env:
            lines += ["", f"(a) settings: {', '.join(args.hp_env)}"]
    rps = {s.key: {r.connections: r.rps for r in s.results} for s in todo}
    if rps.get("a"):
        lines += ["", "Ratios (HealthPredict a over the others, req/s):", ""]
        for other in ("b", "c", "d"):
            if rps.get(other):
                parts = [
                    f"{c} conn {rps['a'][c] / rps[other][c]:.1f}"
                    for c in (1, 8)
                    if c in rps["a"] and c in rps[other]
                ]
                lines.append(f"- a/{other}: " + ", ".join(parts))
    if batch:
        lines += [
            "",
            f"(e) `POST /predict/batch`, {args.batch} patients per request:",
            "",
            "| connections | requests/s | patients/s | p50 | p99 | errors |",
            "|---|---|---|---|---|---|",
        ]
        for r in batch:
            lines.append(
                f"| {r.connections} | {r.rps:.1f} | {r.rps * args.batch:,.0f} "
                f"| {r.p50_ms:.0f} ms | {r.p99_ms:.0f} ms | {r.errors} |"
            )
    return "\n".join(lines) + "\n"


def _f(r: Result | None, attr: str, unit: str = "") -> str:
    if r is None:
        return "-"
    v = getattr(r, attr)
    return f"{v:,.0f}{unit}" if attr == "rps" else f"{v:.2f}{unit}"


if __name__ == "__main__":
    main()
