"""HTTP transport: the shared session, the reader thread, deadlines and cancellation.

One :class:`requests.Session` serves the whole process (connection reuse,
thread-safe use). A streaming call starts one daemon reader thread, named
``litestream-reader-<provider>``, which reads the socket, frames the bytes
into events (:mod:`litestream.framing`), lets the provider turn events into
chunks, and puts each read's chunks into the stream's bounded channel.

The user's :class:`Stream` handle is never referenced by the reader thread:
the thread holds only the channel state and a :class:`_Reader`. So an
abandoned stream is garbage-collected, and its finalizer cancels the reader.

Deadlines need no thread of their own: the shared timer of
:mod:`litestream.channels` shuts the socket down when one passes, which
wakes a read blocked in ``recv`` (closing the file object would not).
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import socket
import threading
import time
import weakref
from typing import Any, Iterable, Optional
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool

from litestream import errors
from litestream._body import BodyReader
from litestream.channels import ReceiveChannel, _Sender
from litestream.framing import DEFAULT_MAX_EVENT_SIZE, make_decoder
from litestream.options import CallOptions
from litestream.providers.base import Provider, StreamParser
from litestream.timer import TimerHandle, call_later
from litestream.types import Chunk
from litestream.wire import Event, HTTPRequest

__all__ = [
    "Stream",
    "close_idle_connections",
    "open_stream",
    "send",
    "session",
]

logger = logging.getLogger("litestream")

_MAX_ERROR_BODY = 1024 * 1024
_DRAIN_LIMIT = 65536
_DRAIN_TIMEOUT = 1.0

# ---------------------------------------------------------------------------
# The session, with connections that tell the reader which socket they use
# ---------------------------------------------------------------------------

_current = threading.local()


class _TrackedConnectionMixin:
    """Reports each request's connection to the guard of the thread sending it.

    The socket must be reachable while the request still waits for response
    headers, so that ``close()`` or a deadline can shut it down from another
    thread.
    """

    def request(self, *args: Any, **kwargs: Any) -> Any:
        guard = getattr(_current, "guard", None)
        if guard is not None:
            guard.attach(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        guard = getattr(_current, "guard", None)
        if guard is not None:
            # A deadline or close() may have come while the socket did not exist yet.
            guard.attach(self)


class _HTTPConnection(_TrackedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_TrackedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _HTTPConnectionPool,
            "https": _HTTPSConnectionPool,
        }
        # urllib3 2 closes a dropped pool's idle connections only when the pool
        # is garbage-collected, and a response object kept anywhere (in an
        # error's traceback, say) keeps it alive: close pools when they are
        # dropped, so close_idle_connections() really closes the sockets.
        self.poolmanager.pools.dispose_func = _close_pool


def _close_pool(pool: urllib3.connectionpool.HTTPConnectionPool) -> None:
    pool.close()


_session: Optional[requests.Session] = None
_session_lock = threading.Lock()


def session() -> requests.Session:
    """Return the process-wide session (created on first use)."""
    global _session
    with _session_lock:
        if _session is None:
            new_session = requests.Session()
            adapter = _Adapter(pool_connections=16, pool_maxsize=256, max_retries=0)
            new_session.mount("http://", adapter)
            new_session.mount("https://", adapter)
            _session = new_session
        return _session


def close_idle_connections() -> None:
    """Close the pooled keep-alive connections; the next request opens new ones.

    Streams in flight are not affected: their connections are not in the pool.
    """
    global _session
    with _session_lock:
        old, _session = _session, None
    if old is not None:
        old.close()


# ---------------------------------------------------------------------------
# Mapping lower-level exceptions into the error tree
# ---------------------------------------------------------------------------


def _map_request_exception(
    error: BaseException, provider: str, model: str
) -> errors.LitestreamError:
    """Translate a requests/urllib3/socket exception, most specific first."""
    fields = {"provider": provider, "model": model}
    if isinstance(error, errors.LitestreamError):
        return error
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return errors.ConnectTimeout("timed out connecting to the provider", **fields)
    if isinstance(error, requests.exceptions.ReadTimeout):
        return errors.FirstChunkTimeout("timed out waiting for the response", **fields)
    if isinstance(error, requests.exceptions.SSLError):
        return errors.StreamConnectionError(f"TLS error: {error}", retryable=False, **fields)
    if isinstance(error, requests.exceptions.ConnectionError):
        return errors.StreamConnectionError(_connection_failure(error), **fields)
    if isinstance(error, OSError):
        return errors.StreamConnectionError(f"connection failed: {error}", **fields)
    if isinstance(error, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError)):
        return errors.StreamConnectionError(f"the connection broke: {error}", **fields)
    if isinstance(error, requests.exceptions.RequestException):
        return errors.StreamConnectionError(str(error), **fields)
    return errors.LitestreamError(f"unexpected {type(error).__name__}: {error}", **fields)


def _connection_failure(error: requests.exceptions.ConnectionError) -> str:
    """Say which host could not be reached and why, without urllib3's retry wording."""
    reason: Any = error.args[0] if error.args else error
    reason = getattr(reason, "reason", reason)  # a MaxRetryError wraps the real cause
    text = str(reason)
    # urllib3 prefixes the connection object: "HTTPConnection(host=..., port=...): ..."
    text = re.sub(r"^<?[\w.]*HTTPS?Connection[^:]*:\s*", "", text)
    request = getattr(error, "request", None)
    host = urlsplit(request.url).netloc if request is not None and request.url else "the host"
    return f"could not connect to {host}: {text}"


def _error_from_response(
    response: requests.Response, provider: Provider, model: str
) -> errors.LitestreamError:
    body = response.raw.read(_MAX_ERROR_BODY, decode_content=True) or b""
    text = body.decode("utf-8", errors="replace")
    error = provider.parse_error(response.status_code, text, response.headers, model)
    error.provider = error.provider or provider.name
    error.model = error.model or model
    return error


def send(
    http_request: HTTPRequest, provider: Provider, model: str, options: CallOptions
) -> Any:
    """Send a non-streaming request and return the JSON body; raise typed errors.

    ``timeout`` bounds the whole call, body included: the shared timer shuts
    the socket down when it passes (a per-read timeout would let a slow drip
    of bytes run on). Without it, ``first_chunk_timeout`` bounds each wait.
    """
    timeouts = options.timeouts
    total = timeouts.total
    connect = timeouts.connect
    read_timeout = None if total is not None else timeouts.first_chunk
    guard = _SocketGuard()
    deadline = call_later(float(total), guard.stop) if total is not None else None
    fields = {"provider": provider.name, "model": model}
    _current.guard = guard
    try:
        response = session().request(
            http_request.method,
            http_request.url,
            headers=dict(http_request.headers),
            json=http_request.json,
            timeout=(connect, read_timeout),
            verify=options.verify,
            stream=True,
        )
        with response:
            if response.status_code >= 400:
                raise _error_from_response(response, provider, model)
            text = response.content.decode("utf-8", errors="replace")
    except errors.LitestreamError:
        raise
    except Exception as error:
        if guard.stopped:
            raise errors.TotalTimeout(f"no complete response within {total} s", **fields) from None
        if isinstance(error, requests.exceptions.ReadTimeout):
            raise errors.FirstChunkTimeout(f"no response within {read_timeout} s",
                                           **fields) from None
        raise _map_request_exception(error, provider.name, model) from None
    finally:
        _current.guard = None
        guard.release()
        if deadline is not None:
            deadline.cancel()
    try:
        body = json.loads(text)
    except ValueError:
        raise errors.ProtocolError(f"expected a JSON body, got {text[:200]!r}", **fields) from None
    if isinstance(body, dict) and "error" in body and len(body) <= 2:
        # Some servers answer 200 with an error object.
        raise provider.parse_error(500, text, response.headers, model)
    return body


class _SocketGuard:
    """The socket of one request, which another thread may shut down.

    ``close()`` and the deadlines run on other threads than the one blocked
    in ``recv``; shutting the socket down is what wakes it (closing the file
    object would not). Once the request's thread has let the connection go
    (back to the pool, where another request may use it), nothing may shut
    it down any more, hence the lock.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connection: Any = None
        self.stopped = False

    def attach(self, connection: Any) -> None:
        """Remember the connection carrying the request (called in the request's thread)."""
        with self.lock:
            self.connection = connection
            stopped = self.stopped
        if stopped:  # a stop came while the socket did not exist yet
            self.shutdown()

    def stop(self) -> None:
        """Shut the socket down now, and as soon as it exists if it does not yet."""
        with self.lock:
            self.stopped = True
        self.shutdown()

    def shutdown(self) -> None:
        """Shut the socket down if the request still holds it."""
        with self.lock:
            sock = getattr(self.connection, "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def release(self) -> None:
        """Let the connection go: from now on nothing shuts it down."""
        with self.lock:
            self.connection = None


# ---------------------------------------------------------------------------
# The reader
# ---------------------------------------------------------------------------


class _Reader:
    """The state of one streaming request, shared by the reader thread and the Stream handle."""

    def __init__(
        self,
        state: Any,
        http_request: HTTPRequest,
        provider: Provider,
        model: str,
        options: CallOptions,
    ) -> None:
        self.state = state
        self.http_request = http_request
        self.provider = provider
        self.model = model
        self.options = options
        self.lock = threading.Lock()
        self.guard = _SocketGuard()
        self.body: Optional[BodyReader] = None
        self.cancelled = False
        self.timers_stopped = False
        self.deadline_error: Optional[errors.LitestreamError] = None
        self.timers: list[TimerHandle] = []
        self.idle_timeout: Optional[float] = None
        self.last_content = 0.0
        self.got_content = False
        self.delivered = False
        self.retry_wait = threading.Event()
        self.thread = threading.Thread(
            target=self.run, name=f"litestream-reader-{provider.name}", daemon=True
        )

    # -- called from other threads ---------------------------------------

    def cancel(self) -> None:
        """Stop the request from any thread: shut the socket down, wake the reader."""
        with self.lock:
            if self.cancelled:
                return
            self.cancelled = True
        self.retry_wait.set()
        self._cancel_timers()
        self.state.close(discard=True)
        self.guard.stop()

    def _fire(self, error: errors.LitestreamError) -> None:
        with self.lock:
            if self.cancelled or self.deadline_error is not None:
                return
            self.deadline_error = error
        self.guard.stop()

    # -- deadlines ---------------------------------------------------------

    def _schedule(self, delay: float, callback: Any) -> None:
        with self.lock:
            if not self.timers_stopped:
                self.timers.append(call_later(delay, callback))

    def _start_deadlines(self) -> None:
        timeouts = self.options.timeouts
        total = timeouts.total
        if total is not None:
            self._schedule(float(total), lambda: self._fire(errors.TotalTimeout(
                f"the stream took longer than its timeout of {total} s",
                provider=self.provider.name, model=self.model)))
        if timeouts.first_chunk is not None:
            self._schedule(timeouts.first_chunk, self._first_chunk_deadline)
        self.idle_timeout = timeouts.idle

    def _first_chunk_deadline(self) -> None:
        if not self.got_content:
            first = self.options.timeouts.first_chunk
            self._fire(errors.FirstChunkTimeout(
                f"no content arrived within the first-chunk timeout of {first} s",
                provider=self.provider.name, model=self.model))

    def _idle_deadline(self) -> None:
        assert self.idle_timeout is not None
        # The timer is not moved on every chunk (that would cost a heap
        # operation per token); it checks when it fires and re-arms itself.
        remaining = self.last_content + self.idle_timeout - time.monotonic()
        if remaining > 0:
            self._schedule(remaining, self._idle_deadline)
            return
        self._fire(errors.IdleTimeout(
            f"no content arrived for the idle timeout of {self.idle_timeout} s",
            provider=self.provider.name, model=self.model))

    def _content_arrived(self) -> None:
        self.last_content = time.monotonic()
        if not self.got_content:
            self.got_content = True
            if self.idle_timeout is not None:
                self._schedule(self.idle_timeout, self._idle_deadline)

    def _cancel_timers(self) -> None:
        with self.lock:
            self.timers_stopped = True
            timers, self.timers = self.timers, []
        for timer in timers:
            timer.cancel()

    # -- the thread --------------------------------------------------------

    def run(self) -> None:
        response: Optional[requests.Response] = None
        reached_eof = False
        try:
            self._start_deadlines()
            response, reached_eof = self._attempts()
        except BaseException as error:  # delivered in order, never lost
            self._deliver_error(error)
        finally:
            self._cancel_timers()
            self.guard.release()
            with self.lock:
                reusable = reached_eof and not self.cancelled
            if response is not None:
                self._release(response, reusable)
            _current.guard = None
            # Last: a consumer that sees the end and sends its next request
            # at once finds this connection back in the pool.
            self.state.close()

    def _attempts(self) -> tuple[Optional[requests.Response], bool]:
        """Run attempts until one succeeds, content arrived, or the retry policy says stop.

        Returns the last response and whether its body reached EOF.
        """
        policy = self.options.retry
        attempts: list[str] = []
        for retry in itertools.count():
            response: Optional[requests.Response] = None
            try:
                response = self._open()
                return response, self._pump(response)
            except errors.LitestreamError as error:
                if response is not None:
                    self._release(response, False)
                attempts.append(errors.error_summary(error))
                delay = None
                if not self.delivered and self.deadline_error is None and not self.cancelled:
                    delay = policy.delay(retry, error)
                if delay is None:
                    if len(attempts) > 1:
                        error.attempts = tuple(attempts)
                    raise
                logger.info("retrying %s/%s in %.2f s after %s", self.provider.name,
                            self.model, delay, errors.error_summary(error))
                if policy.wait(delay, self.retry_wait):
                    return None, False
                self.guard.release()
                self.guard = _SocketGuard()
                if self.cancelled:  # close() may have stopped the old guard meanwhile
                    return None, False
        raise AssertionError("unreachable")

    def _put_many(self, chunks: list[Chunk]) -> bool:
        self.delivered = True
        return self.state.put_many(chunks)

    def _open(self) -> Optional[requests.Response]:
        http_request = self.http_request
        connect = self.options.timeouts.connect
        headers = dict(http_request.headers)
        headers.setdefault("Accept-Encoding", "identity")
        _current.guard = self.guard
        response = session().request(
            http_request.method,
            http_request.url,
            headers=headers,
            json=http_request.json,
            stream=True,
            # No per-read timeout: the shared timer's deadlines shut the socket down.
            timeout=(connect, None),
            verify=self.options.verify,
        )
        if response.status_code >= 400:
            try:
                raise _error_from_response(response, self.provider, self.model)
            finally:
                response.close()
        content_type = response.headers.get("content-type", "").lower()
        expected = "json" if self.http_request.framing == "ndjson" else "event-stream"
        if content_type and expected not in content_type:
            excerpt = (response.raw.read(200) or b"").decode("utf-8", errors="replace")
            response.close()
            raise errors.ProtocolError(
                f"expected a {self.http_request.framing.upper()} stream but got "
                f"{content_type!r}: {excerpt!r}",
                provider=self.provider.name, model=self.model,
                status_code=response.status_code)
        return response

    def _pump(self, response: requests.Response) -> bool:
        """Read and deliver until the provider's final event; True if the body reached EOF."""
        max_event_size = self.options.max_event_size or DEFAULT_MAX_EVENT_SIZE
        decoder = make_decoder(self.http_request.framing, max_event_size)
        parser: StreamParser = self.provider.stream_parser(self.model)
        body = BodyReader(response)
        self.body = body
        while True:
            data = body.read()
            if self.cancelled:
                return False
            if not data:
                if self.deadline_error is not None:
                    raise self.deadline_error
                chunks = self._parse(parser, decoder.close())
                chunks.extend(parser.finish())
                if chunks:
                    self._put_many(chunks)
                return True
            chunks = self._parse(parser, decoder.iter_feed(data))
            if chunks:
                # Only content moves the deadlines: a provider that sends its
                # role chunk or message_start at once and then stalls has not
                # produced a first chunk.
                if any(chunk.has_content for chunk in chunks):
                    self._content_arrived()
                if not self._put_many(chunks):
                    return False
            if parser.done:
                if body.complete:
                    return True  # the body's end came with the final event
                # The end is delivered only after the drain (bounded by
                # _DRAIN_TIMEOUT): delivered first, a consumer dropping the
                # stream at once would cancel the drain and lose the connection,
                # and one sending its next request at once would race the release.
                return self._drain()

    def _parse(self, parser: StreamParser, events: Iterable[Event]) -> list[Chunk]:
        """Return the chunks of ``events``; on bad data, deliver the chunks before it, then raise.

        ``events`` may itself raise (a decoder meeting bad bytes) after
        yielding the events that came before them in the same read.
        """
        chunks: list[Chunk] = []
        try:
            for event in events:
                if parser.done:
                    break  # events after the final one are ignored
                chunks.extend(parser.feed(event))
        except errors.LitestreamError:
            if chunks:
                self._put_many(chunks)
            raise
        except Exception as error:
            if chunks:
                self._put_many(chunks)
            raise errors.ProtocolError(
                f"could not parse a {self.provider.name} event: "
                f"{type(error).__name__}: {error}",
                provider=self.provider.name, model=self.model) from None
        return chunks

    def _drain(self) -> bool:
        """After the final event, read what is left so the connection can be reused."""
        guard = call_later(_DRAIN_TIMEOUT, self.guard.shutdown)
        try:
            received = 0
            while received <= _DRAIN_LIMIT:
                data = self.body.read()
                if not data:
                    return self.body.complete and not self.cancelled and guard.active
                received += len(data)
            return False
        except Exception:
            return False
        finally:
            guard.cancel()

    def _deliver_error(self, error: BaseException) -> None:
        if self.cancelled:
            return
        if self.deadline_error is not None:
            # The deadline shut the socket down; whatever the read then
            # raised is a symptom of that.
            error = self.deadline_error
        elif not isinstance(error, errors.LitestreamError):
            if not isinstance(error, Exception):
                logger.debug("reader stopped by %s", type(error).__name__)
            error = _map_request_exception(error, self.provider.name, self.model)
        if error.provider is None:
            error.provider = self.provider.name
        if error.model is None:
            error.model = self.model
        logger.debug("stream failed: %s", errors.error_summary(error))
        # The error crosses to the consumer's thread: drop this thread's
        # frames (they hold the response and its socket) and the chain.
        error.__traceback__ = None
        error.__context__ = None
        self.state.close(error)

    def _release(self, response: requests.Response, reusable: bool) -> None:
        try:
            if reusable:
                response.raw.release_conn()
            else:
                response.raw.close()
                response.close()
        except Exception:  # the socket may already be gone; nothing to give back
            logger.debug("closing a response failed", exc_info=True)


# ---------------------------------------------------------------------------
# The user's handle
# ---------------------------------------------------------------------------


class Stream(ReceiveChannel[Chunk]):
    """A channel of :class:`~litestream.Chunk` filled by a background reader thread.

    Iterate it, ``get`` from it, or select over it with :func:`~litestream.alts`.
    Chunks arrive in order; if the request fails, every chunk that arrived
    first is delivered, then the typed error is raised (once), then the
    stream reads as closed.

    ``close()`` cancels the request from any thread: the socket is shut
    down and the reader thread ends promptly, also when it was blocked on a
    full buffer or a socket read. A stream nobody references any more is
    closed the same way when it is garbage-collected, and at interpreter exit.

    Attributes:
        provider: the provider name.
        model: the model name.
    """

    __slots__ = ("provider", "model", "_reader", "_finalizer")

    def __init__(
        self,
        http_request: HTTPRequest,
        provider: Provider,
        model: str,
        options: CallOptions,
    ) -> None:
        super().__init__(options.buffer)
        self.provider = provider.name
        self.model = model
        self._reader = _Reader(_Sender(self._state), http_request, provider, model, options)
        self._finalizer = weakref.finalize(self, self._reader.cancel)

    def _start(self) -> None:
        self._reader.thread.start()

    def close(self) -> None:
        """Cancel the request and close the stream; idempotent, callable from any thread."""
        self._reader.cancel()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait up to ``timeout`` seconds (None: no limit) for the reader thread to end.

        Returns:
            True once the thread has ended, or when it never started; False
            when ``timeout`` passed first.
        """
        thread = self._reader.thread
        if thread.ident is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __repr__(self) -> str:
        state = self._state
        status = "closed" if state.closed else "open"
        return (f"<Stream {self.provider}/{self.model} {status} "
                f"buffered={len(state.buffer)} maxsize={state.maxsize}>")


def open_stream(
    http_request: HTTPRequest, provider: Provider, model: str, options: CallOptions
) -> Stream:
    """Start a streaming request in a reader thread and return its :class:`Stream` at once.

    Connection failures, HTTP errors and deadlines are not raised here: they
    reach the caller through the stream, after any chunks that came first.
    """
    stream = Stream(http_request, provider, model, options)
    stream._start()
    return stream
