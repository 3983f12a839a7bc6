"""Channels: bounded, closable, thread-safe queues, with ``alts`` and ``timeout``.

This is litestream's answer to core.async for plain blocking code. A
:class:`Channel` is a FIFO with an optional capacity: ``put`` blocks while it
is full (backpressure), ``get`` blocks while it is empty, and ``close`` ends it
for everybody at once. :func:`alts` waits on several channels and returns the
first that is ready, and :func:`timeout` gives a channel that closes after a
delay, so ``alts([stream, timeout(5)])`` bounds a wait.

The module knows nothing of HTTP: a :class:`~litestream.Stream` is a channel
that a reader thread fills.

Everything here waits on condition variables and events, never by polling.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from typing import (
    Any,
    Callable,
    Generic,
    Iterable,
    Iterator,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import attrs

from litestream.timer import call_later

__all__ = [
    "Channel",
    "ChannelStatistics",
    "alts",
    "timeout",
]

T = TypeVar("T")
logger = logging.getLogger("litestream")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()
_WAIT_MAX = threading.TIMEOUT_MAX


@attrs.frozen
class ChannelStatistics:
    """A snapshot of what a channel holds and who waits on it."""

    size: int
    maxsize: int
    closed: bool
    pending_error: bool
    waiting_getters: int
    waiting_putters: int
    watchers: int


class _ChannelState:
    """All the state of a channel, guarded by one lock.

    Kept apart from the :class:`Channel` handle so that a producer thread can
    hold the state without keeping the user's handle alive (a stream whose
    handle is garbage-collected can then be closed by a finalizer).
    """

    __slots__ = (
        "maxsize",
        "buffer",
        "closed",
        "error",
        "lock",
        "not_empty",
        "not_full",
        "watchers",
        "waiting_getters",
        "waiting_putters",
        "on_close",
        "__weakref__",
    )

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.buffer: deque[Any] = deque()
        self.closed = False
        self.error: Optional[BaseException] = None
        self.lock = threading.Lock()
        self.not_empty = threading.Condition(self.lock)
        self.not_full = threading.Condition(self.lock)
        self.watchers: set[_Watcher] = set()
        self.waiting_getters = 0
        self.waiting_putters = 0
        self.on_close: Optional[Callable[[], None]] = None

    # Called with the lock held. alts adds and removes watchers without this
    # lock (see _Watcher), so iterate over a copy of the set.
    def _wake_watchers(self) -> None:
        for watcher in tuple(self.watchers):
            watcher.fired.append(self)
            watcher.event.set()

    def _full(self) -> bool:
        return 0 < self.maxsize <= len(self.buffer)

    # -- the non-blocking core -------------------------------------------

    def try_put(self, value: Any) -> Optional[bool]:
        """Put without waiting: True if put, False if closed, None if full. Lock held."""
        if self.closed:
            return False
        if self._full():
            return None
        self.buffer.append(value)
        # Notifying a Condition nobody waits on still costs a lock round trip.
        if self.waiting_getters:
            self.not_empty.notify()
        if self.watchers:
            self._wake_watchers()
        return True

    def try_get(self) -> tuple[bool, Any]:
        """Take without waiting; ``(ready, value)``, with value None when closed.

        Returns ``(True, value)``, ``(True, None)`` when closed and drained, else
        ``(False, None)``.

        Raises the pending error once the buffer is drained. Lock held.
        """
        buffer = self.buffer
        if buffer:
            value = buffer.popleft()
            if self.waiting_putters:
                self.not_full.notify()
            if self.watchers:
                self._wake_watchers()
            return True, value
        if self.closed:
            error = self.error
            if error is not None:
                self.error = None
                try:
                    raise error
                finally:
                    # The traceback holds this frame; without this the
                    # frame and the error would keep each other alive.
                    del error
            return True, None
        return False, None

    # -- blocking forms ---------------------------------------------------

    def put(self, value: Any, timeout: Optional[float]) -> bool:
        with self.lock:
            result = self.try_put(value)
            if result is not None:
                return result
            deadline = None if timeout is None else time.monotonic() + timeout
            self.waiting_putters += 1
            try:
                while True:
                    if not self._wait(self.not_full, deadline):
                        raise TimeoutError("put timed out: the channel stayed full")
                    result = self.try_put(value)
                    if result is not None:
                        return result
            finally:
                self.waiting_putters -= 1

    def put_many(self, values: Sequence[Any]) -> bool:
        """Append a batch at once, waiting while the channel is full. Used by producers.

        The batch may overshoot ``maxsize`` by its own length; memory stays
        bounded by ``maxsize`` plus one batch.
        """
        with self.lock:
            self.waiting_putters += 1
            try:
                while not self.closed and self._full():
                    self.not_full.wait()
            finally:
                self.waiting_putters -= 1
            if self.closed:
                return False
            self.buffer.extend(values)
            self.not_empty.notify_all()
            if self.watchers:
                self._wake_watchers()
            return True

    def get(self, timeout: Optional[float]) -> Any:
        with self.lock:
            ready, value = self.try_get()
            if ready:
                return value
            deadline = None if timeout is None else time.monotonic() + timeout
            self.waiting_getters += 1
            try:
                while True:
                    if not self._wait(self.not_empty, deadline):
                        raise TimeoutError("get timed out: nothing arrived")
                    ready, value = self.try_get()
                    if ready:
                        return value
            finally:
                self.waiting_getters -= 1

    @staticmethod
    def _wait(condition: threading.Condition, deadline: Optional[float]) -> bool:
        if deadline is None:
            condition.wait()
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        # Waits longer than TIMEOUT_MAX (an infinite timeout, say) raise OverflowError.
        condition.wait(min(remaining, _WAIT_MAX))
        return True

    def close(self, error: Optional[BaseException] = None, discard: bool = False) -> bool:
        """Close; True if this call closed it. The consumer gets ``error`` after the buffer."""
        with self.lock:
            if self.closed:
                return False
            self.closed = True
            self.error = error
            if discard:
                self.buffer.clear()
            self.not_empty.notify_all()
            self.not_full.notify_all()
            self._wake_watchers()
            callback, self.on_close = self.on_close, None
        if callback is not None:
            callback()
        return True


class Channel(Generic[T]):
    """A thread-safe FIFO channel with an optional capacity, closable once.

    Args:
        maxsize: how many values may wait in the channel; ``put`` blocks while
            it is full. 0 (the default) means no limit.

    ``None`` is the "closed" signal of :meth:`get`, so it may not be put.
    Closing wakes every blocked putter (their ``put`` returns False) and every
    blocked getter; values already in the channel can still be taken, then
    ``get`` returns ``None``. A producer may close the channel with an error
    (:meth:`close_with_error`): the consumer gets every earlier value first,
    then the error is raised once, and afterwards the channel reads as closed.

    Example:
        >>> channel = Channel(maxsize=2)
        >>> channel.put("a")
        True
        >>> channel.close()
        >>> channel.get(), channel.get()
        ('a', None)
    """

    __slots__ = ("_state", "__weakref__")

    def __init__(self, maxsize: int = 0) -> None:
        if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 0:
            raise ValueError(f"maxsize must be a whole number >= 0 (0: unbounded), not {maxsize!r}")
        self._state = _ChannelState(maxsize)

    def put(self, value: T, timeout: Optional[float] = None) -> bool:
        """Put ``value``, waiting while the channel is full.

        Returns:
            True when the value was put, False when the channel is (or
            becomes, while waiting) closed.

        Raises:
            ValueError: ``value`` is None.
            TimeoutError: the channel stayed full for ``timeout`` seconds.
        """
        if value is None:
            raise ValueError("None cannot be put on a channel: it is the closed signal")
        return self._state.put(value, timeout)

    def put_nowait(self, value: T) -> bool:
        """Put ``value`` if there is room, without waiting.

        Returns:
            True when put; False when the channel is closed.

        Raises:
            ValueError: ``value`` is None.
            TimeoutError: the channel is full.
        """
        if value is None:
            raise ValueError("None cannot be put on a channel: it is the closed signal")
        state = self._state
        with state.lock:
            result = state.try_put(value)
        if result is None:
            raise TimeoutError("the channel is full")
        return result

    def get(self, timeout: Optional[float] = None) -> Optional[T]:
        """Take the next value, waiting while the channel is empty.

        Returns:
            The value, or ``None`` once the channel is closed and drained.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            LitestreamError: the producer closed the channel with an error
                (raised once, after every earlier value).
        """
        return self._state.get(timeout)

    def get_nowait(self) -> Optional[T]:
        """Take a value if one is ready, without waiting.

        Returns:
            The value, or ``None`` once the channel is closed and drained.

        Raises:
            TimeoutError: the channel is empty and open.
            LitestreamError: the producer closed the channel with an error
                (raised once, after every earlier value).
        """
        state = self._state
        with state.lock:
            ready, value = state.try_get()
        if not ready:
            raise TimeoutError("the channel is empty")
        return value

    def close(self) -> None:
        """Close the channel; idempotent. Blocked putters and getters wake at once."""
        self._state.close()

    def close_with_error(self, error: BaseException) -> bool:
        """Close the channel so that the consumer gets ``error`` after the values already in it.

        Returns False (and drops ``error``) when the channel was already closed.
        """
        return self._state.close(error)

    @property
    def closed(self) -> bool:
        """True once the channel is closed (values may still be waiting in it)."""
        return self._state.closed

    @property
    def maxsize(self) -> int:
        """The capacity; 0 means unbounded."""
        return self._state.maxsize

    def qsize(self) -> int:
        """How many values wait in the channel now."""
        return len(self._state.buffer)

    def statistics(self) -> ChannelStatistics:
        """Return a snapshot of the channel's size, state and waiters, for debugging."""
        state = self._state
        with state.lock:
            return ChannelStatistics(
                size=len(state.buffer),
                maxsize=state.maxsize,
                closed=state.closed,
                pending_error=state.error is not None,
                waiting_getters=state.waiting_getters,
                waiting_putters=state.waiting_putters,
                watchers=len(state.watchers),
            )

    def __iter__(self) -> Iterator[T]:
        """Yield values until the channel is closed and drained (raising a producer's error)."""
        get = self._state.get
        while True:
            value = get(None)
            if value is None:
                return
            yield value

    def __enter__(self) -> Channel[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._state
        capacity = state.maxsize if state.maxsize > 0 else "unbounded"
        status = "closed" if state.closed else "open"
        return f"<{type(self).__name__} {status} size={len(state.buffer)} maxsize={capacity}>"


# ---------------------------------------------------------------------------
# alts
# ---------------------------------------------------------------------------

#: One thing :func:`alts` may do: take from a channel, or put ``(channel, value)``.
Operation = Union[Channel[Any], "tuple[Channel[Any], Any]"]
# What alts works through: (state, channel, is_put, value to put).
_Operation = Tuple[_ChannelState, Channel[Any], bool, Any]


def alts(
    operations: Iterable[Operation],
    timeout: Optional[float] = None,
    default: Any = _UNSET,
    priority: bool = False,
) -> tuple[Any, Optional[Channel[Any]]]:
    """Wait for the first of several channel operations that can complete, like ``alts!!``.

    Each operation is either a channel (take a value) or a ``(channel,
    value)`` pair (put ``value``). The first one ready completes and the
    others do nothing.

    Args:
        operations: channels to take from and ``(channel, value)`` pairs to put.
        timeout: seconds to wait at most; a :func:`timeout` channel in the
            list does the same and returns instead of raising.
        default: when given, return ``(default, None)`` at once if no
            operation is ready.
        priority: choose the first ready operation in list order instead of
            at random (random choice keeps busy channels from starving others).

    Returns:
        ``(value, channel)`` for a take, where ``value`` is None when the
        channel is closed; ``(True, channel)`` for a put, or ``(False,
        channel)`` when that channel is closed.

    Raises:
        TimeoutError: nothing was ready within ``timeout``.
        LitestreamError: a stream failed; the error's ``.channel`` is that
            stream, so a loop over several streams can drop it and go on.
        ValueError: no operations, or a put of None.
    """
    ops: list[_Operation] = []
    for operation in operations:
        if isinstance(operation, tuple):
            channel, value = operation
            if value is None:
                raise ValueError("None cannot be put on a channel: it is the closed signal")
            ops.append((channel._state, channel, True, value))
        else:
            ops.append((operation._state, operation, False, None))
    if not ops:
        raise ValueError("alts needs at least one channel")
    deadline = None if timeout is None else time.monotonic() + timeout
    candidates = ops if priority else random.sample(ops, len(ops))
    done, result = _attempt(candidates)
    if done:
        return result
    if default is not _UNSET:
        return default, None
    watcher = _Watcher()
    # Only an operation on a channel that fired since the last look can have
    # become ready, so after one full look the wait only re-checks those.
    ops_by_state: dict[_ChannelState, list[_Operation]] = {}
    for op in ops:
        ops_by_state.setdefault(op[0], []).append(op)
    states = list(ops_by_state)
    for state in states:
        state.watchers.add(watcher)
    try:
        # Look once more (in the same order): a value put before the watcher
        # was added is not missed.
        while True:
            done, result = _attempt(candidates)
            if done:
                return result
            if deadline is None:
                watcher.event.wait()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"alts: no channel was ready within {timeout} s")
                watcher.event.wait(min(remaining, _WAIT_MAX))
            candidates = watcher.take_fired(ops_by_state, ops, priority)
    finally:
        for state in states:
            state.watchers.discard(watcher)


class _Watcher:
    """How a waiting :func:`alts` hears that one of its channels changed.

    A channel appends its state to ``fired`` and sets ``event`` (holding its
    own lock) whenever a value arrives, room frees up or it closes. ``alts``
    adds and removes a watcher without taking each channel's lock -- set
    ``add``/``discard`` and deque ``append``/``popleft`` are atomic -- which
    keeps the cost of leaving a wait over many channels low; channels iterate
    over a copy of their watcher set for the same reason.
    """

    __slots__ = ("event", "fired")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.fired: deque[_ChannelState] = deque()

    def take_fired(
        self,
        ops_by_state: dict[_ChannelState, list[_Operation]],
        ops: list[_Operation],
        priority: bool,
    ) -> list[_Operation]:
        """Return the operations on the channels that fired since the last call."""
        # Clear before draining: a channel that fires after this sets the event
        # again, so nothing is lost; at worst the next wait returns at once.
        self.event.clear()
        fired = self.fired
        states: set[_ChannelState] = set()
        while fired:
            states.add(fired.popleft())
        if priority:
            return [op for op in ops if op[0] in states]
        candidates = [op for state in states for op in ops_by_state[state]]
        random.shuffle(candidates)
        return candidates


def _attempt(candidates: Iterable[_Operation]) -> tuple[bool, Any]:
    """Try each operation in order; ``(True, (value, channel))`` for the first that completes."""
    for state, channel, is_put, value in candidates:
        with state.lock:
            if is_put:
                result = state.try_put(value)
                ready = result is not None
            else:
                try:
                    ready, result = state.try_get()
                except BaseException as error:
                    if hasattr(error, "channel"):
                        error.channel = channel
                    raise
        if ready:
            return True, (result, channel)
    return False, None


def timeout(seconds: float) -> Channel[Any]:
    """Return a channel that closes after ``seconds``; use it in :func:`alts` to bound a wait.

    All timeout channels share one timer thread, however many are pending.

    Example:
        >>> value, channel = alts([Channel(), timeout(0.01)])
        >>> value is None
        True
    """
    channel: Channel[Any] = Channel()
    call_later(seconds, channel.close)
    return channel
