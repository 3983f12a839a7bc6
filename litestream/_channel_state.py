"""The state behind every channel handle, and the private sender producers write through.

Kept apart from the handles (:mod:`litestream.channels`) so that a producer
thread holds only this state: the user's handle can then be
garbage-collected, and its finalizer can close the state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Generic, Optional, Sequence, TypeVar

import attrs

__all__ = ["ChannelStatistics", "wait_on"]

T = TypeVar("T")
_WAIT_MAX = threading.TIMEOUT_MAX


@attrs.frozen
class ChannelStatistics:
    """A snapshot of what a channel holds and who waits on it.

    For a :func:`~litestream.merge` channel, ``size`` counts the sources
    that have a value (or their end) ready, not the values.
    """

    size: int
    maxsize: int
    closed: bool
    pending_error: bool
    waiting_getters: int
    waiting_putters: int
    watchers: int


def wait_on(condition: threading.Condition, deadline: Optional[float]) -> bool:
    """Wait on ``condition`` (its lock held) until notified or ``deadline``; False once past it."""
    if deadline is None:
        condition.wait()
        return True
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    # Waits longer than TIMEOUT_MAX raise OverflowError.
    condition.wait(min(remaining, _WAIT_MAX))
    return True


class _ChannelState:
    """All the state of a channel, guarded by one lock.

    Kept apart from the handle so that a producer thread can hold the state
    without keeping the user's handle alive (a stream whose handle is
    garbage-collected can then be closed by a finalizer).

    ``watchers`` are objects with a ``notify(state)`` method, called with the
    lock held whenever a value arrives, one is taken or the channel closes:
    a waiting :func:`alts`, or a :func:`~litestream.merge` reading this
    channel. They are added and removed without the lock (set ``add`` and
    ``discard`` are atomic), so they are iterated over a copy.
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
        self.watchers: set[Any] = set()
        self.waiting_getters = 0
        self.waiting_putters = 0

    def _wake_watchers(self) -> None:
        for watcher in tuple(self.watchers):
            watcher.notify(self)

    def _full(self) -> bool:
        return 0 < self.maxsize <= len(self.buffer)

    def has_room(self) -> bool:
        """Tell whether a put would not wait now (a hint without the lock; only puts end it)."""
        return not self._full()

    def takeable(self) -> bool:
        """Tell whether a take would complete now; exact with the lock held, a hint without."""
        return bool(self.buffer) or self.closed

    def puttable(self) -> bool:
        """Tell whether a put would complete now (closed counts); a hint without the lock."""
        return self.closed or not self._full()

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
        """Take without waiting; the lock is held.

        Returns ``(True, value)``, ``(True, None)`` once closed and drained,
        else ``(False, None)``. Raises the pending error once drained.
        """
        buffer = self.buffer
        if buffer:
            value = buffer.popleft()
            # A putter waits only while the channel is full: waking it before
            # there is room (a batch overshoots maxsize) only makes it wait again.
            if self.waiting_putters and not self._full():
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

    def take(self) -> tuple[bool, Any]:
        """:meth:`try_get` under the lock."""
        with self.lock:
            return self.try_get()

    def take_many(self, limit: int) -> tuple[list[Any], bool, Optional[BaseException]]:
        """Take up to ``limit`` values at once: ``(values, ended, error)``.

        ``ended`` is True when the channel is closed and now drained; then
        ``error`` is its pending error (handed over once), else None.
        """
        with self.lock:
            buffer = self.buffer
            count = min(limit, len(buffer))
            values = [buffer.popleft() for _ in range(count)]
            ended = self.closed and not buffer
            error = None
            if ended:
                error, self.error = self.error, None
            if count:
                if self.waiting_putters and not self._full():
                    self.not_full.notify_all()
                if self.watchers:
                    self._wake_watchers()
            return values, ended, error

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
                    if not wait_on(self.not_full, deadline):
                        raise TimeoutError("put timed out: the channel stayed full")
                    result = self.try_put(value)
                    if result is not None:
                        return result
            finally:
                self.waiting_putters -= 1

    def put_many(self, values: Sequence[Any]) -> bool:
        """Append a batch at once, waiting while the channel is full.

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
            if self.waiting_getters:
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
                    if not wait_on(self.not_empty, deadline):
                        raise TimeoutError("get timed out: nothing arrived")
                    ready, value = self.try_get()
                    if ready:
                        return value
            finally:
                self.waiting_getters -= 1

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
        return True

    def size(self) -> int:
        return len(self.buffer)

    def statistics(self) -> ChannelStatistics:
        with self.lock:
            return ChannelStatistics(
                size=len(self.buffer),
                maxsize=self.maxsize,
                closed=self.closed,
                pending_error=self.error is not None,
                waiting_getters=self.waiting_getters,
                waiting_putters=self.waiting_putters,
                watchers=len(self.watchers),
            )


class _Sender(Generic[T]):
    """The writing end of a channel's state, for producers inside litestream.

    The reader thread, the router thread and ``accumulate_stream`` hold one
    of these (never the user's handle), so the handle they fill can be
    receive-only and can still be garbage-collected while they run.
    """

    __slots__ = ("_state",)

    def __init__(self, state: _ChannelState) -> None:
        self._state = state

    def put(self, value: T, timeout: Optional[float] = None) -> bool:
        """Put one value, waiting while full; False when the channel is closed."""
        return self._state.put(value, timeout)

    def put_many(self, values: Sequence[T]) -> bool:
        """Put a batch, waiting while full; False when the channel is closed."""
        return self._state.put_many(values)

    def has_room(self) -> bool:
        """Tell whether a put would not wait now (it stays true until the producer puts)."""
        return self._state.has_room()

    def close(self, error: Optional[BaseException] = None, discard: bool = False) -> bool:
        """Close, delivering ``error`` after the values (or dropping them with ``discard``)."""
        return self._state.close(error, discard)

    @property
    def closed(self) -> bool:
        """True once the channel is closed, by either end."""
        return self._state.closed
