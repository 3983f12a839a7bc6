"""The reader of one streaming request: the thread that fills a stream's channel.

It sends the request through the shared session (:mod:`litestream._session`),
reads the body in batches (:mod:`litestream._body`), frames the bytes into
events (:mod:`litestream.framing`), lets the provider's parser turn events
into chunks, and puts the chunks into the stream's bounded channel. Its
deadlines are :mod:`litestream._deadlines`; every exception it meets is
mapped by :mod:`litestream._exceptions`.

The reader never holds a reference to the user's stream handle: only the
channel state. So an abandoned stream is garbage-collected, and its
finalizer cancels the reader.

The reader's work is a generator (:meth:`Reader._run`) that a thread
drives. While few streams are open it runs to its end in the thread it
started in, blocking in ``recv`` between reads. While many are open
(:func:`litestream._poller.crowded`) it yields before a read that would
wait: the stream parks (:meth:`litestream._poller.Ticket.park`), its thread
is free for other streams, and when the socket is readable and a turn is
free some reader thread runs it on (:func:`litestream._workers.resume`).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import weakref
from typing import Any, Generator, Optional

from litestream import _poller, _workers, errors
from litestream._body import BodyReader, read_capped
from litestream._deadlines import Deadlines
from litestream._exceptions import error_from_response, map_exception, parse_failure
from litestream._session import AnyResponse, SocketGuard, current, release, send
from litestream.framing import DEFAULT_MAX_EVENT_SIZE, make_decoder
from litestream.listeners import CallMonitor
from litestream.options import CallOptions
from litestream.timer import call_later
from litestream.types import Chunk
from litestream.wire import Dialect, Event, EventParser, HTTPRequest

__all__ = ["Reader"]

logger = logging.getLogger("litestream")

#: After the final event, the most bytes read to reach the body's end (for reuse)...
_DRAIN_LIMIT = 65536
#: ...and the longest wait for it, in seconds.
_DRAIN_TIMEOUT = 1.0
#: Bytes of a body kept to quote when it turns out not to be a stream at all.
_EXCERPT = 200
#: Held while a reader turns one read's bytes into chunks, never while it waits.
#: Parsing is pure Python, so only one thread at a time makes progress anyway;
#: when many streams get bytes at once (1,000 readers woken together), the
#: others then sleep on this lock instead of queueing for the GIL, whose
#: waiters wake every switch interval (5 ms) to demand it -- with hundreds of
#: waiters that costs more CPU than the parsing (measured: about 1.5x the
#: aggregate throughput in bench/many_streams.py; one stream pays one
#: uncontended acquire per read).
_PARSE_GATE = threading.Lock()


def _new_parse_gate() -> None:
    # A fork while another thread held the gate would leave it held forever
    # in the child, where that thread does not exist.
    global _PARSE_GATE
    _PARSE_GATE = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_parse_gate)


class Reader:
    """The state of one streaming request, shared by the reader thread and the Stream handle."""

    def __init__(self, state: Any, http_request: HTTPRequest, provider: Dialect, model: str,
                 options: CallOptions, monitor: Optional[CallMonitor] = None) -> None:
        self.state = state
        #: The call's telemetry, or None when nobody listens.
        self.monitor = monitor
        #: True once the provider's final event (or the body's end) was read.
        self.complete = False
        self.http_request = http_request
        self.provider = provider
        self.model = model
        self.options = options
        self.lock = threading.Lock()
        self.socket_guard = SocketGuard()
        #: The answer being read (released by the thread when it ends), and its body.
        self.response: Optional[AnyResponse] = None
        self.body: Optional[BodyReader] = None
        self.cancelled = False
        self.deadlines = Deadlines(options.timeouts, self._fire, provider.name, model)
        self.retry_wait = threading.Event()
        #: The Stream's finalizer (it calls :meth:`cancel`), detached once the run is over.
        self.finalizer: Optional[weakref.finalize] = None
        #: Set once the request's work is over (None until :meth:`start`).
        self.finished: Optional[threading.Event] = None
        self._thread_name = f"litestream-reader-{provider.name}"
        #: The work (:meth:`_run`) once started, until it is over.
        self._steps: Optional[Generator[_poller.Ticket, None, None]] = None

    def start(self) -> None:
        """Run the request in a reader thread (see :mod:`litestream._workers`)."""
        self.finished = threading.Event()
        self._steps = self._run()
        _workers.start(self.run, self._thread_name, self.finished)

    @property
    def deadline_error(self) -> Optional[errors.LitestreamError]:
        """The error of the deadline that passed, if one did."""
        return self.deadlines.error

    # -- called from other threads ---------------------------------------

    def cancel(self) -> None:
        """Stop the request from any thread: shut the socket down, wake the reader."""
        with self.lock:
            if self.cancelled:
                return
            self.cancelled = True
        self.retry_wait.set()
        self.deadlines.stop()
        self.state.close(discard=True)
        self.socket_guard.stop()

    def _fire(self, error: errors.LitestreamError) -> None:
        if not self.cancelled:
            self.socket_guard.stop()

    # -- the thread --------------------------------------------------------

    def run(self) -> bool:
        """Do the request's work until it is over (True) or the stream parks (False).

        The body of a reader thread: :meth:`start` and every resume of a
        parked stream run it. Once it returned False, another thread may
        already be running it again.
        """
        steps = self._steps
        assert steps is not None, "run() before start() or after the end"
        while True:
            try:
                ticket = next(steps)
            except StopIteration:
                self._steps = None
                return True
            # This thread's sends are over: its socket guard is the stream's alone.
            current.guard = None
            if ticket.park(self._resume):
                return _workers.PARKED
            # Not parked (few streams open now): read at once, in this thread.
            _workers.hand_over()

    def _resume(self) -> None:
        # Called by the poller, outside its lock, when a parked stream's turn comes.
        assert self.finished is not None
        _workers.resume(self.run, self._thread_name, self.finished, _poller.crowded,
                        self._no_thread)

    def _no_thread(self, error: BaseException) -> None:
        """End a parked stream whose turn came but that no thread could be started for."""
        assert self.finished is not None
        steps, self._steps = self._steps, None
        try:
            if steps is not None:
                steps.throw(error)  # delivered after the chunks, then the teardown
        except StopIteration:
            pass
        except BaseException:  # never into the thread that granted the turn
            logger.exception("ending a stream that could not get a thread failed")
        finally:
            self.finished.set()

    def _run(self) -> Generator[_poller.Ticket, None, None]:
        """Run the attempts, release the connection, then close the channel.

        Yields the socket's ticket before a read that would wait for the
        poller (see :meth:`run`). The monitor's ``on_end`` fires here, once,
        before the consumer can see the end: with the error, as cancelled
        when the stream was closed before the provider's final event, else
        as complete.
        """
        reached_eof = False
        abandoned = False
        try:
            self.deadlines.start()
            reached_eof = yield from self._attempts()
        except GeneratorExit:
            # Dropped while parked, by a poller left behind in a forked child
            # or at interpreter exit: as a daemon thread there, touch nothing.
            abandoned = True
            raise
        except BaseException as error:  # delivered in order, never lost
            self._deliver_error(error)
        finally:
            if not abandoned:
                self._end(reached_eof)

    def _end(self, reached_eof: bool) -> None:
        """Release the connection (for reuse if ``reached_eof``), then close the channel."""
        self.deadlines.stop()
        if self.body is not None:
            self.body.close()  # out of the poller before the socket is released
        self.socket_guard.release()
        with self.lock:
            reusable = reached_eof and not self.cancelled
        response, self.response, self.body = self.response, None, None
        if response is not None:
            release(response, reusable)
        current.guard = None
        if self.monitor is not None:
            _workers.hand_over()  # listeners' code may wait
            self.monitor.end(None, cancelled=self.cancelled and not self.complete)
            # The call's listeners may keep its end event, whose error's
            # traceback holds the frame that holds the Stream: through the
            # Stream's finalizer (a global registry) that would keep them
            # all alive for good.
            self.monitor = None
        # Last: a consumer that sees the end and sends its next request
        # at once finds this connection back in the pool.
        self.state.close()
        if self.finalizer is not None:
            # Nothing is left to cancel. Kept, the Stream's finalizer (in a
            # global registry) would keep this reader alive, and with it
            # the error it delivered, whose traceback holds the consumer's
            # frames and so the Stream itself: never collected.
            self.finalizer.detach()

    def _attempts(self) -> Generator[_poller.Ticket, None, bool]:
        """Open the request, retrying as the retry policy says; then read the answer.

        As in the official SDKs, what is retried is a failure to get a
        successful answer (a refused or dropped connection, a retryable HTTP
        status such as 429 or 5xx), never a failure inside a stream that has
        started (the router, which holds chunks back until content, retries
        those). Returns whether the body reached EOF; the response, once
        there is one, is ``self.response``.
        """
        policy = self.options.retry
        attempts: list[str] = []
        for retry in itertools.count():
            try:
                response = self._open()
            except Exception as failure:
                error = failure if isinstance(failure, errors.LitestreamError) else map_exception(
                    failure, self.provider.name, self.model, self.deadline_error)
                errors.scrub(error, self.options.secrets)
                attempts.append(errors.error_summary(error))
                delay = None
                if self.deadline_error is None and not self.cancelled:
                    delay = policy.delay(retry, error)
                if delay is None:
                    if len(attempts) > 1:
                        error.attempts = tuple(attempts)
                    raise error from None
                logger.info("retrying %s/%s in %.2f s after %s", self.provider.name,
                            self.model, delay, attempts[-1])
                if self.monitor is not None:
                    self.monitor.retried()
                if policy.wait(delay, self.retry_wait):
                    return False
                self.socket_guard.release()
                self.socket_guard = SocketGuard()
                if self.cancelled:  # close() may have stopped the old guard meanwhile
                    return False
                continue
            self.response = response
            return (yield from self._pump(response))
        raise AssertionError("unreachable")

    def _put_many(self, chunks: list[Chunk]) -> bool:
        """Hand one read's chunks over at once, after waiting while the channel is full."""
        if self.monitor is not None:
            _workers.hand_over()  # listeners' code may wait
            self.monitor.chunks(chunks)
        elif not self.state.has_room():
            _workers.hand_over()
        return self.state.put_many(chunks)

    def _open(self) -> AnyResponse:
        http_request = self.http_request
        headers = dict(http_request.headers)
        headers.setdefault("Accept-Encoding", "identity")
        current.guard = self.socket_guard
        # No per-read timeout: the shared timer's deadlines shut the socket down.
        response = send(http_request.method, http_request.url, headers, http_request.json,
                        self.options.timeouts.connect, self.options.verify)
        error = error_from_response(response, self.provider, self.model)
        if error is not None:
            response.close()
            raise error
        content_type = response.headers.get("content-type", "").lower()
        expected = "json" if http_request.framing == "ndjson" else "event-stream"
        if content_type and expected not in content_type:
            excerpt = read_capped(BodyReader(response), _EXCERPT, truncate=True).decode(
                "utf-8", errors="replace")
            response.close()
            raise errors.ProtocolError(
                f"expected a {http_request.framing.upper()} stream but got "
                f"{content_type!r}: {excerpt!r}",
                provider=self.provider.name, model=self.model,
                status_code=response.status_code)
        return response

    def _pump(self, response: AnyResponse) -> Generator[_poller.Ticket, None, bool]:
        """Read and deliver until the provider's final event; True if the body reached EOF.

        Yields the socket's ticket before a read that would wait through
        the poller, for :meth:`run` to park the stream on.
        """
        max_event_size = self.options.max_event_size or DEFAULT_MAX_EVENT_SIZE
        decoder = make_decoder(self.http_request.framing, max_event_size)
        parser: EventParser = self.provider.stream_parser(self.model)
        body = BodyReader(response, poll=True)
        self.body = body
        unlabelled = not response.headers.get("content-type")
        excerpt = b""
        events_seen = False
        while True:
            ticket = body.park_ticket()
            if ticket is not None:
                yield ticket  # when this goes on, the read is the one the turn was for
            else:
                _workers.hand_over()  # a read that may wait
            data = body.read()
            if self.cancelled:
                return False
            if not data:
                if self.deadline_error is not None:
                    raise self.deadline_error  # the socket was shut down: not the body's end
                events = decoder.close()
                events_seen = events_seen or bool(events)
                chunks = self._parse(parser, events)
                if unlabelled and not events_seen and excerpt:
                    raise self._not_a_stream(excerpt)
                chunks.extend(parser.finish())
                self.complete = True
                if chunks:
                    self._put_many(chunks)
                    _let_the_consumer_run()
                return True
            if unlabelled and len(excerpt) < _EXCERPT:
                excerpt += data[:_EXCERPT - len(excerpt)]
            events, decode_error = decoder.decode(data)
            events_seen = events_seen or bool(events)
            delivered = self._deliver(parser, events, decode_error)
            if delivered is None:
                return False
            # A read may come from the decompressor without touching the socket:
            # a deadline must be noticed between batches all the same.
            if self.deadline_error is not None:
                raise self.deadline_error
            if parser.done:
                self.complete = True
                if delivered:
                    _let_the_consumer_run()
                if body.complete:
                    return True  # the body's end came with the final event
                # The end is delivered only after the drain (bounded by
                # _DRAIN_TIMEOUT): delivered first, a consumer dropping the
                # stream at once would cancel the drain and lose the connection,
                # and one sending its next request at once would race the release.
                return self._drain()

    def _not_a_stream(self, excerpt: bytes) -> errors.ProtocolError:
        text = excerpt.decode("utf-8", errors="replace")
        return errors.ProtocolError(
            f"expected a {self.http_request.framing.upper()} stream but got a body without "
            f"a content type and without a single event: {text!r}",
            provider=self.provider.name, model=self.model)

    def _deliver(self, parser: EventParser, events: list[Event],
                 decode_error: Optional[errors.ProtocolError]) -> Optional[int]:
        """Turn one read's events into chunks and hand them over in one batch.

        Returns how many chunks were handed over; None once the stream is closed.

        One read's chunks go over together: each hand-off between the reader
        and the consumer costs a thread wake-up (tens of microseconds when
        the other thread's core is idle), so a 64 KiB read holding hundreds
        of events is handed over once, not once per ``buffer`` chunks. The
        channel then holds at most ``buffer`` chunks plus one read's.
        ``decode_error`` (invalid UTF-8, an oversized event) came after the
        events: it is raised once they are delivered, unless the provider's
        final event came first.
        """
        chunks = self._parse(parser, events)
        if chunks:
            # Only content moves the deadlines: a provider that sends its
            # role chunk or message_start at once and then stalls has not
            # produced a first chunk.
            if any(chunk.has_content for chunk in chunks):
                self.deadlines.content_arrived()
            if not self._put_many(chunks):
                return None
        if decode_error is not None and not parser.done:
            raise decode_error
        return len(chunks)

    def _parse(self, parser: EventParser, events: list[Event]) -> list[Chunk]:
        """Return the chunks of ``events``; on bad data, deliver those before it, then raise."""
        chunks: list[Chunk] = []
        try:
            with _PARSE_GATE:
                parser.feed_many(events, chunks)
        except Exception as error:
            self._end_turn()
            if chunks:
                self._put_many(chunks)
            raise parse_failure(error, f"a {self.provider.name} event", self.provider.name,
                                self.model) from None
        self._end_turn()
        return chunks

    def _end_turn(self) -> None:
        # A polled reader has parsed its read: the next one may run while
        # this one hands its chunks over (which may wait for the consumer).
        body = self.body
        if body is not None:
            body.end_turn()

    def _drain(self) -> bool:
        """After the final event, read what is left so the connection can be reused."""
        assert self.body is not None
        _workers.hand_over()  # reads that may wait
        drain_deadline = call_later(_DRAIN_TIMEOUT, self.socket_guard.shutdown)
        try:
            received = 0
            while received <= _DRAIN_LIMIT:
                data = self.body.read()
                if not data:
                    return self.body.complete and not self.cancelled and drain_deadline.active
                received += len(data)
            return False
        except Exception:
            return False
        finally:
            drain_deadline.cancel()

    def _deliver_error(self, error: BaseException) -> None:
        # Whatever happens to it, the error must not keep this thread's
        # frames alive: they hold the response and its socket, in a cycle
        # (error -> traceback -> frame -> error) only the garbage collector
        # would break.
        _forget_frames(error)
        _workers.hand_over()  # listeners' code may wait
        if self.cancelled:
            return
        if not isinstance(error, Exception):
            logger.debug("reader stopped by %s", type(error).__name__)
        error = map_exception(error, self.provider.name, self.model, self.deadline_error)
        errors.scrub(error, self.options.secrets)  # a key a server echoed stops here
        logger.debug("stream failed: %s", errors.error_summary(error))
        _forget_frames(error)  # it crosses to the consumer's thread without them
        if self.monitor is not None:
            self.monitor.end(error)
        self.state.close(error)


def _let_the_consumer_run() -> None:
    """Hand the GIL to a consumer woken by the stream's last chunks, before tidying up.

    The reader's teardown (deadlines, connection release, the end of the
    channel) needs no blocking call, so without this the consumer, woken
    by the final put, would wait for all of it -- about 0.1 ms on a short
    answer that came in one read, which is then the time to first chunk.
    ``time.sleep(0)`` releases the GIL and takes it back (one system call
    when nobody waits for it). Not while many readers are open
    (:func:`litestream._poller.crowded`): the GIL then goes round them
    anyway, and handing it over on purpose only adds a thread switch per
    stream (measured: about 5% of the aggregate rate of 1,000 streams).
    """
    if not _poller.crowded():
        time.sleep(0)


def _forget_frames(error: BaseException) -> None:
    """Drop ``error``'s traceback and the exceptions chained to it (with theirs)."""
    chained: Optional[BaseException] = error
    while chained is not None:
        following = chained.__context__ or chained.__cause__
        chained.__traceback__ = None
        chained.__context__ = chained.__cause__ = None
        chained = following
