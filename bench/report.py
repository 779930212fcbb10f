"""The Markdown report of one `make bench` run: versions, the table, the ratios."""

from __future__ import annotations

import argparse
import math
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from bench.servers import Result, Server


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
        if s.key.startswith("a") and not math.isnan(s.mean_batch):
            lines += [
                "",
                f"({s.key}) micro-batching: {s.mean_batch:.2f} requests per model call on "
                "average over its warm-up and both runs (from its /metrics).",
            ]
        if s.key == "a" and args.hp_env:
            lines += ["", f"(a) settings: {', '.join(args.hp_env)}"]
    rps = {s.key: {r.connections: r.rps for r in s.results} for s in todo}
    if rps.get("a"):
        lines += ["", "Ratios (HealthPredict a over the others, req/s):", ""]
        for other in ("b", "c", "d", "f"):
            if rps.get(other):
                parts = [
                    f"{c} conn {rps['a'][c] / rps[other][c]:.1f}"
                    for c in (1, 8)
                    if c in rps["a"] and c in rps[other]
                ]
                lines.append(f"- a/{other}: " + ", ".join(parts))
        for other in (k for k in rps if k.startswith("a:") and rps[k]):
            parts = [
                f"{c} conn {rps['a'][c] / rps[other][c]:.2f}"
                for c in (1, 8)
                if c in rps["a"] and c in rps[other]
            ]
            lines.append(
                f"- a/{other} (this checkout over the compared revision): " + ", ".join(parts)
            )
    if batch:
        lines += [
            "",
            f"(e) `POST /predict/batch`, {args.batch} patients per request:",
            "",
            "| server | connections | requests/s | patients/s | p50 | p99 | errors "
            "| CPU per request: serving process + its children |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in batch:
            lines.append(
                f"| ({r.target}) | {r.connections} | {r.rps:.1f} | {r.rps * args.batch:,.0f} "
                f"| {r.p50_ms:.0f} ms | {r.p99_ms:.0f} ms | {r.errors} | {r.cpu_text()} |"
            )
        lines += [
            "",
            "The CPU column is what a request costs whatever the host does (patients/s on one "
            "connection is about 1,000 / the serving process's ms while it has a core; its "
            "children, the audit writer's, run beside it on the other core).",
        ]
    return "\n".join(lines) + "\n"


def _f(r: Result | None, attr: str, unit: str = "") -> str:
    if r is None:
        return "-"
    v = getattr(r, attr)
    return f"{v:,.0f}{unit}" if attr == "rps" else f"{v:.2f}{unit}"
