"""`app.http_protocol`: one socket write per response, and nothing lost, reordered or held back.

A real uvicorn server (uvloop, httptools) serves a small ASGI app through
`CoalescingHttpToolsProtocol`; clients check every byte over keep-alive, pipelining, streaming,
``Connection: close`` and multi-megabyte bodies. The write count is read on a real uvloop socket
transport, behind the proxy.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
import uvloop

from app.http_protocol import CoalescingHttpToolsProtocol, CoalescingTransport

BIG = bytes(range(256)) * (3 * 4096)  # 3 MiB


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan
        message = await receive()
        while message["type"] != "lifespan.shutdown":
            await send({"type": message["type"] + ".complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/stream":  # chunked, with a real pause between chunks
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"%d;" % i, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"end"})
        return
    out = BIG if path == "/big" else b"echo:" + body
    headers = [(b"content-type", b"application/octet-stream")]
    headers.append((b"content-length", str(len(out)).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": out})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        http=CoalescingHttpToolsProtocol,
        loop="uvloop",
        lifespan="on",
        log_level="warning",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_keep_alive_bodies_intact(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        for i in range(200):
            payload = b"x" * (i * 37)
            r = client.post("/echo", content=payload)
            assert r.status_code == 200 and r.content == b"echo:" + payload
        r = client.get("/big")
        assert r.content == BIG
        r = client.get("/stream")
        assert r.content == b"0;1;2;3;4;end"


def test_connection_close_flushes_before_closing(server: str) -> None:
    for _ in range(20):
        r = httpx.post(f"{server}/echo", content=b"bye", headers={"Connection": "close"})
        assert r.content == b"echo:bye"
        assert r.headers["connection"] == "close"


def test_pipelined_requests_answered_in_order(server: str) -> None:
    host, port = server.removeprefix("http://").split(":")
    requests = b"".join(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % i for i in range(5)
    )
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(requests + b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    bodies = [part.split(b"\r\n\r\n", 1)[1][:6] for part in received.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"echo:0", b"echo:1", b"echo:2", b"echo:3", b"echo:4", b"echo:"]


class CountingProxy:
    """Counts the writes that reach the real transport."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport, self.writes = transport, 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self.writes += 1
        self.transport.writelines(chunks)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def test_head_and_body_reach_the_socket_in_one_write() -> None:
    async def scenario() -> tuple[int, bytes, int, bytes]:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        counting = CountingProxy(transport)  # type: ignore[arg-type]
        coalescing = CoalescingTransport(counting, loop)  # type: ignore[arg-type]
        coalescing.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n")
        coalescing.write(memoryview(b"body"))
        assert counting.writes == 0  # held until the loop turns
        await asyncio.sleep(0)
        first_writes = counting.writes
        theirs.setblocking(False)
        await asyncio.sleep(0.05)
        first = theirs.recv(4096)
        coalescing.write(b"last")
        coalescing.close()  # flushes what is held, then closes
        await asyncio.sleep(0.05)
        rest = theirs.recv(4096)
        theirs.close()
        return first_writes, first, counting.writes, rest

    first_writes, first, writes, rest = uvloop.run(scenario())
    assert first_writes == 1
    assert first == b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody"
    assert writes == 2 and rest == b"last"


def test_write_eof_sends_what_is_held_first() -> None:
    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
        coalescing = CoalescingTransport(transport, loop)  # type: ignore[arg-type]
        coalescing.write(b"held ")
        coalescing.write(b"bytes")
        coalescing.write_eof()  # before the loop turns: the held bytes must precede the EOF
        theirs.settimeout(5)
        received = b""
        while chunk := await loop.run_in_executor(None, theirs.recv, 4096):
            received += chunk
        theirs.close()
        coalescing.close()
        return received

    assert uvloop.run(scenario()) == b"held bytes"
