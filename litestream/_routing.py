"""How a :class:`~litestream.router.Router` runs a call: attempts, retries, cooldowns, races.

:mod:`litestream.router` keeps the registry: names, deployments, and the
plan one call resolves to. This module runs a plan. It tries the plan's
targets in order, retrying a retryable failure with exponential backoff and
full jitter, skipping a deployment that is cooling down; for a streaming
call it does that on a router thread (``litestream-router``) that peeks at
each attempt until the first content chunk, then commits to it and pumps it
into the caller's :class:`RoutedStream`. :meth:`_Runner._race` asks several
deployments at once and keeps the first with content.

Nothing here is public API except :class:`RoutedStream`, which
:mod:`litestream.router` re-exports.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import weakref
from collections import deque
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, TypeVar

import attrs

from litestream import core, errors
from litestream.channels import ReceiveChannel, _Sender, alts
from litestream.options import DEFAULT_BUFFER, CallOptions
from litestream.transport import Stream
from litestream.types import Chunk, Response

logger = logging.getLogger("litestream")

T = TypeVar("T")


class _Cancelled(Exception):
    """The routed stream was closed while the router thread still worked for it."""


# ---------------------------------------------------------------------------
# What one call resolves to
# ---------------------------------------------------------------------------


@attrs.frozen
class _Target:
    """One deployment resolved for one call: validated, with its config complete."""

    provider: str
    model: str
    request: Mapping[str, Any]
    config: CallOptions
    max_retries: int
    key: tuple[str, str, str]  # (registered name, provider, model): the cooldown unit


@attrs.frozen
class _Plan:
    """The targets of one call, primary first, and the call's deadline."""

    targets: tuple[_Target, ...]
    deadline: Optional[float]
    stream: bool
    buffer: int

    def attempt_config(self, target: _Target) -> Optional[dict[str, Any]]:
        """Return the next attempt's options, timeout cut to what is left; None when none is."""
        config = target.config.to_mapping()
        if self.deadline is not None:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                return None
            own = config["timeout"]
            config["timeout"] = remaining if own is None else min(own, remaining)
        return config


# ---------------------------------------------------------------------------


class _Health:
    """Recent failures per deployment, and which deployments are cooling down."""

    def __init__(self, failures: int, window: float, duration: float) -> None:
        self.failures = failures
        self.window = window
        self.duration = duration
        self.lock = threading.Lock()
        self.recent: dict[tuple[str, str, str], deque[float]] = {}
        self.cooling_until: dict[tuple[str, str, str], float] = {}

    def cooling(self, key: tuple[str, str, str]) -> bool:
        """Return True while ``key`` is skipped after repeated failures."""
        with self.lock:
            until = self.cooling_until.get(key)
            if until is None:
                return False
            if time.monotonic() < until:
                return True
            del self.cooling_until[key]
            return False

    def failed(self, key: tuple[str, str, str]) -> None:
        """Count a failure; the ``failures``-th within ``window`` starts a cooldown."""
        now = time.monotonic()
        with self.lock:
            recent = self.recent.setdefault(key, deque())
            recent.append(now)
            while recent and recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) < self.failures:
                return
            del self.recent[key]
            self.cooling_until[key] = now + self.duration
        logger.info(
            "%s/%s (%s) failed %d times within %.0f s: skipping it for %.0f s",
            key[1], key[2], key[0], self.failures, self.window, self.duration,
        )

    def succeeded(self, key: tuple[str, str, str]) -> None:
        """Forget the failures of ``key``."""
        with self.lock:
            self.recent.pop(key, None)
            self.cooling_until.pop(key, None)

    def forget(self, name: str) -> None:
        """Forget the failures of every deployment registered as ``name``."""
        with self.lock:
            for table in (self.recent, self.cooling_until):
                for key in [key for key in table if key[0] == name]:
                    del table[key]

    def clear(self) -> None:
        """Forget everything."""
        with self.lock:
            self.recent.clear()
            self.cooling_until.clear()


def _counts_against_deployment(error: errors.LitestreamError) -> bool:
    """Return True for failures of the deployment itself, not of the caller's request."""
    return errors.is_retryable(error) or isinstance(error, (
        errors.AuthenticationError,
        errors.PermissionDeniedError,
        errors.QuotaExceededError,
        errors.ModelNotFoundError,
    ))


# ---------------------------------------------------------------------------
# Attempt streams
# ---------------------------------------------------------------------------


def _batches(stream: Stream) -> Iterator[list[Chunk]]:
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


# ---------------------------------------------------------------------------
# The routed stream
# ---------------------------------------------------------------------------


class _RouteJob:
    """The state the router thread shares with a :class:`RoutedStream`.

    The thread holds this and the channel state, never the user's handle, so
    an abandoned handle is garbage-collected and its finalizer cancels the job.
    """

    def __init__(self, state: Any) -> None:
        self.state = state
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.current: Optional[Stream] = None
        self.provider: Optional[str] = None
        self.model: Optional[str] = None
        self.failures: list[str] = []
        self.thread: Optional[threading.Thread] = None

    def cancel(self) -> None:
        """Close the routed channel and the attempt in flight; wake the thread from any wait."""
        self.cancelled.set()
        self.state.close(discard=True)
        with self.lock:
            current = self.current
        if current is not None:
            current.close()

    def adopt(self, stream: Stream) -> None:
        """Make ``stream`` the attempt in flight, or close it when the job was cancelled."""
        with self.lock:
            if not self.cancelled.is_set():
                self.current = stream
                return
        stream.close()
        raise _Cancelled()

    def release(self, stream: Stream) -> None:
        """Close an attempt stream that the job is done with."""
        with self.lock:
            if self.current is stream:
                self.current = None
        stream.close()

    def start(self, target: Callable[..., None], *args: Any) -> None:
        self.thread = threading.Thread(
            target=target, args=args, name="litestream-router", daemon=True
        )
        self.thread.start()

    def commit(self, target: _Target) -> None:
        self.provider, self.model = target.provider, target.model

    def pump(self, stream: Stream, held: list[Chunk]) -> None:
        """Forward the committed attempt's chunks in order; its error keeps ``partial_content``."""
        texts: list[str] = []
        try:
            for batch in itertools.chain([held], _batches(stream)):
                texts.extend(filter(None, map(core.extract_content, batch)))
                if not self.state.put_many(batch):
                    return  # the handle was closed
            self.state.close()
        except errors.LitestreamError as error:
            error.partial_content = "".join(texts)
            error.attempts = (*self.failures, errors.error_summary(error))
            error.channel = None
            self.state.close(error)
        finally:
            self.release(stream)


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
        self._job = _RouteJob(_Sender(self._state))
        self._finalizer = weakref.finalize(self, self._job.cancel)

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

    def close(self) -> None:
        """Cancel the routed call and close the stream; idempotent, callable from any thread."""
        self._job.cancel()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the router thread has ended; True if it has."""
        thread = self._job.thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __repr__(self) -> str:
        status = "closed" if self._state.closed else "open"
        where = f"{self.provider}/{self.model}" if self.provider else "not committed"
        return f"<RoutedStream {self.name!r} {where} {status} buffered={self.qsize()}>"


# ---------------------------------------------------------------------------
# Running a plan
# ---------------------------------------------------------------------------


class _Runner:
    """The retry, backoff and cooldown half of a :class:`~litestream.router.Router`.

    It holds the backoff settings, the cooldown health of every deployment
    and the jitter's random source; the ``Router`` adds the registry and
    turns names into :class:`_Plan` objects for it to run.
    """

    def __init__(
        self,
        *,
        backoff_base: float,
        backoff_cap: float,
        max_retry_after: float,
        cooldown_failures: int,
        cooldown_window: float,
        cooldown_duration: float,
    ) -> None:
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self._health = _Health(cooldown_failures, cooldown_window, cooldown_duration)
        self._random = random.Random()

    def _run(
        self,
        plan: _Plan,
        attempt: Callable[[_Target, dict[str, Any]], T],
        wait: Callable[[float], bool],
        failures: list[str],
    ) -> tuple[_Target, T]:
        """Try the plan's targets with retries and cooldowns; return the first success.

        ``wait(delay)`` sleeps between retries and returns True when the call
        was cancelled meanwhile. ``failures`` collects one summary per attempt.

        Raises:
            LitestreamError: the last attempt's error, ``attempts`` filled in.
        """
        last_error: Optional[errors.LitestreamError] = None
        for index, target in enumerate(plan.targets):
            if self._skippable(plan, index):
                logger.info("skipping %s/%s: cooling down", target.provider, target.model)
                continue
            for retry in itertools.count():
                config = plan.attempt_config(target)
                if config is None:
                    break
                try:
                    result = attempt(target, config)
                except errors.LitestreamError as error:
                    last_error = error
                    failures.append(errors.error_summary(error))
                    if _counts_against_deployment(error):
                        self._health.failed(target.key)
                    delay = self._retry_delay(plan, index, retry, error)
                    if delay is None:
                        break
                    logger.info("retrying %s/%s in %.2f s after %s", target.provider,
                                target.model, delay, errors.error_summary(error))
                    if wait(delay):
                        raise _Cancelled() from None
                    continue
                self._health.succeeded(target.key)
                return target, result
        if last_error is None:
            last_error = errors.TotalTimeout(
                "the call's timeout passed before any attempt",
                provider=plan.targets[0].provider, model=plan.targets[0].model)
            failures.append(errors.error_summary(last_error))
        last_error.attempts = tuple(failures)
        last_error.channel = None
        raise last_error

    def _skippable(self, plan: _Plan, index: int) -> bool:
        """Return True when target ``index`` cools down and a later target does not."""
        targets = plan.targets
        return self._health.cooling(targets[index].key) and any(
            not self._health.cooling(later.key) for later in targets[index + 1:]
        )

    def _retry_delay(
        self, plan: _Plan, index: int, retry: int, error: errors.LitestreamError
    ) -> Optional[float]:
        """Seconds to wait before retrying target ``index``, or None to move on."""
        if not errors.is_retryable(error) or retry >= plan.targets[index].max_retries:
            return None
        if self._skippable(plan, index):
            return None  # a fallback answers at once
        bound = min(self.backoff_cap, self.backoff_base * 2 ** retry)
        delay = self._random.uniform(0.0, bound)
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            delay = max(delay, error.retry_after)
        if plan.deadline is not None and time.monotonic() + delay >= plan.deadline:
            return None
        return delay

    def _response(self, plan: _Plan) -> Response:
        """Run a non-streaming plan on the calling thread; return the first response."""
        _, response = self._run(plan, _send, _sleep, [])
        return response

    def _stream(self, name: str, plan: _Plan) -> RoutedStream:
        """Start a streaming plan on a router thread; return its handle at once."""
        handle = RoutedStream(name, plan.buffer)
        handle._job.start(_route, self, plan, handle._job)
        return handle

    def _race(self, names: Sequence[str], plans: Sequence[_Plan]) -> RoutedStream:
        """Open every plan's first target at once; return the first with content."""
        deadline = plans[0].deadline
        targets: dict[Stream, _Target] = {}
        held: dict[Stream, list[Chunk]] = {}
        failures: list[str] = []
        last_error: Optional[errors.LitestreamError] = None
        winner: Optional[Stream] = None
        try:
            for plan in plans:
                target = plan.targets[0]
                stream = core.completion(
                    target.provider, target.model, target.request, target.config.to_mapping())
                assert isinstance(stream, Stream)
                targets[stream] = target
                held[stream] = []
            live = list(targets)
            while live and winner is None:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    chunk, channel = alts(live, timeout=remaining)
                except errors.LitestreamError as error:
                    channel, error.channel = error.channel, None
                    live.remove(channel)
                    last_error = error
                    failures.append(errors.error_summary(error))
                    if _counts_against_deployment(error):
                        self._health.failed(targets[channel].key)
                    continue
                except TimeoutError:
                    target = plans[0].targets[0]
                    last_error = errors.TotalTimeout(
                        "no deployment produced content within the call's timeout",
                        provider=target.provider, model=target.model)
                    failures.append(errors.error_summary(last_error))
                    break
                if chunk is not None:
                    held[channel].append(chunk)
                if chunk is None or chunk.has_content:
                    winner = channel
        finally:
            for stream in targets:
                if stream is not winner:
                    stream.close()
        if winner is None:
            assert last_error is not None
            last_error.attempts = tuple(failures)
            raise last_error
        target = targets[winner]
        self._health.succeeded(target.key)
        handle = RoutedStream("|".join(names), plans[0].buffer)
        job = handle._job
        job.failures.extend(failures)
        job.commit(target)
        job.adopt(winner)
        job.start(job.pump, winner, held[winner])
        return handle


def _send(target: _Target, config: dict[str, Any]) -> Response:
    response = core.completion(target.provider, target.model, target.request, config)
    assert isinstance(response, Response)
    return response


def _sleep(delay: float) -> bool:
    # An Event, not time.sleep: the wait is a plain interruptible wait like the others.
    threading.Event().wait(delay)
    return False


def _route(runner: _Runner, plan: _Plan, job: _RouteJob) -> None:
    """Run one streaming call's router thread: find an attempt with content, then pump it."""

    def open_and_peek(target: _Target, config: dict[str, Any]) -> tuple[Stream, list[Chunk]]:
        stream = core.completion(target.provider, target.model, target.request, config)
        assert isinstance(stream, Stream)
        job.adopt(stream)
        held: list[Chunk] = []
        try:
            while True:
                chunk = stream.get()
                if chunk is None:
                    if job.cancelled.is_set():
                        raise _Cancelled()
                    return stream, held  # a complete answer without content
                held.append(chunk)
                if chunk.has_content:
                    return stream, held
        except BaseException:
            job.release(stream)
            raise

    try:
        target, (stream, held) = runner._run(plan, open_and_peek, job.cancelled.wait, job.failures)
    except _Cancelled:
        return
    except errors.LitestreamError as error:
        job.state.close(error)
        return
    except BaseException as error:  # a bug must still reach the caller
        logger.exception("the router thread failed")
        job.state.close(errors.LitestreamError(f"router failure: {error!r}"))
        return
    job.commit(target)
    job.pump(stream, held)
