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

A stream that parks (:meth:`litestream._poller.Ticket.park`, many streams
open) leaves its thread while it waits for bytes: its target returns
:data:`PARKED`, and its next read is handed to a thread with
:func:`resume`. A thread that ran such a read waits for the next one
whether or not streams are starting, :data:`LINGER` at a time for as long
as the ``busy`` test given to :func:`resume` holds (many streams still
open), up to :data:`MAX_LINGER`: streams that get their tokens in bursts
tens of milliseconds apart then reuse a few threads instead of starting
and ending some for every burst.

A resumed step that ends its turn gives it to the next parked stream, and
that stream's step is made there (the poller calls :func:`resume` from the
step's own thread): it then waits for this thread, which runs it as soon
as its own step is over, instead of waking another thread for it. Each
wake-up costs tens of microseconds in which no thread runs, and the GIL
changes hands one time less. Before a step does anything that may wait (a
read that is not the one its turn was for, a full channel, a listener's
code) it calls :func:`hand_over`, and another thread runs the next step.

A thread waiting for a stream is named ``litestream-idle``; while it reads
one it is ``litestream-reader-<provider>``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Callable, Optional

__all__ = [
    "IDLE_NAME", "LINGER", "MAX_LINGER", "PARKED", "end_idle", "hand_over", "resume", "start",
]

#: How long (seconds) a reader thread waits for the next stream, and how close
#: together streams must start for it to wait at all.
LINGER = 0.005
#: The longest a thread that ran a parked stream's read waits for the next, while ``busy``.
MAX_LINGER = 1.0
#: The name of a reader thread between two streams.
IDLE_NAME = "litestream-idle"

#: What a target returns when its stream parked: it is not finished, and goes on through
#: :func:`resume` in some thread later.
PARKED = False

Target = Callable[[], Optional[bool]]
#: For a resumed step: whether its thread should go on waiting for the next one.
Busy = Callable[[], bool]
#: For a resumed step: what to do with the error when no thread can be started for it.
Failed = Callable[[BaseException], None]
# (target, thread name, set once the target is finished, linger after it, the resumed
# step's busy test (linger whatever else happens, and longer while it holds), and what
# to do when no thread can run it)
_Job = tuple[Target, str, threading.Event, bool, Optional[Busy], Optional[Failed]]

#: Per thread: ``stepping``, true while it runs a resumed step, and ``deferred``, the
#: next step a :func:`resume` there left for it.
_local = threading.local()

#: The clock that tells how close together streams start (tests replace it).
clock = time.monotonic

_lock = threading.Lock()
_idle: list[_Worker] = []
_last_start = float("-inf")


def start(target: Target, name: str, finished: Optional[threading.Event] = None
          ) -> threading.Event:
    """Run ``target`` in a reader thread named ``name``; return an Event set once it finished.

    An idle reader thread takes it if there is one, else a new thread does.
    ``finished`` (a new Event if None) is set once ``target`` returned
    anything but :data:`PARKED`, or raised; after a ``PARKED``, by the
    :func:`resume` call that finishes it.
    """
    global _last_start
    if finished is None:
        finished = threading.Event()
    now = clock()
    with _lock:
        linger = now - _last_start < LINGER
        _last_start = now
    _run((target, name, finished, linger, None, None))
    return finished


def resume(target: Target, name: str, finished: threading.Event, busy: Busy,
           failed: Failed) -> None:
    """Run the next step of a parked stream (``target``) in a reader thread named ``name``.

    As :func:`start`, with the ``finished`` Event the stream started with.
    The thread then waits for the next step or stream: :data:`LINGER`, and
    again while ``busy()`` is true, :data:`MAX_LINGER` at the most. Called
    in a thread that runs a resumed step, the step waits for that thread
    (see the module's docstring). ``failed(error)`` is called, instead of
    running ``target``, when no thread can be started for it.
    """
    job = (target, name, finished, True, busy, failed)
    if getattr(_local, "stepping", False) and getattr(_local, "deferred", None) is None:
        _local.deferred = job
    else:
        _launch(job)


def hand_over() -> None:
    """Let another thread run the step left for this one (see :func:`resume`), now.

    For a step about to do something that may wait: the stream whose turn
    came must not wait with it. Does nothing when no step was left here.
    """
    job = getattr(_local, "deferred", None)
    if job is not None:
        _local.deferred = None
        _launch(job)


def _launch(job: _Job) -> None:
    try:
        _run(job)
    except BaseException as error:  # no thread to be had
        failed = job[5]
        if failed is None:
            raise
        failed(error)


def _run(job: _Job) -> None:
    with _lock:
        worker = _idle.pop() if _idle else None
        if worker is not None:
            worker.job = job
    if worker is not None:
        worker.wake.release()
    else:
        _Worker(job).start()


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
            target, name, finished, linger, busy, _failed = job
            # Nothing of the thread's may hold the stream's reader once it is
            # done: whoever waits for ``finished`` may expect it freed.
            job = self.job = None
            self.name = name
            done = True
            raised = False
            _local.stepping = busy is not None
            try:
                done = target() is not PARKED
            except BaseException:
                raised = True
                raise
            finally:
                target = None
                _local.stepping = False
                deferred, _local.deferred = getattr(_local, "deferred", None), None
                # Idle, and findable as idle, before anyone learns the stream is done.
                self.name = IDLE_NAME
                if raised:
                    linger = False  # this thread ends: it must not be handed a stream
                    if deferred is not None:
                        _launch(deferred)
                        deferred = None
                if linger and deferred is None:
                    with _lock:
                        # Only while streams are still starting or parked ones
                        # still read: after a burst (a thousand streams opened
                        # at once, read for seconds) none is coming, and a
                        # thousand threads waiting for one cost a wake-up each
                        # (measured: about a tenth of the aggregate rate of
                        # 1,000 streams through merge).
                        linger = busy is not None or clock() - _last_start < LINGER
                        if linger:
                            _idle.append(self)
                if done:
                    finished.set()
            if deferred is not None:
                job = deferred  # the next stream's step, left for this thread
            elif linger:
                job = self._next_job(busy)

    def _next_job(self, busy: Optional[Busy]) -> Optional[_Job]:
        """Wait for the next stream (this thread is in ``_idle``); None if none came.

        LINGER, and again while ``busy()`` holds, up to MAX_LINGER in all.
        """
        waited = 0.0
        while not self.wake.acquire(timeout=LINGER):
            waited += LINGER
            if busy is None or waited >= MAX_LINGER or not busy():
                break
        else:
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
