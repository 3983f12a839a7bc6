"""FakeLLMServer: the handle tests hold (lifecycle, addresses, scripting, observation).

The connection threads work on a :class:`~litestream.testing.state.ServerState`
the server owns; each connection is served by a
:class:`~litestream.testing.handler.Handler`.
"""

from __future__ import annotations

import itertools
import os
import select
import socket
import threading
from pathlib import Path
from typing import Any, ClassVar, Mapping, Optional, Sequence, Union

from litestream.testing import encoders
from litestream.testing.encoders import responses
from litestream.testing.handler import Context, Handler
from litestream.testing.replies import DEFAULT_TEXT, Replay, Script, tool_spec
from litestream.testing.state import Connection, RecordedRequest, ServerState, shutdown

__all__ = ["PROVIDERS", "FakeLLMServer"]

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

#: The provider names :meth:`FakeLLMServer.api_base` knows, in the order they are listed.
PROVIDERS: tuple[str, ...] = tuple(_API_BASE_SUFFIX)


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
        self._state = ServerState()
        self._condition = self._state.condition
        self._listener: Optional[socket.socket] = None
        self._accept_thread: Optional[threading.Thread] = None
        self._wake_write = -1
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
        self._state.stopping.clear()
        self._state.wake_read, self._wake_write = os.pipe()
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
            self._state.stopping.set()
            self._condition.notify_all()
        os.write(self._wake_write, b"x")
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        self._listener.close()
        with self._condition:
            connections = list(self._state.connections)
        for connection in connections:
            shutdown(connection.sock)
        for connection in connections:
            if connection.thread is not None:
                connection.thread.join(timeout)
        os.close(self._state.wake_read)
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

    def environment(self, api_key: str = "test") -> dict[str, str]:
        """Return the environment variables that point every provider at this server.

        ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``, the same for Anthropic,
        Gemini, Mistral and OpenRouter, and ``OLLAMA_HOST``: with them in
        ``os.environ``, code written for the real providers talks to this
        server unchanged.

        Example::

            os.environ.update(server.environment())
        """
        variables = {"OLLAMA_HOST": self.api_base("ollama")}
        for provider in ("openai", "anthropic", "gemini", "mistral", "openrouter"):
            prefix = provider.upper()
            variables[f"{prefix}_API_KEY"] = api_key
            variables[f"{prefix}_BASE_URL"] = self.api_base(provider)
        return variables

    # -- scripting ------------------------------------------------------------

    def script_responses(self, **options: Any) -> None:
        """Queue one streamed Responses API answer (``POST /v1/responses``).

        For what :meth:`script` cannot say in that dialect. Options are the
        fields of :class:`litestream.testing.encoders.responses.ResponsesScript`:
        ``text_pieces``, ``reasoning_pieces`` (a summary, with
        ``encrypted_content``), ``refusal_pieces``, ``tool_calls`` (dicts as
        for :meth:`script`), ``status`` (``completed``, ``incomplete`` with
        ``incomplete_reason``, ``failed`` with ``error_code`` and
        ``error_message``), ``error_after`` (an ``error`` event after that
        many content events), ``prompt_tokens``, ``completion_tokens``,
        ``reasoning_tokens``, ``model``.
        """
        calls = tuple(tool_spec(call) for call in options.pop("tool_calls", ()))
        script = responses.ResponsesScript(tool_calls=calls, **options)
        self.replay(responses.stream_body(script))

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
        self._state.enqueue(Replay(body, status, content_type, dict(headers or {}), piece_size,
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
            pieces = encoders.split_evenly(text, chunks)
        elif chunks is None:
            pieces = encoders.split_words(text)
        else:
            pieces = [str(piece) for piece in chunks]
        calls = tuple(tool_spec(call) for call in tool_calls or ())
        reasoning_pieces = tuple(encoders.split_words(reasoning)) if reasoning else ()
        count = len(pieces) + len(reasoning_pieces) + len(calls)
        usage = dict(usage or {})
        spec = encoders.ReplySpec(
            chunks=tuple(pieces),
            tool_calls=calls,
            reasoning_chunks=reasoning_pieces,
            prompt_tokens=int(usage.get("prompt_tokens", 10)),
            completion_tokens=int(usage.get("completion_tokens", count)),
            finish_reason=finish_reason or ("tool_calls" if calls else "stop"),
        )
        faults = encoders.StreamFaults(stall_after, inband_error_after, malformed_after, keepalives,
                                   omit_done, events_after_done)
        self._state.enqueue(Script(spec, faults, delay, keepalive_interval, cut_after_bytes,
                              error_status, error_body, retry_after, head_delay, no_response,
                              not_event_stream, dict(headers or {})))

    @property
    def pending(self) -> int:
        """How many queued replies no request has taken yet."""
        with self._condition:
            return len(self._state.replies)

    # -- observation ----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, oldest first."""
        with self._condition:
            return list(self._state.requests)

    @property
    def last_request(self) -> Optional[RecordedRequest]:
        """The latest request received, or ``None``."""
        with self._condition:
            return self._state.requests[-1] if self._state.requests else None

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """Wait until at least ``count`` requests have arrived; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: len(self._state.requests) >= count, timeout)

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected exceptions raised while serving (a bug in the server if not empty)."""
        with self._condition:
            return list(self._state.errors)

    @property
    def disconnects(self) -> int:
        """How many connections the client closed (seen as EOF or a failed write)."""
        with self._condition:
            return self._state.disconnects

    @property
    def open_connections(self) -> int:
        """How many connections are open on the server side right now."""
        with self._condition:
            return len(self._state.connections)

    def wait_for_disconnect(self, timeout: float) -> bool:
        """Wait until the client has closed the connection that carried the latest request.

        The server notices at once while it writes, stalls, delays or waits
        for the next request on that connection.

        Returns:
            True once the client closed it; False when ``timeout`` passes first,
            when no request came, or when the server stopped.
        """
        def closed() -> bool:
            latest = self._state.latest
            return self._state.stopping.is_set() or (latest is not None and latest.client_closed)

        with self._condition:
            self._condition.wait_for(closed, timeout)
            return self._state.latest is not None and self._state.latest.client_closed

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no connection is open on the server side; False on timeout."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._state.connections, timeout)

    # -- connections ----------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while True:
            readable, _, _ = select.select([listener, self._state.wake_read], [], [])
            if self._state.wake_read in readable or self._state.stopping.is_set():
                return
            try:
                sock, _ = listener.accept()
            except OSError:
                continue
            connection = Connection(sock)
            connection.thread = threading.Thread(
                target=self._serve_connection, args=(connection,),
                name=f"fakellm-conn-{self._port}-{next(self._numbers)}", daemon=True)
            with self._condition:
                if self._state.stopping.is_set():
                    sock.close()
                    return
                self._state.connections.add(connection)
            connection.thread.start()

    def _serve_connection(self, connection: Connection) -> None:
        try:
            Handler(connection.sock, connection.sock.getpeername(),
                    Context(self._state, connection))
        except OSError:
            self._state.note_client_closed(connection)
        except Exception as error:  # kept for `errors`, never lost silently
            self._state.note_error(error)
        finally:
            shutdown(connection.sock)
            connection.sock.close()
            with self._condition:
                self._state.connections.discard(connection)
                self._condition.notify_all()
