"""Lifecycle listeners: what every call did, how long it took, what it used and cost.

A listener is any object with one or more of these methods, each taking a
:class:`CallEvent`:

- ``on_request(event)``: the request is about to be sent (on the caller's
  thread, so a listener may read the caller's context, e.g. its current
  OpenTelemetry span);
- ``on_first_chunk(event)``: the first content arrived (on the reader
  thread of a stream); not called when no content ever came;
- ``on_end(event)``: the call is over, with its ``outcome``: ``"complete"``,
  ``"error"`` (with ``event.error``) or ``"cancelled"`` (closed, broken out
  of, or garbage-collected before its end).

``on_request`` and ``on_end`` are called **exactly once per call** whatever
happens: completion, an error, a timeout, ``close()``, a ``break`` out of
the loop (once the stream is closed or collected), a hedge that lost.
For a stream, ``on_end`` runs on the reader thread as it ends, before a
consumer waiting for the end sees it (after ``close()``, as soon as the
reader has stopped: ``stream.join()`` waits for that). A routed call is one
call per attempt, each with its ``attempt`` number and ``deployment`` name.

A listener that raises is logged (logger ``litestream``) and changes
nothing for the stream or for the other listeners. Listeners are
registered for the process with :func:`add_listener`, or given per call
(``completion(..., listeners=[...])``) and per :class:`~litestream.Router`.
With no listener at all, no monitor is created: the cost per chunk is one
attribute test.

Example::

    import litestream

    class Log:
        def on_end(self, event):
            print(event.provider, event.model, event.outcome,
                  event.usage.total_tokens, event.cost)

    litestream.add_listener(Log())
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Sequence

import attrs

from litestream.cost import cost_of
from litestream.tokens import estimate_tokens
from litestream.types import Chunk, Response, Usage, _token_text

__all__ = [
    "OUTCOMES",
    "CallEvent",
    "CallMonitor",
    "add_listener",
    "check_listener",
    "estimate_usage",
    "listeners",
    "monitor_for",
    "remove_listener",
]

logger = logging.getLogger("litestream")

#: The outcomes of a call, as ``CallEvent.outcome`` names them.
OUTCOMES = ("complete", "error", "cancelled")

_HOOKS = ("on_request", "on_first_chunk", "on_end")

# Copy-on-write: readers take the tuple without a lock.
_registered: tuple[Any, ...] = ()
_registry_lock = threading.Lock()
_call_ids = itertools.count(1)


def add_listener(listener: Any) -> None:
    """Register ``listener`` for every call of the process (once, however often it is added).

    Args:
        listener: an object with any of ``on_request``, ``on_first_chunk``
            and ``on_end``, each taking a :class:`CallEvent`.

    Raises:
        TypeError: ``listener`` has none of those methods.
    """
    check_listener(listener)
    global _registered
    with _registry_lock:
        if not any(existing is listener for existing in _registered):
            _registered = (*_registered, listener)


def remove_listener(listener: Any) -> None:
    """Unregister ``listener``; calls already started still report to it. No error if absent."""
    global _registered
    with _registry_lock:
        _registered = tuple(existing for existing in _registered if existing is not listener)


def listeners() -> tuple[Any, ...]:
    """Return the listeners registered for the process, in registration order."""
    return _registered


def check_listener(listener: Any) -> None:
    """Raise TypeError unless ``listener`` has at least one hook (``on_request``...)."""
    if not any(callable(getattr(listener, hook, None)) for hook in _HOOKS):
        raise TypeError(f"a listener needs one of {', '.join(_HOOKS)}; "
                        f"{type(listener).__name__} has none")


@attrs.frozen
class CallEvent:
    """What one call (or one attempt of a routed call) did, as a listener sees it.

    Times are in seconds; ``started_at`` is wall-clock (``time.time()``),
    the durations are measured on a monotonic clock. Fields not known yet
    are None (``duration`` and ``outcome`` before ``on_end``).
    """

    #: A number unique in the process, the same in the three events of a call.
    call_id: int
    provider: str
    model: str
    #: The request as sent (OpenAI chat keys), read-only.
    request: Mapping[str, Any]
    stream: bool
    started_at: float
    #: The router's deployment name, for a routed call.
    deployment: Optional[str] = None
    #: 1 for the first attempt of a routed call (and for every direct call).
    attempt: int = 1
    server_address: Optional[str] = None
    server_port: Optional[int] = None
    #: Retries made before an answer came (connection failures, 429, 5xx).
    retries: int = 0
    time_to_first_chunk: Optional[float] = None
    duration: Optional[float] = None
    #: The provider's usage, else an estimate (``usage.estimated``); set in ``on_end``.
    usage: Optional[Usage] = None
    #: The price in USD when known (see :mod:`litestream.cost`).
    cost: Optional[Decimal] = None
    finish_reason: Optional[str] = None
    response_id: Optional[str] = None
    response_model: Optional[str] = None
    #: The text delivered (first choice), set in ``on_end``.
    content: Optional[str] = None
    #: Content chunks received.
    chunks: int = 0
    #: Seconds between each content chunk and the one before it.
    chunk_intervals: tuple[float, ...] = ()
    outcome: Optional[str] = None
    error: Optional[BaseException] = None


def estimate_usage(request: Mapping[str, Any], output_text: str) -> Usage:
    """Estimate the usage of a call from its messages and the text it produced.

    Returns:
        A :class:`~litestream.Usage` with ``estimated=True``.
    """
    prompt = sum(estimate_tokens(text) for text in _message_texts(request.get("messages")))
    completion = estimate_tokens(output_text)
    return Usage(prompt, completion, estimated=True)


def _message_texts(messages: Any) -> Iterable[str]:
    for message in messages or ():
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, (list, tuple)):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    yield part["text"]
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping) and isinstance(function.get("arguments"), str):
                yield function["arguments"]


def monitor_for(provider: str, model: str, request: Mapping[str, Any], *,
                stream: bool, call_listeners: Sequence[Any] = (),
                deployment: Optional[str] = None, attempt: int = 1,
                url: Optional[str] = None) -> Optional[CallMonitor]:
    """Return the monitor of a new call, or None when nobody listens (nothing to pay then)."""
    active = _registered
    if call_listeners:
        for listener in call_listeners:
            check_listener(listener)
        active = (*active, *(one for one in call_listeners
                             if not any(one is known for known in active)))
    if not active:
        return None
    return CallMonitor(active, provider, model, request, stream=stream,
                       deployment=deployment, attempt=attempt, url=url)


class CallMonitor:
    """The telemetry of one call: fires each listener hook once, whatever thread ends the call.

    The transport feeds it the chunks it reads (:meth:`chunks`), and calls
    :meth:`end` once the call is over; the first call to :meth:`end` wins.
    """

    __slots__ = ("_listeners", "_base", "_started", "_first_chunk_at", "_last_chunk_at",
                 "_intervals", "_pieces", "_usage", "_finish_reason", "_response_id",
                 "_response_model", "_chunks", "_retries", "_ended", "_lock", "_fired")

    def __init__(self, active: Sequence[Any], provider: str, model: str,
                 request: Mapping[str, Any], *, stream: bool, deployment: Optional[str],
                 attempt: int, url: Optional[str]) -> None:
        self._listeners = tuple(active)
        address, port = _server(url)
        self._base = CallEvent(
            call_id=next(_call_ids), provider=provider, model=model,
            request=MappingProxyType(dict(request)), stream=stream, started_at=time.time(),
            deployment=deployment, attempt=attempt, server_address=address, server_port=port)
        self._started = time.monotonic()
        self._first_chunk_at: Optional[float] = None
        self._last_chunk_at = 0.0
        self._intervals: list[float] = []
        self._pieces: list[str] = []
        self._usage: Optional[Usage] = None
        self._finish_reason: Optional[str] = None
        self._response_id: Optional[str] = None
        self._response_model: Optional[str] = None
        self._chunks = 0
        self._retries = 0
        self._ended = False
        self._fired: set[str] = set()
        self._lock = threading.Lock()

    @property
    def call_id(self) -> int:
        """The call's number, as its events carry it."""
        return self._base.call_id

    @property
    def ended(self) -> bool:
        """True once :meth:`end` has run."""
        return self._ended

    def request(self) -> None:
        """Fire ``on_request`` (once); call it on the caller's thread, before sending."""
        self._fire("on_request", self._base)

    def retried(self) -> None:
        """Count one retry before an answer."""
        self._retries += 1

    def chunks(self, chunks: Sequence[Chunk]) -> None:
        """Note the chunks of one read; fires ``on_first_chunk`` at the first content."""
        now = time.monotonic()
        for chunk in chunks:
            if chunk.usage is not None:
                self._usage = chunk.usage
            if chunk.id and self._response_id is None:
                self._response_id = chunk.id
            if chunk.model:
                self._response_model = chunk.model
            if not chunk.has_content:
                finish = chunk.finish_reason
                if finish is not None:
                    self._finish_reason = finish
                continue
            self._chunks += 1
            if self._first_chunk_at is None:
                self._first_chunk_at = now
                self._fire("on_first_chunk", self._progress())
            else:
                self._intervals.append(now - self._last_chunk_at)
            self._last_chunk_at = now
            text = _token_text(chunk)
            if text is not None:  # one token of text: read without building its choice
                self._pieces.append(text)
                continue
            for choice in chunk.choices:
                delta = choice.delta
                if choice.index == 0 and delta.content:
                    self._pieces.append(delta.content)
                if delta.reasoning:
                    self._pieces.append(delta.reasoning)
                for call in delta.tool_calls:
                    if call.arguments:
                        self._pieces.append(call.arguments)
                if choice.finish_reason is not None:
                    self._finish_reason = choice.finish_reason

    def response(self, response: Response) -> None:
        """End a non-streaming call with its response (``complete``)."""
        now = time.monotonic()
        self._first_chunk_at = now
        self._fire("on_first_chunk", self._progress())
        self._usage = response.usage
        self._finish_reason = response.finish_reason
        self._response_id = response.id
        self._response_model = response.model
        if response.content:
            self._pieces.append(response.content)
            self._chunks = 1
        self.end(None, cost=response.cost)

    def end(self, error: Optional[BaseException], cancelled: bool = False,
            cost: Optional[Decimal] = None) -> None:
        """Fire ``on_end`` once: ``error`` if given, else ``cancelled`` or ``complete``."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        outcome = "error" if error is not None else "cancelled" if cancelled else "complete"
        usage = self._usage
        content = "".join(self._pieces)
        if usage is None:
            usage = estimate_usage(self._base.request, content)
        if cost is None:
            cost = cost_of(self._base.provider, self._response_model or self._base.model, usage)
        event = attrs.evolve(
            self._progress(), duration=time.monotonic() - self._started, usage=usage,
            cost=cost, content=content, chunk_intervals=tuple(self._intervals),
            outcome=outcome, error=error)
        self._fire("on_end", event)

    def _progress(self) -> CallEvent:
        first = self._first_chunk_at
        return attrs.evolve(
            self._base, retries=self._retries, chunks=self._chunks,
            time_to_first_chunk=None if first is None else first - self._started,
            finish_reason=self._finish_reason, response_id=self._response_id,
            response_model=self._response_model)

    def _fire(self, hook: str, event: CallEvent) -> None:
        with self._lock:
            if hook in self._fired and hook != "on_end":
                return
            self._fired.add(hook)
        for listener in self._listeners:
            method = getattr(listener, hook, None)
            if method is None:
                continue
            try:
                method(event)
            except Exception as error:
                # Logged as text: a record holding the traceback would hold
                # the reader's frames, and with them the response's socket.
                logger.error("listener %r failed in %s for %s/%s: %s", listener, hook,
                             event.provider, event.model,
                             "".join(traceback.format_exception(error)).rstrip())
                del error


def _server(url: Optional[str]) -> tuple[Optional[str], Optional[int]]:
    if not url:
        return None, None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None, None
    return parts.hostname, port
