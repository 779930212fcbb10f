"""The servers `make bench` measures: start one, wait until ready (time to ready), read its RSS,
stop it; the result of one wrk measurement."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


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
    cpu_ms: tuple[float, float] | None = None
    """CPU per request (ms): the serving process, and its children (the audit writer's...)."""

    def cpu_text(self) -> str:
        if self.cpu_ms is None:
            return "-"
        own, children = self.cpu_ms
        return f"{own:.1f} + {children:.1f} ms"


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
    cwd: Path | None = None  # None: this checkout (a compared revision runs from its worktree)
    proc: subprocess.Popen[bytes] | None = None
    ready_s: float = math.nan
    rss_mib: float = math.nan
    mean_batch: float = math.nan
    results: list[Result] = field(default_factory=list)


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
        cwd=server.cwd or ROOT,
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


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by a process and by its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    own, others = 0.0, 0.0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        if p == pid:
            own = used
        else:
            others += used
    return own, others


def settle(pid: int, share: float = 0.05, window_s: float = 0.5, timeout_s: float = 30) -> float:
    """Wait until a ready server's processes are idle (together under ``share`` of one core
    over ``window_s``), at most ``timeout_s``; the seconds waited. A server can be ready while
    a child still starts (HealthPredict's shadow process imports MLflow: seconds of CPU), and
    that CPU would be taken from the first measurement."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        before = sum(cpu_seconds(pid))
        time.sleep(window_s)
        if sum(cpu_seconds(pid)) - before < share * window_s:
            break
    return time.monotonic() - t0


def tree_rss_mib(pid: int) -> float:
    """RSS of a process and all its descendants (MiB), from /proc."""
    total = 0
    for p in process_tree(pid):
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


def first_drift_report(port: int, api_key: str, timeout_s: float = 90) -> float:
    """Wait until HealthPredict's first background drift report exists (it runs 10 s after
    start-up: Evidently's import and the report, seconds of CPU in a child at nice 10, a
    one-off like the warm-up), then until its processes are idle; the seconds waited. The
    next report comes `HP_DRIFT_REFRESH_S` (60 s) later, after the measurements."""
    t0 = time.monotonic()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/monitoring/drift", headers={"X-API-Key": api_key}
    )
    while time.monotonic() - t0 < timeout_s:
        try:
            with urllib.request.urlopen(request, timeout=5):
                break  # 200: a report exists
        except urllib.error.HTTPError as exc:
            if b"no drift report yet" not in exc.read():
                break  # computed, with a verdict of another kind (too few inputs...)
        time.sleep(0.5)
    return time.monotonic() - t0
