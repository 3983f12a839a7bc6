"""FakeLLMServer: a loopback HTTP server that speaks every provider's wire format.

Point litestream (or an official SDK) at it instead of the real API and
script what it answers, including the faults real providers produce: HTTP
errors with ``Retry-After``, in-band error events, stalls with or without
keepalives, connections cut mid-event, malformed frames, replies that never
come. It is a real HTTP/1.1 server on ``127.0.0.1`` with an ephemeral port,
one daemon thread per connection (threads are named ``fakellm-...``).

Each provider is served at its real path, so the usual ``api_base`` works:

=====================================  ===========================================
provider                               ``api_base``
=====================================  ===========================================
openai, mistral, openai_compatible     ``server.url + "/v1"``
openrouter                             ``server.url + "/api/v1"``
anthropic, gemini, ollama              ``server.url``
=====================================  ===========================================

Replies are taken in order from one FIFO queue, and encoded in the format of
whichever provider the request's path identifies; when the queue is empty the
server answers with a short default text. Every request is recorded.

Example::

    import litestream
    from litestream.testing import FakeLLMServer

    with FakeLLMServer() as server:
        server.script(text="Hello there", chunks=2,
                      usage={"prompt_tokens": 5, "completion_tokens": 2})
        server.script(error_status=429, retry_after=3)
        stream = litestream.completion(
            "anthropic", "claude-3-5-haiku-latest",
            messages=[{"role": "user", "content": "Hi"}], stream=True,
            api_key="test", api_base=server.api_base("anthropic"))
        assert "".join(chunk.content or "" for chunk in stream) == "Hello there"
        assert server.last_request.json["model"] == "claude-3-5-haiku-latest"
        # The next request gets the queued 429, with its Retry-After header.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar, Deque, Dict, List, Mapping, Optional, Sequence, Union
from urllib.parse import parse_qs, urlsplit

import attrs

from litestream import _fake_responses
from litestream import _fake_wire as wire

__all__ = ["FakeLLMServer", "RecordedRequest"]

#: The default answer when no reply is queued.
DEFAULT_TEXT = "Hello from FakeLLMServer!"

_API_BASE_SUFFIX = {
    "openai": "/v1",
    "mistral": "/v1",
    "openai_compatible": "/v1",
    "openrouter": "/api/v1",
    "openai_responses": "/v1",
    "anthropic": "",
    "gemini": "",
    "ollama": "",
}


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
    """

    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes
    json: Any
    provider: Optional[str]


@attrs.frozen
class _Script:
    spec: wire.ReplySpec
    faults: wire.StreamFaults
    delay: float = 0.0
    keepalive_interval: Optional[float] = None
    cut_after_bytes: Optional[int] = None
    error_status: Optional[int] = None
    error_body: Union[bytes, str, Mapping[str, Any], None] = None
    retry_after: Union[float, str, None] = None
    head_delay: float = 0.0
    no_response: bool = False
    not_event_stream: bool = False
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class _Replay:
    body: bytes
    status: int = 200
    content_type: Optional[str] = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    piece_size: Optional[int] = None
    piece_delay: float = 0.0
    cut_after_bytes: Optional[int] = None


@attrs.define(eq=False)
class _Connection:
    sock: socket.socket
    thread: Optional[threading.Thread] = None
    client_closed: bool = False


class FakeLLMServer:
    """A scripted, fault-injecting fake of six LLM providers on a loopback port.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    Queue replies with :meth:`script` (content encoded in the provider's
    format, with optional faults) or :meth:`replay` (a recorded transcript,
    byte for byte); unqueued requests get a short default text answer.

    The server records each request (:attr:`requests`) and tracks its
    connections so tests can check that a client really let go of them:
    :meth:`wait_for_disconnect` and :meth:`wait_idle`. :meth:`stop` ends
    promptly even while replies are stalled, and leaves no thread behind.

    Example::

        with FakeLLMServer() as server:
            server.script(text="It is sunny.", tool_calls=[
                {"name": "get_weather", "arguments": {"city": "Paris"}}])
            client = openai.OpenAI(base_url=server.api_base("openai"), api_key="x")
            ...
    """

    _running: ClassVar[set[FakeLLMServer]] = set()
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Create a stopped server; it binds ``host:port`` (port 0: any free one) on start."""
        self._host = host
        self._requested_port = port
        self._port: Optional[int] = None
        self._condition = threading.Condition()
        self._replies: Deque[Union[_Script, _Replay]] = collections.deque()
        self._requests: List[RecordedRequest] = []
        self._connections: set[_Connection] = set()
        self._latest: Optional[_Connection] = None
        self._disconnects = 0
        self._errors: List[BaseException] = []
        self._stopping = threading.Event()
        self._listener: Optional[socket.socket] = None
        self._accept_thread: Optional[threading.Thread] = None
        self._wake_read = self._wake_write = -1
        self._numbers = itertools.count(1)

    # -- lifecycle ----------------------------------------------------------

    @classmethod
    def running(cls) -> list[FakeLLMServer]:
        """Return the servers started and not yet stopped (the test suite's leak check uses it)."""
        with cls._running_lock:
            return list(cls._running)

    def start(self) -> FakeLLMServer:
        """Bind the port and start accepting connections; returns ``self``.

        Raises:
            RuntimeError: when the server was already started.
        """
        if self._listener is not None:
            raise RuntimeError("FakeLLMServer already started")
        self._stopping.clear()
        self._wake_read, self._wake_write = os.pipe()
        # A full accept queue drops SYNs and the client retries a second later:
        # take the system maximum so a burst of concurrent clients is not delayed.
        self._listener = socket.create_server((self._host, self._requested_port),
                                              backlog=socket.SOMAXCONN)
        self._port = self._listener.getsockname()[1]
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"fakellm-accept-{self._port}", daemon=True)
        self._accept_thread.start()
        with self._running_lock:
            self._running.add(self)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server: close every connection, even stalled ones, and join every thread.

        Idempotent. Stalled, delayed and never-answered replies are woken and
        their sockets shut down, so this returns promptly.

        Args:
            timeout: the most seconds to wait for each thread to end.
        """
        if self._listener is None:
            return
        with self._condition:
            self._stopping.set()
            self._condition.notify_all()
        os.write(self._wake_write, b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        self._listener.close()
        with self._condition:
            connections = list(self._connections)
        for connection in connections:
            _shutdown(connection.sock)
        for connection in connections:
            if connection.thread is not None:
                connection.thread.join(timeout)
        os.close(self._wake_read)
        os.close(self._wake_write)
        self._listener = None
        self._accept_thread = None
        with self._running_lock:
            self._running.discard(self)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- addresses ------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (only once started)."""
        if self._port is None:
            raise RuntimeError("FakeLLMServer not started")
        return self._port

    @property
    def url(self) -> str:
        """``"http://127.0.0.1:PORT"``, the server's root URL."""
        return f"http://{self._host}:{self.port}"

    def api_base(self, provider: str) -> str:
        """Return the ``api_base`` that points ``provider`` at this server.

        Args:
            provider: one of ``"openai"``, ``"mistral"``, ``"openrouter"``,
                ``"openai_compatible"``, ``"anthropic"``, ``"gemini"``, ``"ollama"``.

        Raises:
            ValueError: for another provider name.
        """
        if provider not in _API_BASE_SUFFIX:
            raise ValueError(f"unknown provider {provider!r}")
        return self.url + _API_BASE_SUFFIX[provider]

    # -- scripting ------------------------------------------------------------

    def replay(
        self,
        source: Union[str, os.PathLike[str], bytes],
        status: int = 200,
        content_type: Optional[str] = None,
        headers: Optional[Mapping[str, str]] = None,
        *,
        piece_size: Optional[int] = None,
        piece_delay: float = 0.0,
        cut_after_bytes: Optional[int] = None,
    ) -> None:
        """Queue a reply that serves a recorded body exactly as it is, byte for byte.

        Args:
            source: a path to a transcript file, or the body itself as bytes.
            status: the HTTP status.
            content_type: the Content-Type; by default ``application/json`` for
                a ``.json`` file, else the requesting provider's stream type
                (``application/x-ndjson`` for Ollama, ``text/event-stream`` otherwise).
            headers: extra response headers.
            piece_size: write the body in pieces of this many bytes, each sent
                on its own (one HTTP chunk, one socket write), to exercise
                framing across reads. ``None`` writes it whole.
            piece_delay: seconds to wait before each piece after the first.
            cut_after_bytes: close the connection after this many body bytes.

        Example::

            server.replay("fixtures/streams/openai/plain_text.txt", piece_size=7)
        """
        if isinstance(source, bytes):
            body = source
        else:
            path = Path(source)
            body = path.read_bytes()
            if content_type is None and path.suffix == ".json":
                content_type = "application/json"
        self._enqueue(_Replay(body, status, content_type, dict(headers or {}), piece_size,
                              piece_delay, cut_after_bytes))

    def script(
        self,
        text: str = DEFAULT_TEXT,
        chunks: Union[int, Sequence[str], None] = None,
        tool_calls: Optional[Sequence[Mapping[str, Any]]] = None,
        usage: Optional[Mapping[str, int]] = None,
        finish_reason: Optional[str] = None,
        reasoning: Optional[str] = None,
        delay: float = 0.0,
        stall_after: Optional[int] = None,
        keepalive_interval: Optional[float] = None,
        cut_after_bytes: Optional[int] = None,
        error_status: Optional[int] = None,
        error_body: Union[bytes, str, Mapping[str, Any], None] = None,
        retry_after: Union[float, str, None] = None,
        inband_error_after: Optional[int] = None,
        malformed_after: Optional[int] = None,
        keepalives: int = 0,
        omit_done: bool = False,
        events_after_done: bool = False,
        head_delay: float = 0.0,
        no_response: bool = False,
        not_event_stream: bool = False,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        """Queue one reply, encoded in the requesting provider's real wire format.

        "Chunks" below are content-bearing events: a text piece, a reasoning
        piece, or a tool-call fragment (role, block-start and finish events
        are not counted).

        Args:
            text: the answer text.
            chunks: how to split ``text``: a number of even pieces, or the
                pieces themselves (then ``text`` is ignored). By default, one
                piece per word.
            tool_calls: whole calls, each ``{"name", "arguments", "id"}``;
                ``arguments`` is JSON text or a dict; ``id`` is optional. They
                are streamed the provider's way (OpenAI and Anthropic in
                fragments, Mistral, Gemini and Ollama whole).
            usage: ``{"prompt_tokens", "completion_tokens"}``; by default 10
                prompt tokens and one completion token per chunk.
            finish_reason: normalized (``stop``, ``length``, ``tool_calls``,
                ``content_filter``), mapped to the provider's own value; by
                default ``tool_calls`` when there are tool calls, else ``stop``.
            reasoning: thinking text, streamed before the answer (OpenAI
                ``reasoning_content``, OpenRouter ``reasoning``, Anthropic
                thinking block, Gemini ``thought`` parts, Ollama ``thinking``).
            delay: seconds to wait before each chunk.
            stall_after: send this many chunks, then nothing more: keep the
                connection open until the client disconnects or the server stops.
            keepalive_interval: while stalled, send a keepalive this often
                (SSE ``: keepalive`` comments; ``event: ping`` for Anthropic;
                nothing for Ollama, whose NDJSON has no keepalive).
            cut_after_bytes: close the connection abruptly after this many
                body bytes (counted without the chunked-encoding framing).
            error_status: answer with this HTTP status and the provider's
                error body instead.
            error_body: the error body to send instead of the provider's
                (a dict is sent as JSON; text starting with ``<`` as HTML).
            retry_after: the ``Retry-After`` header of the error reply.
            inband_error_after: after this many chunks, send the provider's
                in-band error event and end the stream.
            malformed_after: after this many chunks, send an event whose data
                is not JSON, then the rest of the stream.
            keepalives: send this many keepalive comments before the first
                event (OpenRouter's ``: OPENROUTER PROCESSING``; none for Ollama).
                Real Gemini never sends comments and google-genai rejects them,
                but an SSE client such as litestream must skip them.
            omit_done: leave out the terminator (``data: [DONE]``, Anthropic's
                ``message_stop``, Ollama's ``done`` line; Gemini has none).
            events_after_done: send one more content event after the terminator.
            head_delay: seconds to wait before sending the response headers.
            no_response: read the request but never answer, until the client
                disconnects or the server stops.
            not_event_stream: answer 200 with an HTML page instead of a stream.
            headers: extra response headers.
        """
        if isinstance(chunks, int):
            pieces = wire.split_evenly(text, chunks)
        elif chunks is None:
            pieces = wire.split_words(text)
        else:
            pieces = [str(piece) for piece in chunks]
        calls = tuple(_tool_spec(call) for call in tool_calls or ())
        reasoning_pieces = tuple(wire.split_words(reasoning)) if reasoning else ()
        count = len(pieces) + len(reasoning_pieces) + len(calls)
        usage = dict(usage or {})
        spec = wire.ReplySpec(
            chunks=tuple(pieces),
            tool_calls=calls,
            reasoning_chunks=reasoning_pieces,
            prompt_tokens=int(usage.get("prompt_tokens", 10)),
            completion_tokens=int(usage.get("completion_tokens", count)),
            finish_reason=finish_reason or ("tool_calls" if calls else "stop"),
        )
        faults = wire.StreamFaults(stall_after, inband_error_after, malformed_after, keepalives,
                                   omit_done, events_after_done)
        self._enqueue(_Script(spec, faults, delay, keepalive_interval, cut_after_bytes,
                              error_status, error_body, retry_after, head_delay, no_response,
                              not_event_stream, dict(headers or {})))

    def script_responses(self, **options: Any) -> None:
        """Queue one streamed Responses API answer (``POST /v1/responses``).

        For what :meth:`script` cannot say in that dialect. Options are the
        fields of :class:`litestream._fake_responses.ResponsesScript`:
        ``text_pieces``, ``reasoning_pieces`` (a summary, with
        ``encrypted_content``), ``refusal_pieces``, ``tool_calls`` (dicts as
        for :meth:`script`), ``status`` (``completed``, ``incomplete`` with
        ``incomplete_reason``, ``failed`` with ``error_code`` and
        ``error_message``), ``error_after`` (an ``error`` event after that
        many content events), ``prompt_tokens``, ``completion_tokens``,
        ``reasoning_tokens``, ``model``.
        """
        calls = tuple(_tool_spec(call) for call in options.pop("tool_calls", ()))
        script = _fake_responses.ResponsesScript(tool_calls=calls, **options)
        self.replay(_fake_responses.stream_body(script))

    def _enqueue(self, reply: Union[_Script, _Replay]) -> None:
        with self._condition:
            self._replies.append(reply)

    @property
    def pending(self) -> int:
        """How many queued replies no request has taken yet."""
        with self._condition:
            return len(self._replies)

    # -- observation ----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, oldest first."""
        with self._condition:
            return list(self._requests)

    @property
    def last_request(self) -> Optional[RecordedRequest]:
        """The latest request received, or ``None``."""
        with self._condition:
            return self._requests[-1] if self._requests else None

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` requests have arrived; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: len(self._requests) >= count, timeout)

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions raised while serving (a bug in the server if not empty)."""
        with self._condition:
            return list(self._errors)

    @property
    def disconnects(self) -> int:
        """How many connections the client closed (seen as EOF or a failed write)."""
        with self._condition:
            return self._disconnects

    @property
    def open_connections(self) -> int:
        """How many connections are open on the server side right now."""
        with self._condition:
            return len(self._connections)

    def wait_for_disconnect(self, timeout: float) -> bool:
        """Wait until the client has closed the connection that carried the latest request.

        The server notices at once while it writes, stalls, delays or waits
        for the next request on that connection.

        Returns:
            True once the client closed it; False when ``timeout`` passes first,
            when no request came, or when the server stopped.
        """
        def closed() -> bool:
            latest = self._latest
            return self._stopping.is_set() or (latest is not None and latest.client_closed)

        with self._condition:
            self._condition.wait_for(closed, timeout)
            return self._latest is not None and self._latest.client_closed

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is open on the server side; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._connections, timeout)

    # -- connections ----------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while True:
            readable, _, _ = select.select([listener, self._wake_read], [], [])
            if self._wake_read in readable or self._stopping.is_set():
                return
            try:
                sock, _ = listener.accept()
            except OSError:
                continue
            connection = _Connection(sock)
            connection.thread = threading.Thread(
                target=self._serve_connection, args=(connection,),
                name=f"fakellm-conn-{self._port}-{next(self._numbers)}", daemon=True)
            with self._condition:
                if self._stopping.is_set():
                    sock.close()
                    return
                self._connections.add(connection)
            connection.thread.start()

    def _serve_connection(self, connection: _Connection) -> None:
        try:
            _Handler(connection.sock, connection.sock.getpeername(), _Context(self, connection))
        except OSError:
            self._note_client_closed(connection)
        except Exception as error:  # kept for `errors`, never lost silently
            with self._condition:
                self._errors.append(error)
        finally:
            _shutdown(connection.sock)
            connection.sock.close()
            with self._condition:
                self._connections.discard(connection)
                self._condition.notify_all()

    def _note_client_closed(self, connection: _Connection) -> None:
        with self._condition:
            if connection.client_closed or self._stopping.is_set():
                return
            connection.client_closed = True
            self._disconnects += 1
            self._condition.notify_all()

    def _record(
        self, request: RecordedRequest, connection: _Connection, takes_reply: bool
    ) -> Union[_Script, _Replay, None]:
        """Record a request and, for a chat request, take its reply in the same step."""
        with self._condition:
            self._requests.append(request)
            self._latest = connection
            self._condition.notify_all()
            if not takes_reply:
                return None
            return self._replies.popleft() if self._replies else _default_script()

    def _pause(self, connection: _Connection, seconds: Optional[float]) -> bool:
        """Wait ``seconds`` (None: forever); False as soon as the client leaves or we stop."""
        deadline = None if seconds is None else time.monotonic() + seconds
        sock = connection.sock
        watched: list[Any] = [sock, self._wake_read]
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return True
            readable, _, _ = select.select(watched, [], [], remaining)
            if self._wake_read in readable or self._stopping.is_set():
                return False
            if sock in readable:
                if _peer_closed(sock):
                    self._note_client_closed(connection)
                    return False
                # The client sent more bytes (a pipelined request): leave them for
                # the next request and watch only for a stop.
                watched = [self._wake_read]


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _peer_closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _tool_spec(call: Mapping[str, Any]) -> wire.ToolSpec:
    arguments = call.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return wire.ToolSpec(call.get("id"), str(call["name"]), arguments)


def _default_script() -> _Script:
    spec = wire.ReplySpec(chunks=("Hello", " from", " FakeLLMServer", "!"),
                          prompt_tokens=10, completion_tokens=4)
    return _Script(spec, wire.StreamFaults())


@attrs.frozen
class _Context:
    server: FakeLLMServer
    connection: _Connection


class _Handler(BaseHTTPRequestHandler):
    """Serves the requests of one connection (keep-alive) for a FakeLLMServer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Context  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read `requests`, not logs."""

    def handle_one_request(self) -> None:
        """Serve one request; an empty read means the client closed the connection."""
        super().handle_one_request()
        if not self.raw_requestline:
            self.server.server._note_client_closed(self.server.connection)

    # -- plumbing ---------------------------------------------------------------

    @property
    def _fake(self) -> FakeLLMServer:
        return self.server.server

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _write(self, data: bytes) -> bool:
        """Send ``data``; False (and the client marked gone) when the socket is closed."""
        try:
            self.wfile.write(data)
            return True
        except OSError:
            self.close_connection = True
            self._fake._note_client_closed(self.server.connection)
            return False

    def _write_chunk(self, data: bytes) -> bool:
        return self._write(b"%x\r\n%b\r\n" % (len(data), data)) if data else True

    def _head(self, status: int, content_type: str, headers: Mapping[str, str],
              length: Optional[int]) -> bool:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        else:
            self.send_header("Content-Length", str(length))
        request_id = f"req_fake{len(self._fake.requests)}"
        self.send_header("x-request-id", request_id)
        self.send_header("request-id", request_id)
        for name, value in headers.items():
            self.send_header(name, str(value))
        try:
            self.end_headers()
            return True
        except OSError:
            self.close_connection = True
            self._fake._note_client_closed(self.server.connection)
            return False

    def _cut(self) -> None:
        self.close_connection = True
        _shutdown(self.connection)

    def _send_whole(self, status: int, content_type: str, body: bytes,
                    headers: Mapping[str, str], cut_after_bytes: Optional[int] = None) -> None:
        if not self._head(status, content_type, headers, len(body)):
            return
        if cut_after_bytes is not None and cut_after_bytes < len(body):
            self._write(body[:cut_after_bytes])
            self._cut()
            return
        self._write(body)

    def _send_stream(self, status: int, content_type: str, headers: Mapping[str, str],
                     events: Sequence[wire.Event], delay: float,
                     cut_after_bytes: Optional[int] = None,
                     keepalive: bytes = b"", keepalive_interval: Optional[float] = None) -> None:
        if not self._head(status, content_type, headers, None):
            return
        budget = cut_after_bytes
        for event in events:
            if event.kind == wire.STALL:
                self._stall(keepalive, keepalive_interval)
                return
            if delay > 0 and event.kind == wire.CONTENT:
                if not self._fake._pause(self.server.connection, delay):
                    self.close_connection = True
                    return
            data = event.data
            if budget is not None and len(data) >= budget:
                # Announce the whole event, send only part of it, then hang up.
                self._write(b"%x\r\n%b" % (len(data), data[:budget]))
                self._cut()
                return
            if not self._write_chunk(data):
                return
            if budget is not None:
                budget -= len(data)
        self._write(b"0\r\n\r\n")

    def _stall(self, keepalive: bytes, interval: Optional[float]) -> None:
        self.close_connection = True
        connection = self.server.connection
        if not (keepalive and interval):
            self._fake._pause(connection, None)
            return
        while self._fake._pause(connection, interval) and self._write_chunk(keepalive):
            pass

    # -- requests -------------------------------------------------------------

    def do_GET(self) -> None:
        """Answer the model-list paths; 404 elsewhere."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Answer a chat request with the next queued reply."""
        self._serve("POST")

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        body = self._read_body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        ctx = wire.route(method, split.path, parsed)
        # Recorded and given its reply in one step: once wait_for_requests(n)
        # returns, request n holds its reply and cannot take the next one's.
        reply = self._fake._record(RecordedRequest(
            method=method, path=split.path, query=parse_qs(split.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body, json=parsed, provider=ctx.provider if ctx else None,
        ), self.server.connection, takes_reply=ctx is not None)
        if ctx is None:
            listing = wire.model_list(split.path) if method == "GET" else None
            status = 200 if listing is not None else 404
            payload = listing if listing is not None else {"error": {
                "message": f"FakeLLMServer: no route for {method} {split.path}",
                "type": "invalid_request_error", "code": "not_found"}}
            self._send_whole(status, "application/json", json.dumps(payload).encode(), {})
            return
        if isinstance(reply, _Replay):
            self._serve_replay(reply, ctx)
        else:
            self._serve_script(reply, ctx)

    def _serve_replay(self, reply: _Replay, ctx: wire.RequestContext) -> None:
        content_type = reply.content_type or wire.content_type_for(ctx.provider)
        size = reply.piece_size or len(reply.body) or 1
        pieces = [reply.body[i:i + size] for i in range(0, len(reply.body), size)]
        events = [wire.Event(piece, wire.CONTENT if i else wire.HEAD)
                  for i, piece in enumerate(pieces)]
        self._send_stream(reply.status, content_type, reply.headers, events, reply.piece_delay,
                          reply.cut_after_bytes)

    def _serve_script(self, reply: _Script, ctx: wire.RequestContext) -> None:
        fake, connection = self._fake, self.server.connection
        provider_wire = wire.WIRES[ctx.provider]
        if reply.no_response:
            self.close_connection = True
            fake._pause(connection, None)
            return
        if reply.head_delay > 0 and not fake._pause(connection, reply.head_delay):
            self.close_connection = True
            return
        headers = dict(reply.headers)
        if reply.error_status is not None:
            if reply.retry_after is not None:
                headers["Retry-After"] = str(reply.retry_after)
            content_type, body = _error_payload(
                reply.error_body, provider_wire.error_body(reply.error_status, ctx))
            self._send_whole(reply.error_status, content_type, body, headers)
            return
        if reply.not_event_stream:
            page = b"<html><head><title>Gateway</title></head><body>Welcome</body></html>"
            self._send_whole(200, "text/html; charset=utf-8", page, headers,
                             reply.cut_after_bytes)
            return
        if not ctx.stream:
            body = json.dumps(provider_wire.body(reply.spec, ctx)).encode()
            self._send_whole(200, "application/json", body, headers, reply.cut_after_bytes)
            return
        events = wire.stream_events(provider_wire, reply.spec, ctx, reply.faults)
        self._send_stream(200, provider_wire.content_type, headers, events, reply.delay,
                          reply.cut_after_bytes, provider_wire.stall_keepalive(),
                          reply.keepalive_interval)


def _error_payload(given: Union[bytes, str, Mapping[str, Any], None],
                   default: Mapping[str, Any]) -> tuple[str, bytes]:
    if given is None:
        return "application/json", json.dumps(default).encode()
    if isinstance(given, Mapping):
        return "application/json", json.dumps(given).encode()
    body = given.encode() if isinstance(given, str) else given
    stripped = body.lstrip()
    if stripped.startswith(b"<"):
        return "text/html; charset=utf-8", body
    if stripped.startswith((b"{", b"[")):
        return "application/json", body
    return "text/plain; charset=utf-8", body
