"""Helper child processes of a serving process (the drift report worker, the audit writer, the
shadow challenger): how the parent starts one (`spawn`), and what each does first: ignore
SIGINT (Ctrl-C reaches the whole process group; the parent stops its children itself),
optionally lower its CPU priority, and exit when its parent dies without stopping it (SIGKILL,
OOM), since nobody would read its answers."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection

PARENT_POLL_S = 1.0


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(0)


def init_child(parent_pid: int, niceness: int = 0) -> None:
    """Call first thing in the child; ``niceness`` > 0 lowers its priority by that much."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if niceness:
        with contextlib.suppress(OSError):
            os.nice(niceness)
    threading.Thread(
        target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True
    ).start()


def spawn(module: str) -> tuple[subprocess.Popen[bytes], Connection]:
    """Start ``python -m <module> <fd> <our pid>`` with one end of a socket pair as ``fd``;
    returns the process and our end (not multiprocessing's spawn, which re-imports the parent's
    main script)."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        fd = theirs.fileno()
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(fd), str(os.getpid())],
            pass_fds=(fd,),
            stdin=subprocess.DEVNULL,
        )
        return proc, Connection(os.dup(ours.fileno()))


def child_args(description: str, argv: list[str] | None = None) -> tuple[Connection, int]:
    """In the child: its end of the socket pair and the parent's pid, from the command line
    `spawn` gave it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("fd", type=int, help="this end of the socket pair")
    parser.add_argument("parent_pid", type=int)
    args = parser.parse_args(argv)
    return Connection(args.fd), args.parent_pid
