"""What one drift refresh costs the serving process: in a worker thread (before) vs in the
`DriftWorker` child process (after).

Usage: ``python bench/drift_bench.py [--reps 5] [--window 500]``. An in-process app (TestClient,
real lifespan, models from the environment's settings) answers one ``POST /predict/batch`` of
``--window`` cohort patients; its audit store, model and settings then feed two monitors in this
process, alternating order: the thread monitor of before 6dd1d42 and `DriftMonitor`. Each refresh
is forced (cache key dropped) and measured twice:

- alone: this process's CPU (`time.process_time`, every thread, children excluded), wall time,
  and the child's CPU (``/proc/<pid>/stat``);
- under a busy event loop: a task doing ~1 ms pure-Python steps (a stand-in for request
  handling) counts its steps during the refresh, against the same task with no refresh; and
  the longest step (GIL waits included).

Reported: medians over ``--reps``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.factories

STEP_S = 0.001
TICKS = os.sysconf("SC_CLK_TCK")


def running_app(n: int) -> Any:
    """A started TestClient whose app's audit store holds ``n`` real inputs."""
    tmp = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    os.environ["HP_DATABASE_URL"] = f"sqlite:///{tmp / 'hp.db'}"
    os.environ.setdefault("HP_RATE_LIMIT_PER_MINUTE", "1000000")
    os.environ.setdefault("HP_ACCESS_LOG", "false")
    os.environ.setdefault("HP_LOG_LEVEL", "WARNING")
    os.environ["HP_DRIFT_WINDOW_SIZE"] = str(n)
    os.environ["HP_DRIFT_REFRESH_S"] = "1e9"  # the app's own monitor stays out of the way
    from fastapi.testclient import TestClient

    from app.main import create_app
    from app.settings import DEFAULT_CLINICIAN_KEY, get_settings
    from tests.factories import cohort_payloads

    settings = get_settings()
    client = TestClient(create_app(settings)).__enter__()
    payloads = cohort_payloads(settings.training_data_path, n, seed=1)
    response = client.post(
        "/predict/batch", json={"records": payloads}, headers={"X-API-Key": DEFAULT_CLINICIAN_KEY}
    )
    if response.status_code != 200:
        raise SystemExit(f"POST /predict/batch: {response.status_code} {response.text[:500]}")
    client.portal.call(client.app.state.audit.flush)  # type: ignore[attr-defined]
    return client


def monitors(state: Any) -> dict[str, Any]:
    import anyio

    from app.monitoring.drift import compute_drift, reference_from_csv, to_frame
    from app.monitoring.monitor import DriftMonitor

    class ThreadMonitor(DriftMonitor):
        """Before 6dd1d42: frames and Evidently run in a worker thread of this process."""

        def _compute(self) -> Any:
            key, reference, window, run_id = self._job()
            if isinstance(reference, Path):
                ref = reference_from_csv(reference)
            else:
                ref = to_frame(reference)
            result = compute_drift(ref, to_frame(window), run_id=run_id)
            self.latest_result, self._key = result, key
            return result

        async def refresh(self) -> Any:
            async with self._lock:
                return await anyio.to_thread.run_sync(self._compute)

    args = (state.settings, state.models, state.sessionmaker)
    return {"thread (before)": ThreadMonitor(*args), "child process (after)": DriftMonitor(*args)}


def child_cpu_s(monitor: Any) -> float:
    pid = getattr(getattr(monitor, "worker", None), "pid", None)
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def alone(monitor: Any) -> tuple[float, float, float]:
    monitor._key = None
    cpu, child, wall = time.process_time(), child_cpu_s(monitor), time.perf_counter()
    await monitor.refresh()
    return time.process_time() - cpu, time.perf_counter() - wall, child_cpu_s(monitor) - child


def step() -> None:
    end = time.thread_time() + STEP_S
    while time.thread_time() < end:
        pass


async def busy_loop(during: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(steps per second, longest step in ms) of a busy task while ``during()`` runs."""
    done = asyncio.Event()
    steps, longest = 0, 0.0

    async def ticker() -> None:
        nonlocal steps, longest
        while not done.is_set():
            t = time.perf_counter()
            step()
            await asyncio.sleep(0)
            longest = max(longest, time.perf_counter() - t)
            steps += 1

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    try:
        await during()
    finally:
        elapsed = time.perf_counter() - start
        done.set()
        await task
    return steps / elapsed, longest * 1000


async def run(state: Any, reps: int) -> dict[str, dict[str, list[float]]]:
    variants = monitors(state)
    for monitor in variants.values():  # warm-up: Evidently imported, child started
        await alone(monitor)
    out: dict[str, dict[str, list[float]]] = {name: {} for name in variants}
    for rep in range(reps):
        order = list(variants.items())
        if rep % 2:
            order.reverse()
        for name, monitor in order:
            cpu, wall, child = await alone(monitor)
            monitor._key = None
            rate, longest = await busy_loop(monitor.refresh)
            seconds = max(wall, 1.0)
            idle_rate, idle_longest = await busy_loop(lambda s=seconds: asyncio.sleep(s))
            for key, value in {
                "serving-process CPU s": cpu,
                "wall s": wall,
                "child CPU s": child,
                "busy-loop steps/s during refresh": rate,
                "busy-loop steps/s, no refresh": idle_rate,
                "longest step ms during refresh": longest,
                "longest step ms, no refresh": idle_longest,
            }.items():
                out[name].setdefault(key, []).append(value)
    for monitor in variants.values():
        await monitor.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--window", type=int, default=500, help="live inputs in the window")
    args = parser.parse_args()
    client = running_app(args.window)
    results = asyncio.run(run(client.app.state, args.reps))
    client.__exit__(None, None, None)
    names = list(results)
    print(f"window {args.window} inputs, medians of {args.reps} refreshes, pid {os.getpid()}")
    print(f"{'':36}" + "".join(f"{n:>24}" for n in names))
    for key in results[names[0]]:
        row = "".join(f"{statistics.median(results[n][key]):>24.3f}" for n in names)
        print(f"{key:36}{row}")


if __name__ == "__main__":
    main()
