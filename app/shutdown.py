"""SIGTERM the same way with one worker (uvicorn) and several (gunicorn's uvicorn workers):
readiness turns 503 at once, the server keeps serving for ``drain_s`` (a load balancer's probes
see the 503 and stop sending), then the server's own graceful shutdown runs: it stops listening
(new connections are refused), lets in-flight requests finish, and the lifespan drains the audit
queue; `python -m app` and gunicorn then exit 0.

Both servers run the app inside uvicorn's ``Server``, which installs its exit handler for
SIGTERM/SIGINT before the lifespan starts; this module chains in front of that handler and calls
it after the drain (at once for a second signal), so the two modes cannot differ.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def drain_on_signal(state: Any, drain_s: float) -> Callable[[], None]:
    """Set ``state.shutting_down`` on SIGTERM/SIGINT and pass the signal on after ``drain_s``;
    returns the function that puts the previous handlers back (a no-op off the main thread,
    where signals cannot be handled: the test client)."""
    state.shutting_down = False
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}

    def pass_on(sig: int, frame: FrameType | None) -> None:
        handler = previous[sig]
        if callable(handler):
            handler(sig, frame)
        else:  # SIG_DFL / SIG_IGN: as if we had never been here
            signal.signal(sig, handler)
            signal.raise_signal(sig)

    def on_signal(sig: int, frame: FrameType | None) -> None:
        if state.shutting_down or drain_s <= 0:
            state.shutting_down = True
            pass_on(sig, frame)
            return
        state.shutting_down = True
        logger.info("shutting down: not ready, draining", extra={"drain_s": drain_s})
        loop.call_soon_threadsafe(loop.call_later, drain_s, pass_on, sig, None)

    for sig in SIGNALS:
        signal.signal(sig, on_signal)

    def restore() -> None:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is on_signal:
                signal.signal(sig, handler)

    return restore
