"""The deadlines of one request: total, first content (or first byte) and idle.

They need no thread of their own: each is a timer of the shared timer
thread (:mod:`litestream.timer`). When one passes, :class:`Deadlines` hands
its error to the ``fire`` callback, which shuts the request's socket down.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import attrs

from litestream import errors
from litestream.options import Timeouts
from litestream.timer import TimerHandle, call_later

__all__ = ["Deadlines", "STREAM_WORDING", "WHOLE_BODY_WORDING"]


@attrs.frozen
class Wording:
    """How each deadline's error message reads (``{seconds}`` is filled in)."""

    total: str
    first: str
    idle: str


STREAM_WORDING = Wording(
    total="the stream took longer than its timeout of {seconds} s",
    first="no content arrived within the first-chunk timeout of {seconds} s",
    idle="no content arrived for the idle timeout of {seconds} s",
)
WHOLE_BODY_WORDING = Wording(
    total="no complete response within {seconds} s",
    first="no response within {seconds} s",
    idle="no bytes of the response arrived for the idle timeout of {seconds} s",
)


class Deadlines:
    """The total, first-content and idle deadlines of one request.

    ``start()`` arms the total and first-content deadlines;
    ``content_arrived()`` marks progress (the first call arms the idle
    deadline); ``stop()`` cancels them all and no new one is armed after.
    The first deadline to pass is kept in ``error`` and given to ``fire``.

    Args:
        timeouts: the call's timeouts.
        fire: called (on the timer thread) with the error of the deadline that passed.
        provider: for the errors.
        model: for the errors.
        wording: the messages of the errors.
        total: the total deadline, when it differs from ``timeouts.total``.
    """

    def __init__(self, timeouts: Timeouts, fire: Callable[[errors.LitestreamError], None],
                 provider: str, model: str, wording: Wording = STREAM_WORDING,
                 total: Optional[float] = None) -> None:
        self.timeouts = timeouts
        self.total = timeouts.total if total is None else total
        self.fire = fire
        self.fields = {"provider": provider, "model": model}
        self.wording = wording
        self.lock = threading.Lock()
        self.stopped = False
        self.timers: list[TimerHandle] = []
        self.error: Optional[errors.LitestreamError] = None
        self.got_content = False
        self.last_content = 0.0

    def start(self) -> None:
        """Arm the total and first-content deadlines."""
        if self.total is not None:
            self._schedule(float(self.total), self._total_passed)
        if self.timeouts.first_chunk is not None:
            self._schedule(self.timeouts.first_chunk, self._first_passed)

    def content_arrived(self) -> None:
        """Mark progress: the first-content deadline no longer applies, the idle one restarts."""
        self.last_content = time.monotonic()
        if not self.got_content:
            self.got_content = True
            if self.timeouts.idle is not None:
                self._schedule(self.timeouts.idle, self._idle_check)

    def stop(self) -> None:
        """Cancel every deadline; none is armed afterwards."""
        with self.lock:
            self.stopped = True
            timers, self.timers = self.timers, []
        for timer in timers:
            timer.cancel()

    def _schedule(self, delay: float, callback: Callable[[], None]) -> None:
        with self.lock:
            if not self.stopped:
                self.timers.append(call_later(delay, callback))

    def _pass(self, error: errors.LitestreamError) -> None:
        with self.lock:
            if self.stopped or self.error is not None:
                return
            self.error = error
        self.fire(error)

    def _total_passed(self) -> None:
        self._pass(errors.TotalTimeout(self.wording.total.format(seconds=self.total),
                                       **self.fields))

    def _first_passed(self) -> None:
        if not self.got_content:
            self._pass(errors.FirstChunkTimeout(
                self.wording.first.format(seconds=self.timeouts.first_chunk), **self.fields))

    def _idle_check(self) -> None:
        idle = self.timeouts.idle
        assert idle is not None
        # The timer is not moved on every chunk (that would cost a heap
        # operation per token); it checks when it fires and re-arms itself.
        remaining = self.last_content + idle - time.monotonic()
        if remaining > 0:
            self._schedule(remaining, self._idle_check)
            return
        self._pass(errors.IdleTimeout(self.wording.idle.format(seconds=idle), **self.fields))
