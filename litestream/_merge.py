"""``merge``: one receive channel of ``(source, value)`` pairs from many channels.

How it stays O(1) per value whatever the number of sources: each source
gets one watcher, registered once. When a value arrives in a source (or it
closes), the source's own put calls the watcher, which appends the source to
the merge's ready queue unless it is queued already. A ``get`` on the merge
pops one ready source and takes one value from it; taking that value
re-queues the source if more is waiting. Nothing scans the sources per
value, and no thread runs: the producers' puts and the consumer's gets do
all the work.

A value is taken from its source only when the consumer asks for one and
the merge holds none: then the merge takes up to ``maxsize`` values of the
next ready source in one go (one lock round trip for the batch), so the
merge never holds more than ``maxsize`` values ahead of the consumer and
each source's own bound keeps throttling its producer.

Locks: a source's lock may be held while the merge's lock is taken (the
watcher runs inside the source's put), never the other way round -- a
``get`` releases the merge's lock before it takes from a source.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from typing import Any, Iterator, Optional, Sequence, TypeVar

from litestream._channel_state import ChannelStatistics, wait_on
from litestream._checks import check_maxsize, describe
from litestream.channels import ReceiveChannel

__all__ = ["merge"]

T = TypeVar("T")


class _Source:
    """The merge's watcher on one source: registered once, queues the source when it is ready."""

    __slots__ = ("merge", "state", "handle", "queued", "finished")

    def __init__(self, merge: _MergeState, handle: ReceiveChannel[Any]) -> None:
        self.merge = merge
        self.state: Any = handle._state
        self.handle = handle
        self.queued = False
        self.finished = False

    def notify(self, state: Any) -> None:
        # Called with the source's lock held, so takeable() is exact here.
        if self.queued or not state.takeable():
            return
        merge = self.merge
        with merge.lock:
            if self.queued or self.finished or merge.closed:
                return
            self.queued = True
            merge.ready.append(self)
            if merge.waiting_getters:
                merge.not_empty.notify()
            if merge.watchers:
                merge._wake_watchers()


class _End:
    """A source's end (and its error, if any), queued behind that source's last values."""

    __slots__ = ("source", "error")

    def __init__(self, source: _Source, error: Optional[BaseException]) -> None:
        self.source = source
        self.error = error


class _MergeState:
    """The state of a merged channel; reads like a channel state to handles and :func:`alts`."""

    __slots__ = (
        "maxsize",
        "lock",
        "not_empty",
        "ready",
        "pending",
        "sources",
        "live",
        "closed",
        "close_sources",
        "watchers",
        "waiting_getters",
        "__weakref__",
    )

    def __init__(self, maxsize: int, close_sources: bool) -> None:
        self.maxsize = maxsize
        self.lock = threading.Lock()
        self.not_empty = threading.Condition(self.lock)
        self.ready: deque[_Source] = deque()
        # Values taken from a source ahead of the consumer: (handle, value) pairs.
        self.pending: deque[Any] = deque()
        self.sources: list[_Source] = []
        self.live = 0
        self.closed = False
        self.close_sources = close_sources
        self.watchers: set[Any] = set()
        self.waiting_getters = 0

    def attach(self, handles: Sequence[ReceiveChannel[Any]]) -> None:
        sources = [_Source(self, handle) for handle in handles]
        self.sources = sources
        self.live = len(sources)
        if not sources:
            self.closed = True
        for source in sources:
            state = source.state
            # Watch first, then look: a value that arrives in between is
            # queued by the watcher, and `queued` keeps it from being queued twice.
            state.watchers.add(source)
            with state.lock:
                source.notify(state)

    def _wake_watchers(self) -> None:
        for watcher in tuple(self.watchers):
            watcher.notify(self)

    def takeable(self) -> bool:
        """Tell whether a take would return now; a hint without the lock."""
        return bool(self.pending) or bool(self.ready) or self.closed

    def take(self) -> tuple[bool, Any]:
        """Take one ``(source, value)`` pair without waiting.

        Returns ``(True, pair)``, ``(True, None)`` once closed, or ``(False,
        None)``. Raises a source's error with ``.channel`` set.
        """
        pending = self.pending
        ready = self.ready
        batch = self.maxsize or 1
        while True:
            if pending:
                try:
                    item = pending.popleft()
                except IndexError:  # another reader took the last one
                    continue
                if self.watchers:
                    # What reads this merge (an alts, an outer merge) may take more.
                    self._wake_watchers()
                if type(item) is not _End:
                    return True, item
                self.end_of(item)
                continue
            with self.lock:
                if not ready:
                    return self.closed, None
                source = ready.popleft()
                source.queued = False
                if ready and self.watchers:
                    # What reads this merge (an alts, an outer merge) may take more.
                    self._wake_watchers()
            state = source.state
            if type(state) is not _MergeState:
                # Taking re-queues the source (through its watcher) when more is waiting.
                values, ended, error = state.take_many(batch)
                if values:
                    handle = source.handle
                    pending.extend([(handle, value) for value in values])
                if ended:
                    pending.append(_End(source, error))
                continue
            try:
                got, value = state.take()
            except BaseException as error:
                self._finish(source)
                if hasattr(error, "channel"):
                    error.channel = source.handle
                raise
            if not got:
                continue  # someone else took it first
            if value is None:
                self._finish(source)
                continue
            return True, (source.handle, value)

    def end_of(self, end: _End) -> None:
        """Take a source's end out of ``pending``: stop watching it; raise its error, if any."""
        self._finish(end.source)
        error = end.error
        if error is not None:
            end.error = None
            if hasattr(error, "channel"):
                error.channel = end.source.handle
            raise error

    def _finish(self, source: _Source) -> None:
        """Stop watching a closed, drained source; close the merge after the last one."""
        source.state.watchers.discard(source)
        with self.lock:
            if source.finished:
                return
            source.finished = True
            self.live -= 1
            if self.live or self.closed:
                return
            self.closed = True
            self.not_empty.notify_all()
            self._wake_watchers()

    def get(self, timeout: Optional[float]) -> Any:
        got, value = self.take()
        if got:
            return value
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.lock:
            self.waiting_getters += 1
        try:
            while True:
                with self.lock:
                    while not self.pending and not self.ready and not self.closed:
                        if not wait_on(self.not_empty, deadline):
                            raise TimeoutError("get timed out: nothing arrived")
                got, value = self.take()
                if got:
                    return value
        finally:
            with self.lock:
                self.waiting_getters -= 1

    def close(self) -> bool:
        """Stop watching every source (closing them if asked); True if this call closed it."""
        with self.lock:
            sources, self.sources = self.sources, []
            first = not self.closed
            self.closed = True
            self.ready.clear()
            self.pending.clear()
            self.not_empty.notify_all()
            self._wake_watchers()
        for source in sources:
            source.state.watchers.discard(source)
            source.finished = True
        if self.close_sources:
            for source in sources:
                source.handle.close()
        return first

    def size(self) -> int:
        return len(self.pending)

    def statistics(self) -> ChannelStatistics:
        with self.lock:
            return ChannelStatistics(
                size=len(self.pending),
                maxsize=self.maxsize,
                closed=self.closed,
                pending_error=False,
                waiting_getters=self.waiting_getters,
                waiting_putters=0,
                watchers=len(self.watchers),
            )


class _MergedChannel(ReceiveChannel["tuple[ReceiveChannel[Any], Any]"]):
    """The receive channel :func:`merge` returns."""

    __slots__ = ("_finalizer",)

    def __init__(self, state: _MergeState) -> None:
        self._state = state
        # The sources' watchers hold the state, never this handle, so an
        # abandoned merge is collected and stops watching (or closes) its sources.
        self._finalizer = weakref.finalize(self, state.close)

    def get(self, timeout: Optional[float] = None) -> Optional[tuple[ReceiveChannel[Any], Any]]:
        """Take the next ``(source, value)`` pair, waiting while none is ready.

        As :meth:`ReceiveChannel.get`; a pair the merge already holds is
        handed over without the general way's calls (``get`` in a loop is
        how a merge is read).
        """
        state = self._state
        pending = state.pending
        while timeout is None and pending and not state.watchers:
            try:
                item = pending.popleft()
            except IndexError:  # another reader took the last one
                break
            if type(item) is tuple:
                return item
            state.end_of(item)
        return super().get(timeout)

    def __iter__(self) -> Iterator[tuple[ReceiveChannel[Any], Any]]:
        """Yield ``(source, value)`` pairs until every source has ended, through :meth:`get`."""
        get = self.get
        while True:
            pair = get()
            if pair is None:
                return
            yield pair


def merge(
    channels: Sequence[ReceiveChannel[T]], maxsize: int = 64, close_sources: bool = False
) -> ReceiveChannel[tuple[ReceiveChannel[T], T]]:
    """Read many channels or streams as one channel of ``(source, value)`` pairs.

    Like core.async's ``merge``, but each value keeps its origin. Values of
    one source come in that source's order; sources interleave as their
    values arrive. Each ``get`` costs O(1) whatever the number of sources,
    and no thread is started: each source is watched once, and tells the
    merge when it has a value or closes.

    Edge semantics:

    - A source that ends with an error: its values come first, then ``get``
      raises the error once with ``error.channel`` set to that source, and
      the merge goes on with the other sources.
    - The merged channel closes (``get`` returns None) when every source has
      closed and been drained; an empty list gives a closed channel.
    - ``close()`` on the merged channel stops watching the sources and closes
      none of them, unless ``close_sources=True`` (then each is closed, which
      cancels a stream's request). Values left in the sources stay there.
      An unreferenced merged channel is closed the same way when collected.
    - Backpressure: the merge takes from a source only when the consumer
      asks for a value and the merge holds none, and then at most
      ``maxsize`` values of that source, so it never holds more than
      ``maxsize`` values ahead of the consumer; each source's own bound
      keeps throttling its producer.

    Args:
        channels: a list or tuple of receive channels (streams, routed
            streams, channels, other merges), each at most once. The merge
            should be their only reader; another reader takes values away
            from it, but nothing is lost or duplicated.
        maxsize: how many values the merge may take from one source ahead
            of the consumer, in one lock round trip (larger batches cost
            less per value). 0 takes exactly one value per ``get``.
        close_sources: close every source when the merged channel is closed.
            Values the merge had taken ahead are dropped on ``close()``.

    Returns:
        A receive channel of ``(source, value)`` pairs; ``qsize()`` counts the
        values the merge holds ahead of the consumer.

    Raises:
        TypeError: ``channels`` is not a list or tuple of receive channels.
        ValueError: a source appears twice, or ``maxsize`` is not a whole
            number >= 0.

    Example:
        >>> a, b = Channel(), Channel()  # doctest: +SKIP
        >>> a.put(1); b.put(2); a.close(); b.close()  # doctest: +SKIP
        >>> sorted(value for source, value in merge([a, b]))  # doctest: +SKIP
        [1, 2]
    """
    if not isinstance(channels, (list, tuple)):
        raise TypeError(f"merge takes a list or tuple of channels, not {describe(channels)}")
    seen: set[int] = set()
    for index, channel in enumerate(channels):
        if not isinstance(channel, ReceiveChannel):
            raise TypeError(
                f"merge takes a list or tuple of channels; item {index} is {describe(channel)}"
            )
        if id(channel._state) in seen:
            raise ValueError(f"merge: item {index} ({channel!r}) appears more than once")
        seen.add(id(channel._state))
    state = _MergeState(check_maxsize(maxsize), bool(close_sources))
    merged = _MergedChannel(state)
    state.attach(channels)
    return merged
