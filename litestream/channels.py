"""Channels: bounded, closable, thread-safe queues, with ``alts`` and ``timeout``.

This is litestream's answer to core.async for plain blocking code. A
:class:`Channel` is a FIFO with an optional capacity: ``put`` blocks while it
is full (backpressure), ``get`` blocks while it is empty, and ``close`` ends it
for everybody at once. :func:`alts` waits on several channels and returns the
first that is ready, and :func:`timeout` gives a channel that closes after a
delay, so ``alts([stream, timeout(5)])`` bounds a wait.

Handles come in two kinds, as trio's memory channels do: a
:class:`ReceiveChannel` can only be read and closed -- that is what a
:class:`~litestream.Stream` is, so code holding a stream cannot inject values
into it -- and a :class:`Channel` adds the writing side, for users' own
pipelines. Producers inside litestream write through a private sender over
the channel's state, never through a method of the handle.

The module knows nothing of HTTP. Everything here waits on condition
variables and events, never by polling.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Any, Generic, Iterator, Optional, Sequence, Tuple, TypeVar, Union

from litestream._channel_state import ChannelStatistics, _ChannelState
from litestream._channel_state import _Sender as _Sender  # what producers write through
from litestream._checks import check_maxsize, check_seconds, describe
from litestream.timer import call_later

__all__ = [
    "Channel",
    "ChannelStatistics",
    "ReceiveChannel",
    "alts",
    "timeout",
]

T = TypeVar("T")


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()
_WAIT_MAX = threading.TIMEOUT_MAX


class ReceiveChannel(Generic[T]):
    """The receive side of a channel: read it, close it, nothing that writes.

    What :func:`~litestream.completion`, the router and
    :func:`~litestream.merge` return is a ``ReceiveChannel``; a
    :class:`Channel` is one too, with ``put`` added. :func:`alts` and
    :func:`~litestream.merge` take any of them.

    ``get`` returns ``None`` once the channel is closed and every value in it
    was taken. If the producer ended with an error, that error is raised
    once, after every earlier value, and the channel reads as closed
    afterwards. ``close()`` is idempotent and wakes every blocked reader;
    what closing does to the producer (cancel an HTTP request, say) is up to
    the subclass. Subclasses are created by litestream: a ``ReceiveChannel``
    built directly has no writer and is only useful to close.
    """

    __slots__ = ("_state", "__weakref__")

    def __init__(self, maxsize: int = 0) -> None:
        self._state: Any = _ChannelState(check_maxsize(maxsize))

    def get(self, timeout: Optional[float] = None) -> Optional[T]:
        """Take the next value, waiting while the channel is empty.

        Args:
            timeout: seconds to wait at most; None waits without limit.

        Returns:
            The value, or ``None`` once the channel is closed and drained.

        Raises:
            TimeoutError: nothing arrived within ``timeout`` seconds.
            TypeError, ValueError: ``timeout`` is not None or a finite
                number >= 0.
            LitestreamError: the producer closed the channel with an error
                (raised once, after every earlier value).
        """
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
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
        ready, value = self._state.take()
        if not ready:
            raise TimeoutError("the channel is empty")
        return value

    def close(self) -> None:
        """Close the channel; idempotent. Blocked readers (and writers) wake at once."""
        self._state.close()

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
        return self._state.size()

    def statistics(self) -> ChannelStatistics:
        """Return a snapshot of the channel's size, state and waiters, for debugging."""
        return self._state.statistics()

    def __iter__(self) -> Iterator[T]:
        """Yield values until the channel is closed and drained (raising a producer's error)."""
        state = self._state
        get = state.get
        if type(state) is not _ChannelState:
            while True:
                value = get(None)
                if value is None:
                    return
                yield value
        # The common case inlined: a value is there (what try_get does, without
        # two calls per value); an empty channel takes the blocking path.
        lock = state.lock
        buffer = state.buffer
        maxsize = state.maxsize
        while True:
            with lock:
                if buffer:
                    value = buffer.popleft()
                    if state.waiting_putters and not 0 < maxsize <= len(buffer):
                        state.not_full.notify()
                    if state.watchers:
                        state._wake_watchers()
                else:
                    value = None
            if value is None:
                value = get(None)
                if value is None:
                    return
            yield value

    def __enter__(self) -> ReceiveChannel[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._state
        capacity = state.maxsize if state.maxsize > 0 else "unbounded"
        status = "closed" if state.closed else "open"
        return f"<{type(self).__name__} {status} size={state.size()} maxsize={capacity}>"


class Channel(ReceiveChannel[T]):
    """A thread-safe FIFO channel with an optional capacity, closable once.

    Args:
        maxsize: how many values may wait in the channel; ``put`` blocks while
            it is full. 0 (the default) means no limit.

    Raises:
        ValueError: ``maxsize`` is not a whole number >= 0.

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

    __slots__ = ()

    def put(self, value: T, timeout: Optional[float] = None) -> bool:
        """Put ``value``, waiting while the channel is full.

        Args:
            value: anything but None.
            timeout: seconds to wait for room at most; None waits without limit.

        Returns:
            True when the value was put, False when the channel is (or
            becomes, while waiting) closed.

        Raises:
            ValueError: ``value`` is None, or ``timeout`` is negative, NaN
                or infinite.
            TypeError: ``timeout`` is not a number.
            TimeoutError: the channel stayed full for ``timeout`` seconds.
        """
        if value is None:
            raise ValueError("None cannot be put on a channel: it is the closed signal")
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
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

    def close_with_error(self, error: BaseException) -> bool:
        """Close the channel so that the consumer gets ``error`` after the values already in it.

        Returns False (and drops ``error``) when the channel was already closed.
        """
        return self._state.close(error)


# ---------------------------------------------------------------------------
# alts
# ---------------------------------------------------------------------------

#: One thing :func:`alts` may do: take from a channel, or put ``(channel, value)``.
Operation = Union[ReceiveChannel[Any], "tuple[Channel[Any], Any]"]
# What alts works through: (state, channel, is_put, value to put, position in the list).
_Operation = Tuple[Any, ReceiveChannel[Any], bool, Any, int]
_WANTED = "a list or tuple of channels and (channel, value) pairs"


def _operations(operations: object) -> list[_Operation]:
    """Check what :func:`alts` was given, before anything is taken or put."""
    if not isinstance(operations, (list, tuple)):
        raise TypeError(f"alts takes {_WANTED}, not {describe(operations)}")
    ops: list[_Operation] = []
    for index, operation in enumerate(operations):
        if isinstance(operation, ReceiveChannel):
            ops.append((operation._state, operation, False, None, index))
            continue
        if (isinstance(operation, tuple) and len(operation) == 2
                and isinstance(operation[0], ReceiveChannel)):
            channel, value = operation
            if not isinstance(channel, Channel):
                raise TypeError(
                    f"alts cannot put on {describe(channel)}: it is receive-only; "
                    f"puts need a Channel"
                )
            if value is None:
                raise ValueError("None cannot be put on a channel: it is the closed signal")
            ops.append((channel._state, channel, True, value, index))
            continue
        raise TypeError(
            f"alts takes {_WANTED}; item {index} is {describe(operation)}"
        )
    if not ops:
        raise ValueError("alts needs at least one channel")
    return ops


def alts(
    operations: Sequence[Operation],
    timeout: Optional[float] = None,
    default: Any = _UNSET,
    priority: bool = False,
) -> tuple[Any, Optional[ReceiveChannel[Any]]]:
    """Wait for the first of several channel operations that can complete, like ``alts!!``.

    Each operation is either a receive channel (take a value) or a
    ``(channel, value)`` pair (put ``value`` on a :class:`Channel`). The
    first one ready completes and the others do nothing.

    Fairness: without ``priority``, each call looks at every operation once
    (no lock taken on those not ready) and picks uniformly at random among
    the ready ones, so a busy channel cannot starve the others. Once waiting,
    only the channels that signalled are looked at again.

    To read many channels for a long time, :func:`~litestream.merge` costs
    O(1) per value where ``alts`` costs O(number of channels) per call.

    Args:
        operations: a list or tuple of receive channels to take from and
            ``(channel, value)`` pairs to put.
        timeout: seconds to wait at most; a :func:`timeout` channel in the
            list does the same and returns instead of raising.
        default: when given, return ``(default, None)`` at once if no
            operation is ready.
        priority: choose the first ready operation in list order instead of
            at random.

    Returns:
        ``(value, channel)`` for a take, where ``value`` is None when the
        channel is closed; ``(True, channel)`` for a put, or ``(False,
        channel)`` when that channel is closed.

    Raises:
        TypeError: ``operations`` is not a list or tuple of channels and
            pairs, a put targets a receive-only channel, or ``timeout`` is
            not a number. Nothing is taken or put first.
        ValueError: no operations, a put of None, or a negative, NaN or
            infinite ``timeout``.
        TimeoutError: nothing was ready within ``timeout``.
        LitestreamError: a stream failed; the error's ``.channel`` is that
            stream, so a loop over several streams can drop it and go on.
    """
    ops = _operations(operations)
    if timeout is not None:
        timeout = check_seconds("timeout", timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    done, result = _attempt(ops, priority)
    if done:
        return result
    if default is not _UNSET:
        return default, None
    watcher = _Watcher()
    # Only an operation on a channel that fired since the last look can have
    # become ready, so after one full look the wait only re-checks those.
    ops_by_state: dict[Any, list[_Operation]] = {}
    for op in ops:
        ops_by_state.setdefault(op[0], []).append(op)
    states = list(ops_by_state)
    for state in states:
        state.watchers.add(watcher)
    try:
        # Look once more: a value put before the watcher was added is not missed.
        candidates = ops
        while True:
            done, result = _attempt(candidates, priority)
            if done:
                return result
            if deadline is None:
                watcher.event.wait()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"alts: no channel was ready within {timeout} s")
                watcher.event.wait(min(remaining, _WAIT_MAX))
            candidates = watcher.take_fired(ops_by_state, priority)
    finally:
        for state in states:
            state.watchers.discard(watcher)


class _Watcher:
    """How a waiting :func:`alts` hears that one of its channels changed.

    A channel calls :meth:`notify` (holding its own lock) whenever a value
    arrives, room frees up or it closes. ``alts`` adds and removes a watcher
    without taking each channel's lock -- set ``add``/``discard`` and deque
    ``append``/``popleft`` are atomic -- which keeps leaving a wait over many
    channels cheap.
    """

    __slots__ = ("event", "fired")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.fired: deque[Any] = deque()

    def notify(self, state: Any) -> None:
        self.fired.append(state)
        self.event.set()

    def take_fired(
        self, ops_by_state: dict[Any, list[_Operation]], priority: bool
    ) -> list[_Operation]:
        """Return the operations on the channels that fired since the last call."""
        # Clear before draining: a channel that fires after this sets the event
        # again, so nothing is lost; at worst the next wait returns at once.
        self.event.clear()
        fired = self.fired
        states: set[Any] = set()
        while fired:
            states.add(fired.popleft())
        candidates = [op for state in states for op in ops_by_state[state]]
        if priority and len(candidates) > 1:
            candidates.sort(key=lambda op: op[4])
        return candidates


def _attempt(candidates: list[_Operation], priority: bool) -> tuple[bool, Any]:
    """Complete one ready operation: ``(True, (value, channel))``, or ``(False, None)``.

    Readiness is peeked without locks, then confirmed under the channel's
    lock, so the operations that are not ready cost no lock at all.
    """
    ready = [op for op in candidates if (op[0].puttable() if op[2] else op[0].takeable())]
    while ready:
        if priority or len(ready) == 1:
            index = 0
        else:
            index = random.randrange(len(ready))
        op = ready[index]
        done, result = _complete(op)
        if done:
            return True, result
        # Taken by someone else in between: drop it, keeping list order.
        del ready[index]
    return False, None


def _complete(op: _Operation) -> tuple[bool, Any]:
    state, channel, is_put, value, _ = op
    if is_put:
        with state.lock:
            result = state.try_put(value)
        return result is not None, (result, channel)
    try:
        ready, result = state.take()
    except BaseException as error:
        if hasattr(error, "channel"):
            error.channel = channel
        raise
    return ready, (result, channel)


def timeout(seconds: float) -> Channel[Any]:
    """Return a channel that closes after ``seconds``; use it in :func:`alts` to bound a wait.

    All timeout channels share one timer thread, however many are pending.

    Raises:
        TypeError: ``seconds`` is not a number (None included).
        ValueError: ``seconds`` is negative, NaN or infinite.

    Example:
        >>> value, channel = alts([Channel(), timeout(0.01)])
        >>> value is None
        True
    """
    if seconds is None:
        raise TypeError("timeout() needs a number of seconds, not None")
    delay = check_seconds("seconds", seconds)
    channel: Channel[Any] = Channel()
    call_later(delay, channel._state.close)
    return channel
