"""Reader threads, kept a moment after their stream ends when streams start back to back.

Each stream is read by a thread of its own. Starting a thread costs about
0.1 ms of CPU and a round trip with the new thread (``Thread.start`` waits
until it runs): for a short answer on a kept-alive connection, a large part
of the time to first chunk. So when streams start less than :data:`LINGER`
apart, a reader thread whose stream has ended, if the latest stream started
less than :data:`LINGER` ago, waits up to :data:`LINGER` for the next one,
which is handed over with one lock release. A stream started alone gets a
new thread that ends with it, so do the streams of a burst that end long
after it, and an idle process runs no reader thread once :data:`LINGER` has
passed.

A thread waiting for a stream is named ``litestream-idle``; while it reads
one it is ``litestream-reader-<provider>``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional

__all__ = ["IDLE_NAME", "LINGER", "end_idle", "start"]

#: How long (seconds) a reader thread waits for the next stream, and how close
#: together streams must start for it to wait at all.
LINGER = 0.005
#: The name of a reader thread between two streams.
IDLE_NAME = "litestream-idle"

_Job = tuple[Callable[[], None], str, threading.Event, bool]

#: The clock that tells how close together streams start (tests replace it).
clock = time.monotonic

_lock = threading.Lock()
_idle: list[_Worker] = []
_last_start = float("-inf")


def start(target: Callable[[], None], name: str) -> threading.Event:
    """Run ``target`` in a reader thread named ``name``; return an Event set once it returned.

    An idle reader thread takes it if there is one, else a new thread does.
    """
    global _last_start
    finished = threading.Event()
    now = clock()
    with _lock:
        linger = now - _last_start < LINGER
        _last_start = now
        worker = _idle.pop() if _idle else None
        if worker is not None:
            worker.job = (target, name, finished, linger)
    if worker is not None:
        worker.wake.release()
    else:
        _Worker((target, name, finished, linger)).start()
    return finished


class _Worker(threading.Thread):
    """A reader thread: runs its stream, then perhaps the next ones, then ends."""

    def __init__(self, job: _Job) -> None:
        super().__init__(name=job[1], daemon=True)
        self.job: Optional[_Job] = job
        self.wake = threading.Lock()
        self.wake.acquire()

    def run(self) -> None:
        job = self.job
        while job is not None:
            target, name, finished, linger = job
            # Nothing of the thread's may hold the stream's reader once it is
            # done: whoever waits for ``finished`` may expect it freed.
            job = self.job = None
            self.name = name
            try:
                target()
            except BaseException:
                linger = False  # this thread ends: it must not be handed a stream
                raise
            finally:
                target = None
                # Idle, and findable as idle, before anyone learns the stream is done.
                self.name = IDLE_NAME
                if linger:
                    with _lock:
                        # Only while streams are still starting: after a burst
                        # (a thousand streams opened at once, read for seconds)
                        # none is coming, and a thousand threads waiting for
                        # one cost a wake-up each (measured: about a tenth of
                        # the aggregate rate of 1,000 streams through merge).
                        linger = clock() - _last_start < LINGER
                        if linger:
                            _idle.append(self)
                finished.set()
            job = self._next_job() if linger else None

    def _next_job(self) -> Optional[_Job]:
        """Wait up to LINGER for the next stream (this thread is in ``_idle``); None if none."""
        if self.wake.acquire(timeout=LINGER):
            return self.job
        with _lock:
            if self in _idle:
                _idle.remove(self)
                return None
        # start() took this thread between the timeout and the lock: the job is on its way.
        self.wake.acquire()
        return self.job


def end_idle() -> None:
    """End every reader thread that waits for a stream now (they end by themselves soon anyway)."""
    with _lock:
        workers = list(_idle)
        _idle.clear()
    for worker in workers:
        worker.job = None
        worker.wake.release()


def _forget_after_fork() -> None:
    # No thread but the forking one exists in the child: none is idle there.
    global _lock
    _idle.clear()
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
