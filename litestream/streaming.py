"""Streaming helpers: read a stream's text, collect it, consume it with callbacks, re-emit it.

Everything here works on any :class:`~litestream.Channel` of
:class:`~litestream.Chunk` (a :class:`~litestream.Stream` or a channel you
fill yourself), blocks only on channel waits, and closes the stream it was
given when it stops early, so the reader thread and its socket never outlive
the helper.

* :func:`collect_stream` -- the whole :class:`~litestream.Response`.
* :func:`consume_stream_with_callbacks` -- callbacks on a worker thread, and a
  :class:`~concurrent.futures.Future` of the response.
* :func:`accumulate_stream` -- a channel of the growing text.
* :func:`to_sse_stream` -- OpenAI-compatible server-sent events for a web response.

:class:`ResponseBuilder` is the one piece of code that assembles chunks into a
response; every helper that needs a response uses it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import weakref
from typing import Any, Callable, Optional

from litestream._builder import ResponseBuilder
from litestream._sse import SSEEvents, error_body, sse_chunk, to_sse_stream
from litestream._waiting import IDLE, drop_traceback, get_or_idle
from litestream.channels import Channel, ReceiveChannel, _Sender
from litestream.errors import TotalTimeout
from litestream.types import Chunk, Response, extract_content

__all__ = [
    "ResponseBuilder",
    "SSEEvents",
    "StreamFuture",
    "accumulate_stream",
    "collect_stream",
    "consume_stream_with_callbacks",
    "drop_traceback",
    "error_body",
    "extract_content",
    "extract_finish_reason",
    "sse_chunk",
    "to_sse_stream",
]

logger = logging.getLogger("litestream")

def extract_finish_reason(chunk: Optional[Chunk]) -> Optional[str]:
    """Return the chunk's finish reason (``stop``, ``length``, ``tool_calls``...), or ``None``.

    Only the last chunk of a choice usually carries one; a usage-only chunk
    with no choices gives ``None``.
    """
    return None if chunk is None else chunk.finish_reason


# ---------------------------------------------------------------------------
# collect_stream
# ---------------------------------------------------------------------------


def collect_stream(stream: Channel[Chunk], timeout: Optional[float] = None) -> Response:
    """Read the whole stream and return it as one :class:`~litestream.Response`.

    Content is joined, tool-call fragments are assembled into whole calls,
    reasoning is kept apart, and the last finish reason and usage are kept
    (see :class:`ResponseBuilder`). The stream is closed when this returns
    or raises.

    Args:
        stream: a :class:`~litestream.Stream`, or any channel of chunks.
        timeout: seconds the whole collection may take; ``None`` waits as
            long as the stream's own deadlines allow.

    Returns:
        The assembled response.

    Raises:
        TotalTimeout: ``timeout`` passed first; its ``partial_content``
            holds the text collected so far.
        LitestreamError: the stream failed; ``partial_content`` holds the
            text delivered before the failure.
    """
    builder = ResponseBuilder.for_stream(stream)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                chunk = IDLE
            else:
                chunk = get_or_idle(stream, remaining)
            if chunk is IDLE:
                raise TotalTimeout(
                    f"collect_stream took longer than its timeout of {timeout} s",
                    provider=builder.provider or getattr(stream, "provider", None),
                    model=builder.model or getattr(stream, "model", None),
                    partial_content=builder.content,
                )
            if chunk is None:
                return builder.build()
            builder.add(chunk)
    except BaseException as error:
        builder.note_partial(error)
        raise
    finally:
        stream.close()


# ---------------------------------------------------------------------------
# consume_stream_with_callbacks
# ---------------------------------------------------------------------------


class StreamFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """A :class:`~concurrent.futures.Future` of a stream's response; cancelling closes the stream.

    Unlike a plain future it can be cancelled while the stream is being read:
    :meth:`cancel` closes the stream (the reader thread and socket end at
    once) and the callbacks' ``on_error`` receives a
    :class:`concurrent.futures.CancelledError`.
    """

    def __init__(self, stream: Channel[Chunk]) -> None:
        super().__init__()
        self._stream = stream

    def cancel(self) -> bool:
        """Cancel unless already done; close the stream. True if the future is cancelled."""
        cancelled = super().cancel()
        if cancelled:
            self._stream.close()
        return cancelled


def consume_stream_with_callbacks(
    stream: Channel[Chunk],
    on_chunk: Callable[[Chunk], Any],
    on_complete: Optional[Callable[[Response], Any]] = None,
    on_error: Optional[Callable[[BaseException], Any]] = None,
) -> StreamFuture:
    """Read ``stream`` on a worker thread, calling back for each chunk, then once at the end.

    All callbacks run in order on one thread, named ``litestream-callbacks``.
    ``on_chunk`` gets every chunk (metadata chunks too). Then exactly one of
    ``on_complete`` (with the assembled response) or ``on_error`` (with the
    error) runs, and the returned future resolves after it.

    An exception raised by ``on_chunk`` closes the stream and becomes the
    error: ``on_error`` gets it and the future raises it. Cancelling the
    future closes the stream; ``on_error`` then gets a
    :class:`concurrent.futures.CancelledError`. An exception raised by
    ``on_complete`` becomes the future's exception (``on_error`` is not
    called for it); one raised by ``on_error`` is logged.

    Args:
        stream: a :class:`~litestream.Stream`, or any channel of chunks.
        on_chunk: called with each chunk.
        on_complete: called with the :class:`~litestream.Response` when the
            stream ends normally.
        on_error: called with the exception when the stream or a callback fails.

    Returns:
        A future of the complete response.
    """
    future = StreamFuture(stream)
    worker = threading.Thread(
        target=_consume,
        args=(stream, future, on_chunk, on_complete, on_error),
        name="litestream-callbacks",
        daemon=True,
    )
    worker.start()
    return future


def _consume(
    stream: Channel[Chunk],
    future: StreamFuture,
    on_chunk: Callable[[Chunk], Any],
    on_complete: Optional[Callable[[Response], Any]],
    on_error: Optional[Callable[[BaseException], Any]],
) -> None:
    builder = ResponseBuilder.for_stream(stream)
    try:
        for chunk in stream:
            builder.add(chunk)
            on_chunk(chunk)
        if future.cancelled():
            raise concurrent.futures.CancelledError()
        response = builder.build()
    except BaseException as error:
        stream.close()
        builder.note_partial(error)
        if future.cancelled() and not isinstance(error, concurrent.futures.CancelledError):
            error = concurrent.futures.CancelledError()
        if on_error is not None:
            try:
                on_error(error)
            except BaseException:
                logger.exception("on_error callback failed")
        _settle(future, error=error)
        return
    if on_complete is not None:
        try:
            on_complete(response)
        except BaseException as error:
            logger.debug("on_complete callback failed", exc_info=True)
            _settle(future, error=error)
            return
    _settle(future, response=response)


def _settle(
    future: StreamFuture, response: Optional[Response] = None, error: Optional[BaseException] = None
) -> None:
    # A cancel may land between our check and this call; the future then stays cancelled.
    try:
        if error is None:
            future.set_result(response)
        elif not isinstance(error, concurrent.futures.CancelledError):
            future.set_exception(error)
    except concurrent.futures.InvalidStateError:
        pass


# ---------------------------------------------------------------------------
# accumulate_stream
# ---------------------------------------------------------------------------


class _AccumulatedText(ReceiveChannel[str]):
    """The channel :func:`accumulate_stream` returns; closing it closes the source stream."""

    __slots__ = ("_source", "_finalizer")

    def __init__(self, source: Channel[Chunk], maxsize: int) -> None:
        super().__init__(maxsize)
        self._source = source
        # The worker holds only the state, so an abandoned handle is collected
        # and its finalizer stops the worker and the source.
        self._finalizer = weakref.finalize(self, _close_both, self._state, source)

    def close(self) -> None:
        """Close this channel and the source stream; idempotent."""
        _close_both(self._state, self._source)


def _close_both(state: Any, source: Channel[Chunk]) -> None:
    state.close()
    source.close()


def accumulate_stream(stream: Channel[Chunk], buffer: int = 16) -> ReceiveChannel[str]:
    """Return a channel of the growing text: one value per content chunk, each the text so far.

    A helper thread named ``litestream-accumulate`` reads ``stream``. The
    returned channel closes when the stream ends; a stream error is raised
    by its ``get`` after every earlier value. Closing the returned channel
    closes ``stream``.

    Args:
        stream: a :class:`~litestream.Stream`, or any channel of chunks.
        buffer: how many values may wait unread (backpressure on the stream).

    Example:
        >>> for text in accumulate_stream(stream):  # doctest: +SKIP
        ...     print(text)
        Hel
        Hello!
    """
    accumulated = _AccumulatedText(stream, buffer)
    worker = threading.Thread(
        target=_accumulate,
        args=(stream, _Sender(accumulated._state)),
        name="litestream-accumulate",
        daemon=True,
    )
    worker.start()
    return accumulated


def _accumulate(stream: Channel[Chunk], state: Any) -> None:
    text = ""
    try:
        for chunk in stream:
            piece = extract_content(chunk)
            if piece is None:
                continue
            # Each value is a new string holding all the text so far; the copy
            # is what the caller asked for, not something a join could save.
            text = text + piece
            if not state.put(text, None):
                stream.close()
                return
    except BaseException as error:
        state.close(error)
        stream.close()
        return
    state.close()
