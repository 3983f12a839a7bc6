"""One thread that watches idle readers' sockets while many streams read at once.

A reader thread normally waits for its next bytes blocked in ``recv``: the
lowest latency for one stream. With hundreds of streams that get bytes at
the same moment (a thousand streams through ``merge``), every one of those
threads returns from ``recv`` together and queues for the GIL, whose
waiters wake every switch interval (5 ms) to demand it: the process then
spends more CPU on that convoy than on the chunks.

So once more than :data:`POLL_THRESHOLD` readers are open, a reader that is
about to wait for bytes waits on its own lock instead, and one poller thread
(``epoll``) watches the sockets. When sockets become readable the poller
lets at most :data:`TURNS` of their readers run; a reader that has read and
parsed its bytes hands its turn to the next ready one (:meth:`Ticket.end_turn`),
so only a few reader threads are runnable at any time, however many sockets
are ready.

A turn is never held across anything that may block: the reader ends it
before it puts chunks into its channel (a full channel waits for the
consumer) and before any read that does not wait for the poller first.

A socket that is shut down (``close()``, a deadline) is readable, so a
reader waiting here wakes for it as for bytes, ahead of the readers waiting
for their turn with data. The thread starts with the first waiting reader
and ends once none has waited for :data:`_LINGER` seconds; it holds file
descriptor numbers only, never a socket object.

A reader may also *park* instead of waiting (:meth:`Ticket.park`): its
stream then holds no thread while it waits. When its turn comes the poller
calls the ``resume`` it was given (outside the poller's lock), which runs the
stream's next read in whatever reader thread is free
(:mod:`litestream._reader`, :mod:`litestream._workers`). A thousand idle
streams then need no thousand parked threads, and a thread whose stream has
ended goes on with another stream's read instead of ending.

Linux only (``select.epoll``); elsewhere every reader blocks in ``recv``.
"""

from __future__ import annotations

import os
import select
import threading
from collections import deque
from typing import Callable, Optional

__all__ = ["POLL_THRESHOLD", "TURNS", "Ticket", "crowded", "ticket"]

#: Readers wait through the poller while more than this many are open. Below
#: it a reader blocks in ``recv`` (one wake-up less per read); at 100 streams
#: the poller already costs less CPU per chunk, at 30 it is even.
POLL_THRESHOLD = 32
#: The most polled readers that run (read and parse) at once. One: parsing
#: holds the GIL anyway, and with parked streams a second turn only adds a
#: thread that waits for it (measured, 1,000 streams through merge: CPU per
#: chunk 0.68x one stream's with one turn, 0.58x with two).
TURNS = 1
#: Seconds the poller thread waits with no reader waiting before it ends.
_LINGER = 0.01
_MAX_EVENTS = 1024

_AVAILABLE = hasattr(select, "epoll")
if _AVAILABLE:
    _WATCH = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT
    # A socket shut down (by close() or a deadline) or failed: its reader only
    # has to notice, so it goes before the readers that have bytes to parse.
    _URGENT = select.EPOLLHUP | select.EPOLLERR

# Ticket states.
_IDLE, _ARMED, _READY, _RUNNING = range(4)


class Ticket:
    """One reader's place at the poller: its socket's descriptor and the lock it sleeps on.

    Used by the thread running the reader only, one at a time (the poller
    moves it from waiting to running). Every method is cheap when the
    poller is not in use: :meth:`wait` and :meth:`park` return at once
    below the threshold.
    """

    __slots__ = ("fd", "state", "gate", "epoll", "resume", "_poller")

    def __init__(self, poller: _Poller, fd: int) -> None:
        self.fd = fd
        self.state = _IDLE
        self.gate = threading.Lock()
        self.gate.acquire()
        #: The epoll object the descriptor is registered with, if any.
        self.epoll: Optional[select.epoll] = None
        #: What to call, instead of releasing ``gate``, when a parked reader's turn comes.
        self.resume: Optional[Callable[[], None]] = None
        self._poller = poller

    def wait(self) -> None:
        """Return once the socket is readable and it is this reader's turn.

        Returns at once, with nothing waited for, while no more than
        :data:`POLL_THRESHOLD` readers are open: the read then blocks in
        ``recv`` as usual.
        """
        poller = self._poller
        if poller.open <= POLL_THRESHOLD or self.state != _IDLE:
            return
        if not poller.arm(self):
            return
        self.gate.acquire()

    def park(self, resume: Callable[[], None]) -> bool:
        """Wait for the socket without a thread: ``resume()`` runs when the turn comes.

        Returns False, with nothing armed, while no more than
        :data:`POLL_THRESHOLD` readers are open or when the socket cannot be
        watched: the caller then reads at once, blocking in ``recv``. Once
        it returns True the caller must not touch the reader's state again:
        ``resume`` may already run in another thread. ``resume`` is called
        from the thread that grants the turn, outside the poller's lock,
        and must not block.
        """
        poller = self._poller
        if poller is None or poller.open <= POLL_THRESHOLD or self.state != _IDLE:
            return False
        self.resume = resume
        if poller.arm(self):
            return True
        self.resume = None
        return False

    def end_turn(self) -> None:
        """Let the next ready reader run: this one has read and parsed its bytes."""
        if self.state == _RUNNING:
            self._poller.end_turn(self)

    def close(self) -> None:
        """Leave the poller (before the socket is closed or goes back to the pool).

        Ends the turn if this reader holds one. Idempotent.
        """
        poller = self._poller
        if poller is not None:
            self._poller = None  # type: ignore[assignment]
            poller.leave(self)


class _Poller:
    """The process's poller: the epoll set, the ready queue and the turns."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: Open tickets (readers of plain sockets between their first read and their end).
        self.open = 0
        self.armed = 0
        self.running = 0
        self.ready: deque[Ticket] = deque()
        self.tickets: dict[int, Ticket] = {}
        self.epoll: Optional[select.epoll] = None
        self.thread: Optional[threading.Thread] = None

    def ticket(self, fd: int) -> Ticket:
        new = Ticket(self, fd)
        with self.lock:
            self.open += 1
        return new

    def arm(self, ticket: Ticket) -> bool:
        """Watch ``ticket``'s socket (starting the thread if needed); False if that failed."""
        with self.lock:
            epoll = self.epoll
            if epoll is None:
                epoll = self.epoll = select.epoll()
                self.thread = threading.Thread(target=self._run, args=(epoll,),
                                               name="litestream-poller", daemon=True)
                self.thread.start()
            try:
                if ticket.epoll is epoll:
                    epoll.modify(ticket.fd, _WATCH)  # re-arm (one-shot)
                else:
                    epoll.register(ticket.fd, _WATCH)
                    ticket.epoll = epoll
            except OSError:
                return False  # a closed descriptor: the read itself will say so
            self.tickets[ticket.fd] = ticket
            ticket.state = _ARMED
            self.armed += 1
            return True

    def end_turn(self, ticket: Ticket) -> None:
        with self.lock:
            ticket.state = _IDLE
            self.running -= 1
            resumes = self._grant()
        if resumes:
            _call_each(resumes)

    def leave(self, ticket: Ticket) -> None:
        resumes = None
        with self.lock:
            self.open -= 1
            if ticket.state == _RUNNING:
                self.running -= 1
                resumes = self._grant()
            ticket.state = _IDLE
            ticket.resume = None
            if self.tickets.get(ticket.fd) is ticket:
                del self.tickets[ticket.fd]
            epoll = ticket.epoll
            ticket.epoll = None
            if epoll is not None and epoll is self.epoll:
                try:
                    epoll.unregister(ticket.fd)
                except (OSError, ValueError):
                    pass  # already gone with its socket
        if resumes:
            _call_each(resumes)

    def _grant(self) -> Optional[list[Callable[[], None]]]:
        """Give free turns to ready readers; return the parked ones' resumes (lock held).

        The caller calls them once it has released the lock.
        """
        ready = self.ready
        resumes = None
        while self.running < TURNS and ready:
            ticket = ready.popleft()
            ticket.state = _RUNNING
            self.running += 1
            resume = ticket.resume
            if resume is None:
                ticket.gate.release()
                continue
            ticket.resume = None
            if resumes is None:
                resumes = [resume]
            else:
                resumes.append(resume)
        return resumes

    def _run(self, epoll: select.epoll) -> None:
        tickets = self.tickets
        ready = self.ready
        while True:
            try:
                events = epoll.poll(-1 if self.armed else _LINGER, _MAX_EVENTS)
            except InterruptedError:  # pragma: no cover - PEP 475 retries these
                continue
            with self.lock:
                if self.epoll is not epoll:
                    return  # replaced after a fork
                for fd, mask in events:
                    ticket = tickets.get(fd)
                    if ticket is None or ticket.state != _ARMED:
                        continue
                    ticket.state = _READY
                    self.armed -= 1
                    if mask & _URGENT:
                        ready.appendleft(ticket)
                    else:
                        ready.append(ticket)
                resumes = self._grant() if events else None
                if not events and not self.armed:
                    # Nobody waited for a while: end, and let the next waiter start a thread.
                    self.epoll = None
                    self.thread = None
                    tickets.clear()
                    epoll.close()
                    return
            if resumes:
                _call_each(resumes)


def _call_each(resumes: list[Callable[[], None]]) -> None:
    # A resume hands a parked stream to a reader thread; it deals with its own failures.
    for resume in resumes:
        resume()


_poller = _Poller()


def crowded() -> bool:
    """Tell whether more than :data:`POLL_THRESHOLD` readers are open (their reads are polled).

    Then the GIL goes round many reader threads anyway: a reader has no
    reason to hand it over on purpose.
    """
    return _poller.open > POLL_THRESHOLD


def ticket(fd: int) -> Optional[Ticket]:
    """Return a ticket for the reader of the plain socket ``fd`` (None where epoll is missing).

    The caller must :meth:`~Ticket.close` it before the socket is closed or
    released to the connection pool.
    """
    if not _AVAILABLE:
        return None
    return _poller.ticket(fd)


#: Pollers replaced after a fork, kept: freeing one would close the parked
#: streams it holds, whose readers (and their lock) belong to the parent.
_orphans: list[_Poller] = []


def _new_poller() -> None:
    # A child process shares the parent's epoll set through the inherited
    # descriptor: it must never touch it, and its lock may have been held.
    global _poller
    old, _poller = _poller, _Poller()
    if old.epoll is not None:
        old.epoll.close()
    if old.tickets:
        _orphans.append(old)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_poller)
