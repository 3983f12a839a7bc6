"""The state a FakeLLMServer shares with its connection threads.

The server object is the handle tests hold; this is what its connection
threads work on: the queue of scripted replies, the record of requests, the
open connections, and the stop signal. One condition guards all of it, so
"a request arrived and took its reply" is one step that waiters observe.
"""

from __future__ import annotations

import collections
import select
import socket
import threading
import time
from typing import Any, Deque, List, Optional, Union

import attrs

from litestream.testing.replies import Replay, Script, default_script

__all__ = ["Connection", "RecordedRequest", "ServerState", "peer_closed", "shutdown"]


@attrs.frozen
class RecordedRequest:
    """One request the server received.

    Attributes:
        method: ``"POST"``, ``"GET"``...
        path: the path without the query string (``"/v1/chat/completions"``).
        query: the parsed query string (``{"alt": ["sse"]}``).
        headers: the request headers, names lower-cased.
        body: the raw request body.
        json: the body parsed as JSON, or ``None`` when it is not JSON.
        provider: the dialect the path identified (``"openai"``, ``"mistral"``,
            ``"openrouter"``, ``"anthropic"``, ``"gemini"``, ``"ollama"``), or ``None``.
        received_at: when the request's body had arrived, in
            :func:`time.monotonic` seconds (to check rates and spacing).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any
    provider: Optional[str]
    received_at: float = attrs.field(factory=time.monotonic)


@attrs.define(eq=False)
class Connection:
    """One accepted client connection and the thread serving it."""

    sock: socket.socket
    thread: Optional[threading.Thread] = None
    client_closed: bool = False


@attrs.define(eq=False)
class ServerState:
    """Replies, requests, connections and the stop signal of one server, under one condition.

    ``wake_read`` is the read end of a pipe the server writes to when it
    stops: every ``select`` in a connection thread watches it, so a stalled
    reply ends at once.
    """

    condition: threading.Condition = attrs.field(factory=threading.Condition)
    replies: Deque[Union[Script, Replay]] = attrs.field(factory=collections.deque)
    requests: List[RecordedRequest] = attrs.field(factory=list)
    connections: set[Connection] = attrs.field(factory=set)
    latest: Optional[Connection] = None
    disconnects: int = 0
    errors: List[BaseException] = attrs.field(factory=list)
    stopping: threading.Event = attrs.field(factory=threading.Event)
    wake_read: int = -1

    def enqueue(self, reply: Union[Script, Replay]) -> None:
        """Queue a reply for the next chat request."""
        with self.condition:
            self.replies.append(reply)

    def record(
        self, request: RecordedRequest, connection: Connection, takes_reply: bool
    ) -> Union[Script, Replay, None]:
        """Record a request and, for a chat request, take its reply in the same step.

        Once ``wait_for_requests(n)`` returns, request ``n`` holds its reply
        and cannot take the next one's.
        """
        with self.condition:
            self.requests.append(request)
            self.latest = connection
            self.condition.notify_all()
            if not takes_reply:
                return None
            return self.replies.popleft() if self.replies else default_script()

    def note_client_closed(self, connection: Connection) -> None:
        """Count ``connection`` as closed by the client (once; not while stopping)."""
        with self.condition:
            if connection.client_closed or self.stopping.is_set():
                return
            connection.client_closed = True
            self.disconnects += 1
            self.condition.notify_all()

    def note_error(self, error: BaseException) -> None:
        """Keep an unexpected exception of a connection thread for ``FakeLLMServer.errors``."""
        with self.condition:
            self.errors.append(error)

    def pause(self, connection: Connection, seconds: Optional[float]) -> bool:
        """Wait ``seconds`` (None: forever); False as soon as the client leaves or we stop."""
        deadline = None if seconds is None else time.monotonic() + seconds
        sock = connection.sock
        watched: list[Any] = [sock, self.wake_read]
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return True
            readable, _, _ = select.select(watched, [], [], remaining)
            if self.wake_read in readable or self.stopping.is_set():
                return False
            if sock in readable:
                if peer_closed(sock):
                    self.note_client_closed(connection)
                    return False
                # The client sent more bytes (a pipelined request): leave them for
                # the next request and watch only for a stop.
                watched = [self.wake_read]


def shutdown(sock: socket.socket) -> None:
    """Shut both directions of ``sock`` down (this wakes a thread blocked reading it)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def peer_closed(sock: socket.socket) -> bool:
    """Return True when the peer has closed ``sock`` (a peek reads EOF or fails)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
