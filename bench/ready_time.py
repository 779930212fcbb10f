"""Time to ready of HealthPredict as `make bench` measures it: server (a) of `bench/run.py`
(`python -m app`, one worker, a fresh SQLite audit store, `/health/ready` polled every 50 ms),
started ``--runs`` times; each start, the medians and the load average are printed.

Usage: ``.venv/bin/python bench/ready_time.py [--runs 5]``. The host is shared: compare medians
taken in one sitting, and read the load average printed next to each start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.settings import Settings  # noqa: E402
from bench.run import servers  # noqa: E402
from bench.servers import free_port, start, stop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="hp-ready-") as tmp_name:
            tmp = Path(tmp_name)
            ports = {key: free_port() for key in "abcdf"}
            unused = defaultdict(lambda: Path(os.devnull))  # request bodies: none are sent
            (server,) = [s for s in servers(Settings(), unused, tmp, ports) if s.key == "a"]
            try:
                start(server, ports["a"], tmp)
            finally:
                stop(server)
            times.append(server.ready_s)
            print(
                f"start {i + 1}: ready after {server.ready_s:.2f} s (load {os.getloadavg()[0]:.1f})"
            )
    print(f"median {statistics.median(times):.2f} s over {len(times)} starts")


if __name__ == "__main__":
    main()
