"""Re-emitting a stream as OpenAI-compatible server-sent events, for web responses.

``data: {chunk}`` per chunk, ``data: [DONE]`` at the end, an ``event: error``
for a failure (with the same fields as OpenAI's error bodies), and heartbeat
comments while the upstream is quiet.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional

from litestream._waiting import IDLE, drop_traceback, get_or_idle
from litestream.channels import ReceiveChannel
from litestream.errors import error_details
from litestream.types import Chunk

__all__ = ["SSEEvents", "error_body", "sse_chunk", "to_sse_stream"]

_DONE = b"data: [DONE]\n\n"
_KEEP_ALIVE = b": keep-alive\n\n"
_ERROR_FIELDS = (
    "category", "provider", "model", "status_code", "retryable", "retry_after", "request_id",
)


def error_body(error: BaseException) -> dict[str, Any]:
    """Return an OpenAI-style error object, ``{"error": {"message", "type", "code", ...}}``.

    Built from :func:`~litestream.errors.error_details`, so the message is
    redacted; the text delivered before the failure is left out.
    """
    details = error_details(error)
    body: dict[str, Any] = {
        "message": details["message"],
        "type": details["type"],
        "code": details.get("provider_code"),
    }
    for field in _ERROR_FIELDS:
        if details.get(field) is not None:
            body[field] = details[field]
    return {"error": body}


def sse_chunk(chunk: Chunk) -> bytes:
    """Return one ``data: {...}`` event holding the chunk's OpenAI JSON (compact)."""
    data = json.dumps(chunk.to_dict(), separators=(",", ":"), ensure_ascii=False)
    return b"data: " + data.encode("utf-8") + b"\n\n"


def _sse_error(error: BaseException) -> bytes:
    data = json.dumps(error_body(error), separators=(",", ":"), ensure_ascii=False)
    return b"event: error\ndata: " + data.encode("utf-8") + b"\n\n"


class SSEEvents(Iterator[bytes]):
    """The iterator :func:`to_sse_stream` returns; ``close()`` closes the stream too.

    A web server calls ``close()`` on a response iterable when the client
    goes away or the response ends; the upstream stream is then closed at
    once, also when no event was produced yet.
    """

    __slots__ = ("_events", "_stream")

    def __init__(self, stream: ReceiveChannel[Chunk], events: Iterator[bytes]) -> None:
        self._stream = stream
        self._events = events

    def __iter__(self) -> SSEEvents:
        return self

    def __next__(self) -> bytes:
        return next(self._events)

    def close(self) -> None:
        """Stop the events and close the stream; idempotent."""
        try:
            self._events.close()  # type: ignore[attr-defined]
        finally:
            self._stream.close()


def to_sse_stream(
    stream: ReceiveChannel[Chunk],
    heartbeat: Optional[float] = 15.0,
    *,
    first: Optional[Chunk] = None,
) -> SSEEvents:
    """Re-emit a stream as OpenAI-compatible server-sent events, for a web response.

    Yields one ``data: {chunk JSON}`` event per chunk, then ``data: [DONE]``.
    A stream error becomes one ``event: error`` whose data is
    :func:`error_body` (redacted), and ends the events. While the upstream
    sends nothing for ``heartbeat`` seconds, a ``: keep-alive`` comment is
    yielded so proxies and browsers keep the connection open.

    Closing the iterator (a WSGI server does so when the client goes away)
    closes ``stream`` at once, and with it the upstream request.

    Args:
        stream: a :class:`~litestream.Stream`, or any channel of chunks.
        heartbeat: seconds of upstream silence between keep-alive comments;
            ``None`` sends none.
        first: a chunk already taken from ``stream`` (say, to make sure the
            upstream answered before sending a 200), emitted first.

    Returns:
        An iterator of encoded SSE events, each ending with a blank line.

    Example:
        >>> return flask.Response(to_sse_stream(stream),  # doctest: +SKIP
        ...                       content_type="text/event-stream")
    """
    return SSEEvents(stream, _sse_events(stream, heartbeat, first))


def _sse_events(
    stream: ReceiveChannel[Chunk], heartbeat: Optional[float], first: Optional[Chunk]
) -> Iterator[bytes]:
    try:
        if first is not None:
            yield sse_chunk(first)
        while True:
            try:
                chunk = get_or_idle(stream, heartbeat)
            except Exception as error:
                yield _sse_error(drop_traceback(error))
                return
            if chunk is IDLE:
                yield _KEEP_ALIVE
            elif chunk is None:
                yield _DONE
                return
            else:
                yield sse_chunk(chunk)
    finally:
        stream.close()
