"""The handle a routed streaming call returns, and the job its router thread works for.

:class:`RoutedStream` is what :meth:`~litestream.router.Router.completion`
and :meth:`~litestream.router.Router.race` return for a stream; the router
thread fills it through a :class:`RouteJob`, which holds the channel's
private sender and never the user's handle, so an abandoned handle is
garbage-collected and its finalizer cancels the job.

Every attempt of a routed call (a retry, a fallback, each stream of a race)
is one call for the listeners, and an :class:`AttemptLog` keeps their end
events: what each attempt used and cost, and the total.
"""

from __future__ import annotations

import itertools
import threading
import time
import weakref
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Optional

from litestream import errors
from litestream.channels import ReceiveChannel, _Sender
from litestream.listeners import CallEvent
from litestream.options import DEFAULT_BUFFER
from litestream.transport import Stream
from litestream.types import Chunk, Usage

__all__ = ["AttemptLog", "Cancelled", "RouteJob", "RoutedStream", "batches", "sum_usage"]


class Cancelled(Exception):
    """The routed stream was closed while the router thread still worked for it."""


def batches(stream: Stream) -> Iterator[list[Chunk]]:
    """Yield what ``stream`` holds, one batch per wake-up, until it ends.

    A stream error is raised after the batch holding the chunks that came before it.
    """
    while True:
        first = stream.get()
        if first is None:
            return
        batch = [first]
        pending: Optional[errors.LitestreamError] = None
        try:
            while True:
                value = stream.get_nowait()
                if value is None:
                    break
                batch.append(value)
        except errors.LitestreamError as error:  # before TimeoutError: StreamTimeout is one
            pending = error
        except TimeoutError:
            pass  # nothing more right now
        yield batch
        if pending is not None:
            raise pending


def sum_usage(usages: Iterable[Usage]) -> Optional[Usage]:
    """Add usages up; None for none. Cached and reasoning counts add where known.

    The sum is ``estimated`` when any of its terms is.
    """
    terms = tuple(usages)
    if not terms:
        return None

    def detail(name: str) -> Optional[int]:
        known = [getattr(usage, name) for usage in terms if getattr(usage, name) is not None]
        return sum(known) if known else None

    return Usage(
        sum(usage.prompt_tokens for usage in terms),
        sum(usage.completion_tokens for usage in terms),
        sum(usage.total_tokens for usage in terms),
        cached_tokens=detail("cached_tokens"), reasoning_tokens=detail("reasoning_tokens"),
        estimated=any(usage.estimated for usage in terms))


class AttemptLog:
    """The end events of the attempts of one routed call, and what they used in total.

    A listener (it has ``on_end``): every :class:`RoutedStream` keeps one
    (``stream.attempt_log``); for a non-streaming routed call, pass one in
    ``listeners=[...]``. Use one log per call.

    Every attempt is there once it has ended: a retry, a fallback, each
    stream of a race (the losers end ``cancelled`` once closed). An
    attempt's usage is the provider's, or an estimate (``usage.estimated``)
    when none came, as in :class:`~litestream.listeners.CallEvent`.

    Example:
        >>> log = AttemptLog()
        >>> log.events, log.usages, log.total_usage, log.total_cost
        ((), (), None, None)
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[CallEvent] = []

    def on_end(self, event: CallEvent) -> None:
        """Keep the end event of one attempt (the listener hook)."""
        with self._lock:
            self._events.append(event)

    @property
    def events(self) -> tuple[CallEvent, ...]:
        """The end events of the attempts that have ended, by attempt number."""
        with self._lock:
            events = list(self._events)
        return tuple(sorted(events, key=lambda event: (event.attempt, event.call_id)))

    @property
    def usages(self) -> tuple[Usage, ...]:
        """The usage of each attempt that has ended, by attempt number."""
        return tuple(event.usage for event in self.events if event.usage is not None)

    @property
    def total_usage(self) -> Optional[Usage]:
        """The sum of :attr:`usages` (``estimated`` if one of them is); None before any ended."""
        return sum_usage(self.usages)

    @property
    def total_cost(self) -> Optional[Decimal]:
        """The summed price in USD of the attempts that have ended; None if one is unknown."""
        costs = [event.cost for event in self.events]
        if not costs or any(cost is None for cost in costs):
            return None
        return sum(costs, Decimal(0))  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<AttemptLog attempts={len(self.events)} total={self.total_usage}>"


class RouteJob:
    """The state the router thread shares with a :class:`RoutedStream`.

    Args:
        sender: the writing end of the routed stream's channel.
    """

    def __init__(self, sender: _Sender[Chunk]) -> None:
        self.sender = sender
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.current: Optional[Stream] = None
        self.provider: Optional[str] = None
        self.model: Optional[str] = None
        self.failures: list[str] = []
        self.thread: Optional[threading.Thread] = None
        #: Called once when the job is done with its committed attempt (a
        #: limits lease to release, say); set before :meth:`pump` runs.
        self.on_done: Optional[Callable[[], None]] = None
        #: Called after each batch the committed attempt delivered (lease renewal).
        self.on_batch: Optional[Callable[[], None]] = None
        #: The total tokens the committed attempt's provider reported, if it did.
        self.usage_tokens: Optional[int] = None
        #: The text the committed attempt delivered (for an estimate when no usage came).
        self.delivered_text = ""
        #: The end events of every attempt (a listener of each).
        self.log = AttemptLog()
        #: Every attempt stream opened for the job, so ``join`` can wait for their ends.
        self.opened: list[Stream] = []
        #: The routed stream's finalizer (it calls :meth:`cancel`), detached when
        #: the router thread ends: kept in the global registry, it would keep this
        #: job alive, with the attempts' errors, whose tracebacks hold the
        #: consumer's frames and so the routed stream itself, for good.
        self.finalizer: Optional[weakref.finalize] = None

    def track(self, stream: Stream) -> None:
        """Note an attempt stream the job opened (``join`` waits for its reader too)."""
        with self.lock:
            self.opened.append(stream)

    def cancel(self) -> None:
        """Close the routed channel and the attempt in flight; wake the thread from any wait."""
        self.cancelled.set()
        self.sender.close(discard=True)
        with self.lock:
            current = self.current
        if current is not None:
            current.close()

    def adopt(self, stream: Stream) -> None:
        """Make ``stream`` the attempt in flight, or close it when the job was cancelled.

        Raises:
            Cancelled: the job was cancelled meanwhile (``stream`` is closed).
        """
        with self.lock:
            if not self.cancelled.is_set():
                self.current = stream
                return
        stream.close()
        raise Cancelled()

    def release(self, stream: Stream) -> None:
        """Close an attempt stream that the job is done with."""
        with self.lock:
            if self.current is stream:
                self.current = None
        stream.close()

    def start(self, target: Callable[..., None], *args: Any) -> None:
        """Run ``target(*args)`` on the job's router thread."""
        def run() -> None:
            try:
                target(*args)
            finally:
                if self.finalizer is not None:
                    self.finalizer.detach()

        self.thread = threading.Thread(target=run, name="litestream-router", daemon=True)
        self.thread.start()

    def commit(self, provider: str, model: str) -> None:
        """Record which attempt the job settled on."""
        self.provider, self.model = provider, model

    def fail(self, error: errors.LitestreamError) -> None:
        """End the routed stream with ``error``."""
        self.sender.close(error)

    def pump(self, stream: Stream, held: list[Chunk]) -> None:
        """Forward the committed attempt's chunks in order; its error keeps ``partial_content``."""
        texts: list[str] = []
        try:
            for batch in itertools.chain([held], batches(stream)):
                for chunk in batch:
                    if chunk.content:
                        texts.append(chunk.content)
                    if chunk.usage is not None:
                        self.usage_tokens = chunk.usage.total_tokens
                if not self.sender.put_many(batch):
                    return  # the handle was closed
                if self.on_batch is not None:
                    self.on_batch()
            self.sender.close()
        except errors.LitestreamError as error:
            error.partial_content = "".join(texts)
            error.attempts = (*self.failures, errors.error_summary(error))
            error.channel = None
            self.sender.close(error)
        finally:
            self.delivered_text = "".join(texts)
            self.release(stream)
            if self.on_done is not None:
                self.on_done()


class RoutedStream(ReceiveChannel[Chunk]):
    """A stream of chunks from whichever deployment the router settled on.

    It reads like a :class:`~litestream.Stream`: iterate it, ``get`` from it,
    put it in :func:`~litestream.alts`. While no content chunk has come, a
    failed attempt is retried or a fallback tried behind the scenes; once
    content came, a failure is raised from ``get`` (after every earlier
    chunk) with ``partial_content`` set, and nothing is retried.

    ``close()`` stops everything at once: the attempt in flight, any backoff
    wait, the router thread. An unreferenced handle is closed when it is
    garbage-collected.

    Attributes:
        name: the name the call was routed by.
    """

    __slots__ = ("name", "_job", "_finalizer")

    def __init__(self, name: str, buffer: int = DEFAULT_BUFFER) -> None:
        super().__init__(buffer)
        self.name = name
        self._job = RouteJob(_Sender(self._state))
        self._finalizer = self._job.finalizer = weakref.finalize(self, self._job.cancel)

    @property
    def job(self) -> RouteJob:
        """The job the router thread works for (for the router, not for callers)."""
        return self._job

    @property
    def provider(self) -> Optional[str]:
        """The provider of the attempt being streamed (None until one produced content)."""
        return self._job.provider

    @property
    def model(self) -> Optional[str]:
        """The model of the attempt being streamed (None until one produced content)."""
        return self._job.model

    @property
    def attempts(self) -> tuple[str, ...]:
        """One :func:`~litestream.errors.error_summary` line per failed attempt so far."""
        return tuple(self._job.failures)

    @property
    def attempt_log(self) -> AttemptLog:
        """The end events of this call's attempts (retries, fallbacks, race losers, winner)."""
        return self._job.log

    @property
    def attempt_usages(self) -> tuple[Usage, ...]:
        """The usage of each attempt that has ended, by attempt number.

        The streamed chunks (and so a collected response) carry the usage
        of the attempt that answered only; this has every attempt's. It is
        complete once the stream ended and :meth:`join` returned True.
        """
        return self._job.log.usages

    @property
    def total_usage(self) -> Optional[Usage]:
        """The sum of :attr:`attempt_usages`; None before any attempt ended."""
        return self._job.log.total_usage

    def close(self) -> None:
        """Cancel the routed call and close the stream; idempotent, callable from any thread."""
        self._job.cancel()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the router thread and every attempt's reader have ended; True if they have.

        Once it returns True, every attempt's ``on_end`` has fired and
        :attr:`attempt_usages` is complete.
        """
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> Optional[float]:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        thread = self._job.thread
        if thread is not None:
            thread.join(left())
            if thread.is_alive():
                return False
        with self._job.lock:
            opened = list(self._job.opened)
        return all(stream.join(left()) for stream in opened)

    def __repr__(self) -> str:
        status = "closed" if self._state.closed else "open"
        where = f"{self.provider}/{self.model}" if self.provider else "not committed"
        return f"<RoutedStream {self.name!r} {where} {status} buffered={self.qsize()}>"
