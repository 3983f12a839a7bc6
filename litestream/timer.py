"""The shared timer: one thread serving every deadline of the process.

:func:`litestream.timeout` channels, and the transport's first-chunk, idle
and total deadlines, are all callbacks on this one thread, so 10,000 pending
timeouts cost one thread, not 10,000. The thread starts with the first
pending callback and ends when none is left. This is one of the two pieces
of process-wide state in litestream (the other is the default router); it
is thread-safe.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Callable, Optional

__all__ = ["TimerHandle", "call_later"]

logger = logging.getLogger("litestream")

_WAIT_MAX = threading.TIMEOUT_MAX


class TimerHandle:
    """A scheduled callback of the shared timer; :meth:`cancel` it if it is no longer needed."""

    __slots__ = ("deadline", "callback", "active", "_timer")

    def __init__(self, deadline: float, callback: Callable[[], None], timer: _Timer) -> None:
        self.deadline = deadline
        self.callback = callback
        self.active = True
        self._timer = timer

    def cancel(self) -> None:
        """Stop the callback from running; harmless after it ran."""
        self._timer.cancel(self)


class _Timer:
    """One thread serving every pending deadline of the process.

    The thread starts with the first pending callback and ends when none is
    left, so an idle process runs no timer thread at all; when it was needed
    again right after it ended, the next one waits :data:`_LINGER` first.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._live = 0
        self._counter = itertools.count()
        self._thread: Optional[threading.Thread] = None
        #: When the last thread ended (time.monotonic()), and whether the running one lingers.
        self._ended = float("-inf")
        self._linger = False

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        if delay != delay:
            # A NaN deadline would break the heap's order and fire at a random time.
            raise ValueError("the timer's delay must be a number of seconds, not NaN")
        now = time.monotonic()
        handle = TimerHandle(now + max(0.0, delay), callback, self)
        with self._condition:
            heapq.heappush(self._heap, (handle.deadline, next(self._counter), handle))
            self._live += 1
            if self._thread is None:
                # Needed again at once after it ended: requests are being sent
                # back to back, and the next thread will wait a moment before
                # it ends (a thread's start costs ~90 µs before a request goes out).
                self._linger = now - self._ended < _LINGER
                self._thread = threading.Thread(
                    target=self._run, name="litestream-timer", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is handle:
                self._condition.notify()
        return handle

    def cancel(self, handle: TimerHandle) -> None:
        with self._condition:
            if handle.active:
                handle.active = False
                self._live -= 1
                heap = self._heap
                if self._live == 0:
                    heap.clear()
                    self._condition.notify()
                elif len(heap) > 2 * self._live + _COMPACT_SLACK:
                    # A deadline re-armed per chunk (idle timeouts) cancels far more
                    # handles than ever fire; drop them now rather than at their deadline.
                    heap[:] = [entry for entry in heap if entry[2].active]
                    heapq.heapify(heap)

    def _run(self) -> None:
        condition = self._condition
        heap = self._heap
        lingered = False
        while True:
            with condition:
                while True:
                    while heap and not heap[0][2].active:
                        heapq.heappop(heap)
                    if not heap:
                        if self._linger and not lingered:
                            lingered = True
                            condition.wait(_LINGER)
                            continue
                        self._thread = None
                        self._ended = time.monotonic()
                        return
                    lingered = False
                    remaining = heap[0][0] - time.monotonic()
                    if remaining <= 0:
                        handle = heapq.heappop(heap)[2]
                        handle.active = False
                        self._live -= 1
                        break
                    condition.wait(min(remaining, _WAIT_MAX))
            try:
                handle.callback()
            except BaseException:
                # One failing callback must not end the thread that serves every deadline.
                logger.exception("litestream timer callback failed")
            # Kept while the thread waits for the next deadline, the handle
            # would keep its callback's owner alive (a stream's deadlines, and
            # through the error they hold, the stream).
            del handle

    @property
    def thread(self) -> Optional[threading.Thread]:
        return self._thread


_COMPACT_SLACK = 1024
#: Seconds: a thread started again within this time of the last one's end
#: waits this long for a new callback, once none is pending, before it ends.
_LINGER = 0.003
_timer = _Timer()


def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
    """Run ``callback`` on the shared timer thread after ``delay`` seconds.

    The callback must be quick (close a channel, shut a socket down): every
    deadline of the process is served by this one thread. This is the
    internal scheduler under the user-facing timeouts, which are checked by
    :func:`litestream._checks.check_seconds` before they get here: a
    negative ``delay`` means "due now" (a deadline computed as already
    passed) and an infinite one never fires.

    Raises:
        ValueError: ``delay`` is NaN.
    """
    return _timer.call_later(delay, callback)
