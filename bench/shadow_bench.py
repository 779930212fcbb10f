"""`make bench` (and `make bench-shadow`): /predict p99 at 8 connections with and without a
shadow challenger loaded; the issue's bar is "within 10 %".

Usage: ``python bench/shadow_bench.py [--duration 10] [--rounds 2] [--connections 8]``. One
HealthPredict worker on the environment's champion (trained first if absent). The challenger is
the pair with alias ``challenger`` when one is registered; otherwise the alias is pointed at the
champion's own versions for the run and removed afterwards (a challenger exactly as costly as
the champion). The two configurations alternate (without, with, without, with...) so the load
of a shared machine falls on both; each figure is the median over the rounds. Each server gets
its own audit store; wrk posts a different cohort patient per request.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from bench.bodies import N_BODIES, cohort_rows, write_bodies  # noqa: E402
from bench.run import API_KEY, ensure_models, wrk  # noqa: E402
from bench.servers import PY, Result, Server, free_port, start, stop  # noqa: E402

ALIAS = "challenger"


def borrow_alias(settings: Settings) -> list[str]:
    """Point ``challenger`` at the champion's versions unless a challenger exists; returns the
    names whose alias was set here (to remove afterwards)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    names = (settings.diagnosis_model_name, settings.treatment_model_name)
    try:
        for name in names:
            client.get_model_version_by_alias(name, ALIAS)
        return []
    except MlflowException:
        pass
    for name in names:
        version = client.get_model_version_by_alias(name, settings.model_alias).version
        client.set_registered_model_alias(name, ALIAS, version)
    return list(names)


def give_back(settings: Settings, names: list[str]) -> None:
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in names:
        client.delete_registered_model_alias(name, ALIAS)


def server(label: str, shadow: bool, port: int, bodies: Path, tmp: Path) -> Server:
    env = {
        "HP_PORT": str(port),
        "HP_HOST": "127.0.0.1",
        "HP_WORKERS": "1",
        "HP_DATABASE_URL": f"sqlite:///{tmp / f'audit-{label}.db'}",
        "HP_API_KEYS": f"{API_KEY}:clinician",
        "HP_RATE_LIMIT_PER_MINUTE": "1000000000",
        "HP_ACCESS_LOG": "false",
        "HP_LOG_LEVEL": "WARNING",
        "HP_SHADOW_ENABLED": "true" if shadow else "false",
    }
    ready = "/health/ready"
    return Server(
        label, f"/predict, {label}", [PY, "-m", "app"], env, ready, "/predict", bodies, API_KEY
    )


def measure(
    s: Server, tmp: Path, connections: int, duration: float, warmup: float, settle: float
) -> Result:
    port = int(s.env["HP_PORT"])
    try:
        start(s, port, tmp)
        if s.env["HP_SHADOW_ENABLED"] == "true":
            wait_for_shadow(port)
        wrk(s, port, connections, warmup)
        # The drift worker's first report (Evidently import + report, a child process) starts
        # within 10 s of start-up: without this pause it landed inside one configuration's
        # measurement and not the other's (seen in /proc CPU times), whichever waited longer.
        time.sleep(settle)
        wrk(s, port, connections, warmup)
        return wrk(s, port, connections, duration)
    finally:
        stop(s)


def wait_for_shadow(port: int, timeout_s: float = 120.0) -> None:
    import json
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as resp:
            shadow = json.loads(resp.read())["shadow"]
        if shadow["loaded"]:
            return
        time.sleep(0.2)
    raise RuntimeError(f"challenger not loaded after {timeout_s} s: {shadow['reason']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up seconds per server")
    parser.add_argument("--rounds", type=int, default=2, help="measurements of each setting")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--settle", type=float, default=30.0, help="idle seconds after start-up, before measuring"
    )
    args = parser.parse_args()
    settings = Settings()
    ensure_models(settings)
    tmp = Path(tempfile.mkdtemp(prefix="hp-shadow-bench-"))
    bodies = write_bodies(tmp, cohort_rows(settings.training_data_path, N_BODIES), 1)
    borrowed = borrow_alias(settings)
    results: dict[str, list[Result]] = {"without": [], "with": []}
    try:
        for k in range(args.rounds):
            for label in ("without", "with"):
                s = server(label, label == "with", free_port(), bodies["canonical"], tmp)
                r = measure(s, tmp, args.connections, args.duration, args.warmup, args.settle)
                results[label].append(r)
                print(
                    f"round {k + 1} {label:>7} challenger: {r.rps:,.0f} req/s, "
                    f"p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms, errors {r.errors}",
                    flush=True,
                )
    finally:
        give_back(settings, borrowed)
    p99 = {k: statistics.median(r.p99_ms for r in v) for k, v in results.items()}
    rps = {k: statistics.median(r.rps for r in v) for k, v in results.items()}
    ratio = p99["with"] / p99["without"]
    print(
        f"/predict at {args.connections} connections, median of {args.rounds} rounds: "
        f"p99 {p99['without']:.2f} ms without, {p99['with']:.2f} ms with a challenger "
        f"({ratio - 1:+.1%}); {rps['without']:,.0f} vs {rps['with']:,.0f} req/s; "
        f"{'within' if ratio <= 1.10 else 'NOT within'} 10 %"
    )


if __name__ == "__main__":
    main()
