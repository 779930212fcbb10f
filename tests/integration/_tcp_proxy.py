"""A TCP proxy a test controls, between the service and a real server (PostgreSQL here).

``cut()`` resets every open connection and refuses new ones (a database that went down or a
network that drops), ``restore()`` listens again on the same port. ``freeze()`` is a partition:
connections stay open and new ones are accepted, but nothing is forwarded either way (no reset,
no answer, as when packets are dropped on the path) until ``thaw()``, which delivers what was
held, as TCP's retransmissions would once the path heals.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to ``target`` in threads, one pair per connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._flowing = threading.Event()
        self._flowing.set()
        self._listener = self._listen(0)
        self.port: int = self._listener.getsockname()[1]

    def _listen(self, port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return listener

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by cut()
                return
            with self._lock:
                self._open.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._flowing.wait()  # frozen: the client's connection is open, nothing goes through
        try:
            upstream = socket.create_connection(self.target)
        except OSError:
            client.close()
            return
        with self._lock:
            self._open.append(upstream)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                self._flowing.wait()
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def cut(self) -> None:
        """Drop every connection (reset) and stop listening (connections refused), as a
        crashed server or host would."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        self._listener.close()
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pipe threads blocked in recv()
            sock.close()

    def freeze(self) -> None:
        """Stop forwarding, keeping every connection open (a partition)."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Forward again, starting with what was held."""
        self._flowing.set()

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        self._listener = self._listen(self.port)

    def close(self) -> None:
        self.thaw()
        self.cut()
