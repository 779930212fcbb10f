"""uvicorn's httptools protocol with one socket write per response instead of two.

uvicorn writes a response's head and its body with two ``transport.write`` calls, and uvloop
sends each at once: two ``send`` system calls and two TCP segments for a 1 KB JSON answer (on
loopback the kernel's work of a send is charged to the sender). One write instead: CPU per
`POST /predict` 1,109–1,188 -> 1,068–1,135 µs (wrk, 8 connections, 3 alternating rounds).

`CoalescingTransport` holds what is written during one event-loop step and hands it to the real
transport in one write on the next step (``loop.call_soon``): the head and body of a response,
written back to back by the same task, leave together. Order is kept (every write goes through
the buffer); ``close`` and ``write_eof`` write what is held first; ``abort`` drops it, as the
real one drops its own buffer. Everything else is the real transport's.

Used by `python -m app` (one worker: ``uvicorn.run(http=CoalescingHttpToolsProtocol)``; several:
gunicorn's `CoalescingUvicornWorker`); httptools comes with ``uvicorn[standard]``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker


class CoalescingTransport:
    """A transport proxy whose writes within one loop step leave as one write."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data if data.__class__ is bytes else bytes(data))

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.writelines(pending)  # uvloop: one writev, no join copy

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def abort(self) -> None:
        self._pending = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, ...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` writing through a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        coalescing = CoalescingTransport(transport, self.loop)  # type: ignore[arg-type]
        super().connection_made(coalescing)  # type: ignore[arg-type]


class CoalescingUvicornWorker(UvicornWorker):  # type: ignore[misc]
    """gunicorn worker class serving with `CoalescingHttpToolsProtocol`."""

    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "http": CoalescingHttpToolsProtocol}
