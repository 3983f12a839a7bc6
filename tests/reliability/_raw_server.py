"""A loopback server of raw bytes: each connection is handed to a test's own function.

Hostile-server tests need replies no well-behaved server sends (a stalled
``Connection: close`` body, a redirect, a gzip bomb), so they write the bytes
themselves. Every handler gets the connected socket and a ``stop`` event
that is set when the server shuts down; a handler that stalls waits on it.
"""

from __future__ import annotations

import socket
import threading
from typing import Callable

Handler = Callable[[socket.socket, threading.Event], None]


def read_request(connection: socket.socket) -> bytes:
    """Read one request's head and its Content-Length body; b"" when the client left."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = connection.recv(65536)
        if not piece:
            return b""
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        piece = connection.recv(65536)
        if not piece:
            break
        body += piece
    return head + b"\r\n\r\n" + body


class RawServer:
    """Serve each accepted connection with ``handler`` in a thread of its own."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.stop_event = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections: list[socket.socket] = []
        self.requests: list[bytes] = []
        self.threads: list[threading.Thread] = []
        self.lock = threading.Lock()
        self.accepter = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> RawServer:
        self.accepter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections.append(connection)
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            self.handler(connection, self.stop_event)
        except OSError:
            pass

    def record(self, request: bytes) -> None:
        """Keep a request a handler read (for assertions on what was sent)."""
        with self.lock:
            self.requests.append(request)

    def close(self) -> None:
        """Stop every handler and close every socket."""
        self.stop_event.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.accepter.join(5)
        with self.lock:
            connections = list(self.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()
        for thread in self.threads:
            thread.join(5)
