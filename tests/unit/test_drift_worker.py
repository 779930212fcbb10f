"""The drift child process: same report as in-process, replaced after it dies, stopped by
`shutdown`, gone when its parent is killed. Real spawned processes; the crash tests use a
child that preloads nothing (no seconds of Evidently import)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from pathlib import Path

import pytest

from app.monitoring.drift import compute_drift, to_frame
from app.monitoring.drift_worker import CHILD_NICENESS, DriftWorker
from app.settings import PROJECT_ROOT
from train_pipeline.data.generate import generate_cohort

EXIT_DEADLINE_S = 60.0  # a hang guard, not a speed requirement


@pytest.fixture
async def bare() -> AsyncIterator[DriftWorker]:
    worker = DriftWorker(preload=())
    yield worker
    worker.shutdown()


def exited(pid: int) -> bool:
    """No such process any more, or only its zombie (exited, not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def wait_exited(pid: int) -> None:
    deadline = time.monotonic() + EXIT_DEADLINE_S
    while not exited(pid):
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.1)


async def test_report_from_the_child_is_the_in_process_report() -> None:
    reference = generate_cohort(300, seed=11)
    window = generate_cohort(200, seed=12)
    worker = DriftWorker()
    try:
        child = await worker.report(reference.to_dict("list"), window.to_dict("records"), "r1")
        pid = worker.pid
    finally:
        worker.shutdown()
    assert pid is not None and pid != os.getpid()
    local = compute_drift(
        to_frame(reference.to_dict("records")), to_frame(window.to_dict("records")), run_id="r1"
    )
    assert replace(child.summary, computed_at="") == replace(local.summary, computed_at="")
    assert 'id="healthpredict-drift-summary"' in child.html
    assert child.html.count("<script") == local.html.count("<script")
    wait_exited(pid)


async def test_one_child_serves_calls_at_lower_priority_ignoring_ctrl_c(
    bare: DriftWorker,
) -> None:
    pid = await bare.call(os.getpid)
    assert pid != os.getpid() and await bare.call(os.getpid) == pid == bare.pid
    assert await bare.call(os.nice, 0) == min(os.nice(0) + CHILD_NICENESS, 19)
    assert await bare.call(signal.getsignal, signal.SIGINT) == signal.SIG_IGN


async def test_a_child_killed_while_idle_fails_the_next_call_then_is_replaced(
    bare: DriftWorker,
) -> None:
    pid = await bare.call(os.getpid)
    os.kill(pid, signal.SIGKILL)
    wait_exited(pid)
    with pytest.raises(BrokenProcessPool):
        await bare.call(os.getpid)
    assert bare.pid is None
    new = await bare.call(os.getpid)
    assert new not in (pid, os.getpid())


async def test_a_child_dying_during_a_call_fails_that_call_then_is_replaced(
    bare: DriftWorker,
) -> None:
    pid = await bare.call(os.getpid)
    with pytest.raises(BrokenProcessPool):
        await bare.call(os.kill, pid, signal.SIGKILL)
    assert await bare.call(os.getpid) != pid


async def test_shutdown_stops_the_child_even_mid_call(bare: DriftWorker) -> None:
    pid = await bare.call(os.getpid)
    pending = asyncio.create_task(bare.call(time.sleep, 3600))
    await asyncio.sleep(0)  # submitted
    bare.shutdown()
    with pytest.raises(BrokenProcessPool):
        await pending
    assert bare.pid is None
    wait_exited(pid)
    bare.shutdown()  # again: nothing to do


def test_the_child_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = (
        "import asyncio, os\n"
        "from app.monitoring.drift_worker import DriftWorker\n"
        "print(asyncio.run(DriftWorker(preload=()).call(os.getpid)), flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    parent = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    wait_exited(int(parent.stdout.split()[0]))
