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
import json
import logging
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Mapping, Optional

from litestream.channels import Channel, ReceiveChannel, _Sender
from litestream.cost import cost_of
from litestream.errors import LitestreamError, TotalTimeout, error_details
from litestream.types import (
    Chunk,
    Message,
    Response,
    ResponseChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
    extract_content,
)

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

_IDLE: Any = object()


def _get_or_idle(channel: Channel[Chunk], timeout: Optional[float]) -> Any:
    """``channel.get(timeout)``, returning ``_IDLE`` when the wait runs out.

    A stream's own deadline errors (``IdleTimeout``...) are also builtin
    ``TimeoutError``s; they are raised, not mistaken for a wait that ran out.
    """
    try:
        return channel.get(timeout)
    except TimeoutError as error:
        if isinstance(error, LitestreamError):
            raise
        return _IDLE


def drop_traceback(error: BaseException) -> BaseException:
    """Forget ``error``'s traceback once it has been handled; return it.

    A stream error's traceback holds the reader thread's frames (and with
    them its HTTP response) and the frame that raised it from the channel,
    which refers back to the error: a reference cycle that keeps the
    upstream socket open until the garbage collector runs. An error that is
    reported rather than re-raised needs no traceback.
    """
    error.__traceback__ = None
    return error


def extract_finish_reason(chunk: Optional[Chunk]) -> Optional[str]:
    """Return the chunk's finish reason (``stop``, ``length``, ``tool_calls``...), or ``None``.

    Only the last chunk of a choice usually carries one; a usage-only chunk
    with no choices gives ``None``.
    """
    return None if chunk is None else chunk.finish_reason


# ---------------------------------------------------------------------------
# Assembling chunks into a response
# ---------------------------------------------------------------------------


class _ToolCallParts:
    """One tool call being assembled: its id, name and argument fragments."""

    __slots__ = ("id", "name", "arguments")

    def __init__(self) -> None:
        self.id: Optional[str] = None
        self.name: Optional[str] = None
        self.arguments: list[str] = []

    def starts_new_call(self, fragment: ToolCallDelta) -> bool:
        """Tell whether ``fragment`` opens another call that reuses this one's index.

        Providers that send each call whole (Gemini, Ollama, Mistral) may give
        every call the same index, or none; a second header (a name, with no
        id or another id) then means a second call.
        """
        if fragment.id is not None and self.id is not None:
            return fragment.id != self.id
        return fragment.name is not None and self.name is not None and fragment.id is None

    def build(self) -> ToolCall:
        return ToolCall(id=self.id, name=self.name or "", arguments="".join(self.arguments))


#: Reasoning-part fields whose streamed fragments are concatenated.
_JOINED_DETAIL_FIELDS = frozenset({"text", "summary", "data"})


class _ChoiceParts:
    """One choice being assembled; text is kept as a list of pieces and joined once."""

    __slots__ = ("role", "content", "reasoning", "tool_calls", "calls_by_index", "finish_reason",
                 "refusal", "details", "annotations")

    def __init__(self) -> None:
        self.role: Optional[str] = None
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: list[_ToolCallParts] = []
        self.calls_by_index: dict[int, _ToolCallParts] = {}
        self.finish_reason: Optional[str] = None
        self.refusal: list[str] = []
        self.details: dict[Any, dict[str, Any]] = {}
        self.annotations: list[Mapping[str, Any]] = []

    def add_reasoning_detail(self, fragment: Mapping[str, Any]) -> None:
        """Merge one reasoning-part fragment into the part with its ``index``.

        Text fields (``text``, ``summary``, ``data``) are concatenated; any
        other field is set by the latest fragment that has it (a signature
        arrives after its text). Fragments without an index are parts of their own.
        """
        key = fragment.get("index", ("unindexed", len(self.details)))
        part = self.details.get(key)
        if part is None:
            self.details[key] = dict(fragment)
            return
        for name, value in fragment.items():
            if value is None:
                continue
            if name in _JOINED_DETAIL_FIELDS and isinstance(part.get(name), str):
                part[name] += value
            else:
                part[name] = value

    def add_tool_call(self, fragment: ToolCallDelta) -> None:
        call = self.calls_by_index.get(fragment.index)
        if call is None or call.starts_new_call(fragment):
            call = _ToolCallParts()
            self.tool_calls.append(call)
            self.calls_by_index[fragment.index] = call
        if fragment.id is not None:
            call.id = fragment.id
        if fragment.name is not None:
            call.name = fragment.name
        if fragment.arguments:
            call.arguments.append(fragment.arguments)

    def build(self, index: int) -> ResponseChoice:
        message = Message(
            role=self.role or "assistant",
            content="".join(self.content) if self.content else None,
            tool_calls=tuple(call.build() for call in self.tool_calls),
            reasoning="".join(self.reasoning) if self.reasoning else None,
            refusal="".join(self.refusal) if self.refusal else None,
            reasoning_details=tuple(self.details.values()),
            annotations=tuple(self.annotations),
        )
        return ResponseChoice(index=index, message=message, finish_reason=self.finish_reason)


class ResponseBuilder:
    """Assemble streamed chunks into one :class:`~litestream.Response`, in O(n).

    Text and reasoning are kept apart, as lists of pieces joined once in
    :meth:`build`; tool-call fragments are merged by index into whole calls
    (also when text comes first, when several calls stream in parallel, or
    when a provider sends each call whole with no index). The last non-None
    finish reason, the last usage and the last model named win; id,
    provider and created come from the first chunk that has them. Refusal
    text is joined apart from content, citations (``annotations``) are kept
    in order, and reasoning-part fragments (``reasoning_details``) are
    merged by index into the message's parts, ready to go back to the
    provider on the next turn. Chunks themselves are not kept.

    Args:
        provider: the provider name to use when no chunk names one.
        model: the model name to use when no chunk names one.

    Example:
        >>> builder = ResponseBuilder()
        >>> for chunk in stream:  # doctest: +SKIP
        ...     builder.add(chunk)
        >>> builder.build().content  # doctest: +SKIP
        'Hello!'
    """

    __slots__ = ("id", "model", "provider", "created", "usage", "_choices", "_defaults")

    def __init__(self, provider: Optional[str] = None, model: Optional[str] = None) -> None:
        self.id: Optional[str] = None
        self.model: Optional[str] = None
        self.provider: Optional[str] = None
        self.created: Optional[int] = None
        self.usage: Optional[Usage] = None
        self._choices: dict[int, _ChoiceParts] = {}
        self._defaults = (provider, model)

    def add(self, chunk: Chunk) -> None:
        """Add one chunk (metadata-only chunks included)."""
        if self.id is None:
            self.id = chunk.id
        if chunk.model:
            self.model = chunk.model  # the latest named wins: routers name the serving model late
        if self.provider is None:
            self.provider = chunk.provider
        if self.created is None:
            self.created = chunk.created
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            parts = self._choices.get(choice.index)
            if parts is None:
                parts = self._choices[choice.index] = _ChoiceParts()
            delta = choice.delta
            if delta.role is not None:
                parts.role = delta.role
            if delta.content:
                parts.content.append(delta.content)
            if delta.reasoning:
                parts.reasoning.append(delta.reasoning)
            for fragment in delta.tool_calls:
                parts.add_tool_call(fragment)
            if delta.refusal:
                parts.refusal.append(delta.refusal)
            for detail in delta.reasoning_details:
                parts.add_reasoning_detail(detail)
            parts.annotations.extend(delta.annotations)
            if choice.finish_reason is not None:
                parts.finish_reason = choice.finish_reason

    @property
    def content(self) -> Optional[str]:
        """The first choice's text so far, or ``None`` when none arrived."""
        parts = self._choices.get(0)
        if parts is None or not parts.content:
            return None
        return "".join(parts.content)

    def build(self) -> Response:
        """Return the response assembled so far; it always has at least choice 0."""
        choices = self._choices or {0: _ChoiceParts()}
        provider = self.provider or self._defaults[0]
        model = self.model or self._defaults[1]
        return Response(
            id=self.id,
            model=model,
            provider=provider,
            created=self.created,
            choices=tuple(choices[index].build(index) for index in sorted(choices)),
            usage=self.usage,
            cost=cost_of(provider, model, self.usage),
        )


def _builder_for(stream: Channel[Chunk]) -> ResponseBuilder:
    return ResponseBuilder(getattr(stream, "provider", None), getattr(stream, "model", None))


def _note_partial(error: BaseException, builder: ResponseBuilder) -> None:
    if isinstance(error, LitestreamError) and error.partial_content is None:
        error.partial_content = builder.content


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
    builder = _builder_for(stream)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                chunk = _IDLE
            else:
                chunk = _get_or_idle(stream, remaining)
            if chunk is _IDLE:
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
        _note_partial(error, builder)
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
    builder = _builder_for(stream)
    try:
        for chunk in stream:
            builder.add(chunk)
            on_chunk(chunk)
        if future.cancelled():
            raise concurrent.futures.CancelledError()
        response = builder.build()
    except BaseException as error:
        stream.close()
        _note_partial(error, builder)
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


# ---------------------------------------------------------------------------
# Server-sent events
# ---------------------------------------------------------------------------

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

    def __init__(self, stream: Channel[Chunk], events: Iterator[bytes]) -> None:
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
    stream: Channel[Chunk], heartbeat: Optional[float] = 15.0, *, first: Optional[Chunk] = None
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
    stream: Channel[Chunk], heartbeat: Optional[float], first: Optional[Chunk]
) -> Iterator[bytes]:
    try:
        if first is not None:
            yield sse_chunk(first)
        while True:
            try:
                chunk = _get_or_idle(stream, heartbeat)
            except Exception as error:
                yield _sse_error(drop_traceback(error))
                return
            if chunk is _IDLE:
                yield _KEEP_ALIVE
            elif chunk is None:
                yield _DONE
                return
            else:
                yield sse_chunk(chunk)
    finally:
        stream.close()
