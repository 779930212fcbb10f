"""`make soak`: mixed traffic at a steady rate against a real `python -m app`, from this separate
process on loopback, for ``--minutes`` (10 by default).

Mix per second (``--rate`` requests/s in all): 70 % `POST /predict`, 10 % `POST /predict/batch`
of 50 patients, 15 % `POST /feedback` on an answered prediction, 5 % `GET /feedback/stats`.
Reports each minute: requests by status, p99, and the RSS of the server and its children; at the
end, the 5xx count, lost feedback (201s without a row in the store) and the RSS growth over the
last five minutes. Exits 1 when a 5xx was answered, a feedback was lost or RSS grew by 5 % or
more over the last 5 minutes (checked when the run lasts at least 6 minutes). Writes
``bench/results/<date>-soak.md``.

Usage: ``python bench/soak.py [--minutes 10] [--rate 40] [--database-url URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bodies import cohort_rows  # noqa: E402
from bench.run import API_KEY  # noqa: E402
from bench.servers import PY, Server, free_port, start, stop, tree_rss_mib  # noqa: E402

console = Console(stderr=True)
MIX = (("predict", 0.70), ("batch", 0.10), ("feedback", 0.15), ("stats", 0.05))
BATCH = 50
GROWTH_LIMIT = 0.05


@dataclass
class Minute:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    rss_mib: float = 0.0

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[int(0.99 * (len(ordered) - 1))] if ordered else float("nan")


@dataclass
class Soak:
    client: httpx.AsyncClient
    patients: list[dict[str, Any]]
    minutes: list[Minute] = field(default_factory=lambda: [Minute()])
    answered: list[str] = field(default_factory=list)  # prediction ids to give feedback on
    feedback_201: int = 0

    async def one(self, kind: str) -> None:
        started = time.monotonic()
        response = await self.call(kind)
        minute = self.minutes[-1]
        minute.statuses[response.status_code] += 1
        minute.latencies.append(time.monotonic() - started)
        if response.status_code == 200 and kind == "predict":
            self.answered.append(response.json()["prediction_id"])
        elif response.status_code == 201:
            self.feedback_201 += 1

    async def call(self, kind: str) -> httpx.Response:
        if kind == "predict":
            return await self.client.post("/predict", json=random.choice(self.patients))
        if kind == "batch":
            return await self.client.post(
                "/predict/batch", json={"records": random.sample(self.patients, BATCH)}
            )
        if kind == "feedback" and self.answered:
            pid = self.answered.pop(random.randrange(len(self.answered)))
            body = {"prediction_id": pid, "verdict": "correct", "clinician_id": "soak-01"}
            return await self.client.post("/feedback", json=body)
        return await self.client.get("/feedback/stats")


async def drive(soak: Soak, seconds: float, rate: float, pid: int) -> None:
    """Start requests at ``rate`` per second (not waiting for answers), one minute at a time."""
    kinds, weights = zip(*MIX, strict=True)
    tasks: set[asyncio.Task[None]] = set()
    t0 = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - t0) < seconds:
        if elapsed >= 60 * len(soak.minutes):
            close_minute(soak, pid)
        task = asyncio.create_task(soak.one(random.choices(kinds, weights)[0]))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        await asyncio.sleep(max(0.0, t0 + n / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    close_minute(soak, pid, last=True)


def close_minute(soak: Soak, pid: int, last: bool = False) -> None:
    minute = soak.minutes[-1]
    minute.rss_mib = tree_rss_mib(pid)
    console.log(
        f"minute {len(soak.minutes)}: {sum(minute.statuses.values())} requests "
        f"{dict(sorted(minute.statuses.items()))}, p99 {minute.p99_ms():.1f} ms, "
        f"RSS {minute.rss_mib:.0f} MiB"
    )
    if not last:
        soak.minutes.append(Minute())


def stored_feedback(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute("SELECT count(*) FROM feedback").fetchone()[0])


def verdict(soak: Soak, stored: int) -> tuple[int, int, float | None]:
    """5xx count, lost feedback, RSS growth over the last five minutes (None: run too short)."""
    errors = sum(n for m in soak.minutes for s, n in m.statuses.items() if s >= 500)
    lost = soak.feedback_201 - stored
    full = [m for m in soak.minutes if m.rss_mib]
    growth = None
    if len(full) >= 6:
        before, after = full[-6].rss_mib, full[-1].rss_mib
        growth = (after - before) / before
    return errors, lost, growth


def report(soak: Soak, args: argparse.Namespace, stored: int, out: Path) -> bool:
    errors, lost, growth = verdict(soak, stored)
    lines = [
        f"# Soak {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `python bench/soak.py --minutes {args.minutes:g} --rate {args.rate:g}` "
        "(`make soak`); one `python -m app` worker, SQLite store, traffic from a separate "
        "process on loopback.",
        "",
        "| minute | requests | statuses | p99 | RSS (server + children) |",
        "|---|---|---|---|---|",
    ]
    for i, m in enumerate(soak.minutes, 1):
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(m.statuses.items()))
        lines.append(
            f"| {i} | {sum(m.statuses.values())} | {statuses} | {m.p99_ms():.1f} ms "
            f"| {m.rss_mib:.0f} MiB |"
        )
    shown = "n/a (under 6 minutes)" if growth is None else f"{100 * growth:+.1f} %"
    lines += [
        "",
        f"5xx: {errors}; feedback answered 201: {soak.feedback_201}, rows stored: {stored}, "
        f"lost: {lost}; RSS growth over the last 5 minutes: {shown}.",
    ]
    out.write_text("\n".join(lines) + "\n")
    console.log(f"written {out}")
    return errors == 0 and lost == 0 and (growth is None or growth < GROWTH_LIMIT)


async def soak_run(args: argparse.Namespace, port: int, pid: int, database: Path) -> bool:
    patients = cohort_rows(args.data, 500)
    headers = {"X-API-Key": API_KEY}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60, limits=limits
    ) as client:
        soak = Soak(client, patients)
        await drive(soak, 60 * args.minutes, args.rate, pid)
    await asyncio.sleep(2)  # the audit and feedback writes of the last requests
    stamp = f"{datetime.now(UTC):%Y-%m-%d}"
    return report(soak, args, stored_feedback(database), args.out / f"{stamp}-soak.md")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=40.0, help="requests per second")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "clinical_cohort.csv")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hp-soak-"))
    port, database = free_port(), tmp / "soak.db"
    env = {
        "HP_PORT": str(port),
        "HP_HOST": "127.0.0.1",
        "HP_WORKERS": "1",
        "HP_DATABASE_URL": f"sqlite:///{database}",
        "HP_API_KEYS": f"{API_KEY}:clinician",
        "HP_RATE_LIMIT_PER_MINUTE": "1000000000",
        "HP_LOG_LEVEL": "WARNING",
    }
    server = Server("soak", "HealthPredict", [PY, "-m", "app"], env, "/health/ready", "", Path())
    start(server, port, tmp)
    assert server.proc is not None
    try:
        ok = asyncio.run(soak_run(args, port, server.proc.pid, database))
    finally:
        stop(server)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
