"""HTTP transport: streaming and whole-body requests, with their deadlines and cancellation.

This module holds the public entry points; each job is a module of its own:

- :mod:`litestream._session`: the process-wide :class:`requests.Session`
  and the socket guard that lets another thread stop a request;
- :mod:`litestream._deadlines`: the total, first-chunk and idle deadlines,
  timers of the shared timer thread (:mod:`litestream.timer`) that shut
  the socket down when they pass (that wakes a read blocked in ``recv``);
- :mod:`litestream._reader`: the reader thread of one stream;
- :mod:`litestream._body`: reading a body in batches, with bounded inflation;
- :mod:`litestream._exceptions`: the one table from requests, urllib3,
  socket and ssl exceptions (and HTTP error answers) to
  :mod:`litestream.errors`.

A streaming call is read by one daemon reader thread, named
``litestream-reader-<provider>``, which fills the stream's bounded channel:
a new thread, or, when streams start back to back, one that has just
finished a stream (:mod:`litestream._workers`).
The user's :class:`Stream` handle is never referenced by that thread, so an
abandoned stream is garbage-collected and its finalizer cancels the reader.

Size budgets (see docs/reliability.md): one streamed event
``max_event_size`` (4 MiB by default); a stream holds ``buffer`` chunks plus
the chunks of one read (at most 64 KiB of body) in hand-off; a compressed body inflates at most
64 KiB per read; a whole body :data:`MAX_RESPONSE_BODY`; an error body
:data:`MAX_ERROR_BODY` (the rest is not read).
"""

from __future__ import annotations

import json
import weakref
from typing import Any, Optional

from litestream import _session, errors
from litestream._body import BodyReader, read_capped
from litestream._deadlines import WHOLE_BODY_WORDING, Deadlines
from litestream._exceptions import MAX_ERROR_BODY, error_from_response, map_exception
from litestream._reader import Reader
from litestream._session import SocketGuard, close_idle_connections, current, session
from litestream.channels import ReceiveChannel, _Sender
from litestream.listeners import CallMonitor
from litestream.options import DEFAULT_RESPONSE_TIMEOUT, CallOptions
from litestream.types import Chunk
from litestream.wire import Dialect, HTTPRequest

__all__ = [
    "MAX_ERROR_BODY",
    "MAX_RESPONSE_BODY",
    "Stream",
    "close_idle_connections",
    "open_stream",
    "send",
    "session",
]

#: The largest whole (non-streaming) body read, in bytes after decompression.
MAX_RESPONSE_BODY = 32 * 1024 * 1024


def send(http_request: HTTPRequest, provider: Dialect, model: str, options: CallOptions) -> Any:
    """Send a non-streaming request and return the JSON body; raise typed errors.

    The call's own credentials are hidden from its errors (:func:`errors.scrub`).

    ``timeout`` bounds the whole call, body included (a per-read timeout
    would let a slow drip of bytes run on); without it the call is bounded
    by :data:`~litestream.options.DEFAULT_RESPONSE_TIMEOUT`. The first byte
    of the body must come within ``first_chunk_timeout``, and each next one
    within ``idle_timeout``. Redirects are not followed. A body larger than
    :data:`MAX_RESPONSE_BODY` is a ProtocolError.
    """
    try:
        return _send(http_request, provider, model, options)
    except errors.LitestreamError as error:
        raise errors.scrub(error, options.secrets) from None


def _send(http_request: HTTPRequest, provider: Dialect, model: str, options: CallOptions) -> Any:
    fields = {"provider": provider.name, "model": model}
    timeouts = options.timeouts
    guard = SocketGuard()
    total = timeouts.total if timeouts.total is not None else DEFAULT_RESPONSE_TIMEOUT
    deadlines = Deadlines(timeouts, lambda error: guard.stop(), provider.name, model,
                          WHOLE_BODY_WORDING, total=total)
    headers = dict(http_request.headers)
    headers.setdefault("Accept-Encoding", "identity")
    current.guard = guard
    deadlines.start()
    try:
        response = _session.send(http_request.method, http_request.url, headers,
                                 http_request.json, timeouts.connect, options.verify)
        body = BodyReader(response)
        try:
            error = error_from_response(response, provider, model)
            if error is not None:
                raise error
            data = read_capped(body, MAX_RESPONSE_BODY, on_bytes=deadlines.content_arrived)
            if deadlines.error is not None:
                raise deadlines.error  # the socket was shut down: not the body's end
        finally:
            guard.release()  # from here on, nothing may shut the connection down
            _session.release(response, body.complete and deadlines.error is None)
    except Exception as error:
        raise map_exception(error, provider.name, model, deadlines.error) from None
    finally:
        current.guard = None
        guard.release()
        deadlines.stop()
    text = data.decode("utf-8", errors="replace")
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        raise errors.ProtocolError(f"expected a JSON body, got {text[:200]!r}", **fields) from None
    if isinstance(body, dict) and "error" in body and len(body) <= 2:
        # Some servers answer 200 with an error object.
        raise provider.error_for_answer(500, text, response.headers, model)
    return body


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

    def __init__(self, http_request: HTTPRequest, provider: Dialect, model: str,
                 options: CallOptions, monitor: Optional[CallMonitor] = None) -> None:
        super().__init__(options.buffer)
        self.provider = provider.name
        self.model = model
        self._reader = Reader(_Sender(self._state), http_request, provider, model, options,
                              monitor)
        self._finalizer = self._reader.finalizer = weakref.finalize(self, self._reader.cancel)

    def _start(self) -> None:
        self._reader.start()

    def close(self) -> None:
        """Cancel the request and close the stream; idempotent, callable from any thread."""
        self._reader.cancel()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait up to ``timeout`` seconds (None: no limit) for the reader thread to finish.

        The thread has then released the connection and closed the channel
        (it may go on to read another stream, see :mod:`litestream._workers`).

        Returns:
            True once the reader has finished, or when it never started;
            False when ``timeout`` passed first.
        """
        finished = self._reader.finished
        return finished is None or finished.wait(timeout)

    def __repr__(self) -> str:
        state = self._state
        status = "closed" if state.closed else "open"
        return (f"<Stream {self.provider}/{self.model} {status} "
                f"buffered={len(state.buffer)} maxsize={state.maxsize}>")


def open_stream(http_request: HTTPRequest, provider: Dialect, model: str,
                options: CallOptions, monitor: Optional[CallMonitor] = None) -> Stream:
    """Start a streaming request in a reader thread and return its :class:`Stream` at once.

    Connection failures, HTTP errors and deadlines are not raised here: they
    reach the caller through the stream, after any chunks that came first.
    ``monitor`` (see :mod:`litestream.listeners`) fires ``on_request`` here,
    on the caller's thread, and ``on_end`` from the reader thread as it ends.
    """
    stream = Stream(http_request, provider, model, options, monitor)
    if monitor is not None:
        monitor.request()
    stream._start()
    return stream
