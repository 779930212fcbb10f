"""`make bench`'s process accounting: CPU of a server and its children, and waiting until a
ready server's processes are idle before measuring it."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time

from bench.servers import cpu_seconds, first_drift_report, settle

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


def test_first_drift_report_waits_while_the_service_says_there_is_none_yet() -> None:
    """A stand-in for `GET /monitoring/drift`: 503 "no drift report yet" on the first three
    calls (with the API key checked), then 200."""
    calls: list[str | None] = []

    class Drift(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            calls.append(self.headers.get("X-API-Key"))
            status, body = (503, b'{"message": "no drift report yet: ..."}')
            if len(calls) > 3:
                status, body = 200, b"{}"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drift)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        waited = first_drift_report(server.server_address[1], "k", timeout_s=20)
    finally:
        server.shutdown()
    assert len(calls) == 4 and set(calls) == {"k"}
    assert 1.4 <= waited < 20  # three 0.5 s pauses, then the 200
