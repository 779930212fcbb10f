"""`make bench`'s process accounting: CPU of a server and its children, and waiting until a
ready server's processes are idle before measuring it."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.servers import cpu_seconds, settle

# A parent that starts a child burning 1.5 s of CPU (however slow the host), then both sleep.
PARENT = (
    "import subprocess, sys, time\n"
    "subprocess.Popen([sys.executable, '-c', "
    "'import time\\nwhile time.process_time() < 1.5: pass\\ntime.sleep(60)'])\n"
    "time.sleep(60)\n"
)


def test_settle_waits_for_a_busy_child_and_counts_its_cpu_apart() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        deadline = time.monotonic() + 10
        while cpu_seconds(parent.pid)[1] < 0.2:  # the child is running
            assert time.monotonic() < deadline, "the child never started burning"
            time.sleep(0.05)
        waited = settle(parent.pid, window_s=0.25)
        own, children = cpu_seconds(parent.pid)
        # >= 1.3 s of CPU were left when it was called: that long at least, on one core
        assert waited >= 1.0, f"settled after {waited:.2f} s while the child still burned"
        assert children >= 1.4 > own, (own, children)  # (/proc counts in ticks)
        assert settle(parent.pid, window_s=0.25) < 1.0  # idle now: one window or two
    finally:
        subprocess.run(["pkill", "-P", str(parent.pid)], check=False)
        parent.kill()
        parent.wait()
