"""Tests for litestream.channels: Channel, alts, timeout and the shared timer."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any, Callable, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litestream import timer as timer_module
from litestream.channels import Channel, ChannelStatistics, alts, call_later, timeout
from litestream.errors import ProviderError

TIMER_THREAD_NAME = "litestream-timer"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], limit: float = 2.0) -> None:
    """Establish a precondition (a thread is parked) by polling statistics, bounded."""
    deadline = time.monotonic() + limit
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("precondition did not hold within the limit")
        pause.wait(0.001)


class Background:
    """Run ``function`` on a thread; ``done`` is set when it returns or raises."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self._function = function
        self.thread = threading.Thread(target=self._run, name="test-background", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.result = self._function()
        except BaseException as error:  # noqa: B036 - handed back to the test
            self.error = error
        finally:
            self.done.set()

    def join(self) -> None:
        self.thread.join(2.0)
        assert not self.thread.is_alive()


def timer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == TIMER_THREAD_NAME]


@pytest.fixture(autouse=True)
def _timer_thread_ends() -> Any:
    """Every test lets its timers fire or cancels them, so the timer thread ends."""
    yield
    for thread in timer_threads():
        thread.join(2.0)
        assert not thread.is_alive(), "the timer thread outlived the test"


# ---------------------------------------------------------------------------
# Basic semantics
# ---------------------------------------------------------------------------


def test_put_get_is_fifo() -> None:
    channel: Channel[int] = Channel()
    for value in range(10):
        assert channel.put(value) is True
    assert [channel.get() for _ in range(10)] == list(range(10))


def test_put_returns_false_once_closed() -> None:
    channel: Channel[str] = Channel(maxsize=1)
    channel.close()
    assert channel.put("late") is False
    assert channel.put_nowait("late") is False
    assert channel.get() is None


def test_put_none_raises_value_error() -> None:
    channel: Channel[Any] = Channel()
    with pytest.raises(ValueError):
        channel.put(None)
    with pytest.raises(ValueError):
        channel.put_nowait(None)
    channel.close()


def test_get_returns_none_once_closed_and_drained() -> None:
    channel: Channel[str] = Channel()
    channel.put("a")
    channel.put("b")
    channel.close()
    assert channel.closed
    assert channel.get() == "a"
    assert channel.get() == "b"
    assert channel.get() is None
    assert channel.get(timeout=0) is None


def test_get_timeout_raises_builtin_timeout_error() -> None:
    channel: Channel[int] = Channel()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        channel.get(timeout=0.02)
    assert time.monotonic() - started >= 0.015
    assert channel.statistics().waiting_getters == 0
    with pytest.raises(TimeoutError):
        channel.get_nowait()


def test_put_timeout_on_full_channel_raises_timeout_error() -> None:
    channel: Channel[int] = Channel(maxsize=1)
    assert channel.put(1)
    with pytest.raises(TimeoutError):
        channel.put(2, timeout=0.02)
    with pytest.raises(TimeoutError):
        channel.put(2, timeout=0)
    with pytest.raises(TimeoutError):
        channel.put_nowait(2)
    assert channel.statistics().waiting_putters == 0
    assert channel.get() == 1


def test_close_is_idempotent() -> None:
    channel: Channel[int] = Channel()
    channel.put(1)
    channel.close()
    channel.close()
    assert channel.close_with_error(ProviderError("too late")) is False
    assert channel.get() == 1
    assert channel.get() is None


def test_iteration_ends_at_close() -> None:
    channel: Channel[int] = Channel()
    for value in (1, 2, 3):
        channel.put(value)
    channel.close()
    assert list(channel) == [1, 2, 3]
    assert list(channel) == []


def test_context_manager_closes() -> None:
    with Channel[int](maxsize=3) as channel:
        channel.put(1)
        assert not channel.closed
    assert channel.closed
    assert channel.get() == 1
    assert channel.get() is None


def test_repr_shows_size_capacity_and_state() -> None:
    bounded: Channel[int] = Channel(maxsize=4)
    bounded.put(7)
    assert repr(bounded) == "<Channel open size=1 maxsize=4>"
    bounded.close()
    assert repr(bounded) == "<Channel closed size=1 maxsize=4>"
    unbounded: Channel[int] = Channel()
    assert repr(unbounded) == "<Channel open size=0 maxsize=unbounded>"
    unbounded.close()


def test_statistics_report_size_state_and_waiters() -> None:
    channel: Channel[int] = Channel(maxsize=2)
    channel.put(1)
    assert channel.statistics() == ChannelStatistics(
        size=1,
        maxsize=2,
        closed=False,
        pending_error=False,
        waiting_getters=0,
        waiting_putters=0,
        watchers=0,
    )
    assert channel.qsize() == 1
    assert channel.maxsize == 2
    channel.close_with_error(ProviderError("boom"))
    stats = channel.statistics()
    assert stats.closed and stats.pending_error and stats.size == 1


def test_close_with_error_delivers_values_then_error_once_then_none() -> None:
    channel: Channel[str] = Channel()
    channel.put("a")
    channel.put("b")
    error = ProviderError("upstream failed", provider="openai", model="gpt-4o-mini")
    assert channel.close_with_error(error) is True
    assert channel.get() == "a"
    assert channel.get() == "b"
    with pytest.raises(ProviderError) as raised:
        channel.get()
    assert raised.value is error
    assert channel.get() is None
    assert channel.statistics().pending_error is False


def test_iteration_raises_the_producer_error_after_the_values() -> None:
    channel: Channel[int] = Channel()
    channel.put(1)
    channel.close_with_error(ProviderError("boom"))
    received = []
    with pytest.raises(ProviderError):
        for value in channel:
            received.append(value)
    assert received == [1]
    assert list(channel) == []


def test_close_with_error_wakes_a_blocked_getter_with_the_error() -> None:
    channel: Channel[int] = Channel()
    getter = Background(channel.get)
    wait_until(lambda: channel.statistics().waiting_getters == 1)
    channel.close_with_error(ProviderError("boom"))
    assert getter.done.wait(0.05)
    assert isinstance(getter.error, ProviderError)
    getter.join()


def test_alts_raises_stream_error_with_channel_set() -> None:
    failing: Channel[int] = Channel()
    healthy: Channel[int] = Channel()
    failing.put(1)
    failing.close_with_error(ProviderError("overloaded", provider="anthropic"))
    assert alts([failing], priority=True) == (1, failing)
    with pytest.raises(ProviderError) as raised:
        alts([failing, healthy], priority=True)
    assert raised.value.channel is failing
    assert alts([failing, healthy], priority=True) == (None, failing)
    assert healthy.statistics().watchers == 0
    healthy.close()


def test_infinite_timeouts_wait_instead_of_overflowing() -> None:
    channel: Channel[int] = Channel(maxsize=1)
    channel.put(1)
    putter = Background(lambda: channel.put(2, timeout=float("inf")))
    wait_until(lambda: channel.statistics().waiting_putters == 1)
    assert channel.get() == 1
    assert putter.done.wait(1.0) and putter.error is None and putter.result is True
    assert channel.get(timeout=float("inf")) == 2
    getter = Background(lambda: channel.get(timeout=float("inf")))
    selector = Background(lambda: alts([channel], timeout=float("inf")))
    wait_until(lambda: channel.statistics().waiting_getters == 1)
    wait_until(lambda: channel.statistics().watchers == 1)
    channel.close()
    assert getter.done.wait(1.0) and getter.error is None and getter.result is None
    assert selector.done.wait(1.0) and selector.result == (None, channel)
    putter.join()
    getter.join()
    selector.join()


# ---------------------------------------------------------------------------
# Stress: producers x consumers with a close in the middle
# ---------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    producer_count=st.integers(1, 4),
    consumer_count=st.integers(1, 4),
    per_producer=st.integers(0, 150),
    maxsize=st.sampled_from([0, 1, 3, 64]),
    close_after=st.integers(0, 600),
    alts_consumers=st.booleans(),
)
def test_concurrent_producers_and_consumers_lose_and_duplicate_nothing(
    producer_count: int,
    consumer_count: int,
    per_producer: int,
    maxsize: int,
    close_after: int,
    alts_consumers: bool,
) -> None:
    channel: Channel[tuple[int, int]] = Channel(maxsize)
    accepted: list[list[tuple[int, int]]] = [[] for _ in range(producer_count)]
    received: list[list[tuple[int, int]]] = [[] for _ in range(consumer_count)]
    accepted_count = [0]
    count_lock = threading.Lock()

    def produce(producer: int) -> None:
        for sequence in range(per_producer):
            value = (producer, sequence)
            if not channel.put(value):
                return
            accepted[producer].append(value)
            with count_lock:
                accepted_count[0] += 1
                close_now = accepted_count[0] == close_after
            if close_now:
                channel.close()  # a close in the middle, while others still put

    def consume(consumer: int) -> None:
        if alts_consumers:
            other: Channel[Any] = Channel()
            while True:
                value, source = alts([channel, other])
                assert source is channel
                if value is None:
                    return
                received[consumer].append(value)
        for value in channel:
            received[consumer].append(value)

    consumers = [threading.Thread(target=consume, args=(i,)) for i in range(consumer_count)]
    producers = [threading.Thread(target=produce, args=(i,)) for i in range(producer_count)]
    for thread in consumers + producers:
        thread.start()
    for thread in producers:
        thread.join(10.0)
        assert not thread.is_alive()
    channel.close()  # when close_after was never reached
    for thread in consumers:
        thread.join(10.0)
        assert not thread.is_alive()

    all_accepted = Counter(value for values in accepted for value in values)
    all_received = Counter(value for values in received for value in values)
    assert all_received == all_accepted  # nothing lost
    assert max(all_received.values(), default=1) == 1  # nothing duplicated
    for values in received:
        for producer in range(producer_count):
            sequences = [sequence for source, sequence in values if source == producer]
            assert sequences == sorted(sequences)  # per-producer order, per consumer
    stats = channel.statistics()
    assert (stats.waiting_getters, stats.waiting_putters, stats.watchers) == (0, 0, 0)


@settings(max_examples=15, deadline=None)
@given(
    channel_count=st.integers(1, 5),
    consumer_count=st.integers(1, 3),
    per_channel=st.integers(0, 100),
    maxsize=st.sampled_from([0, 1, 4]),
    priority=st.booleans(),
)
def test_alts_consumers_over_many_channels_lose_and_duplicate_nothing(
    channel_count: int, consumer_count: int, per_channel: int, maxsize: int, priority: bool
) -> None:
    channels: list[Channel[tuple[int, int]]] = [Channel(maxsize) for _ in range(channel_count)]
    received: list[list[tuple[int, int]]] = [[] for _ in range(consumer_count)]

    def produce(index: int) -> None:
        for sequence in range(per_channel):
            assert channels[index].put((index, sequence))
        channels[index].close()

    def consume(consumer: int) -> None:
        open_channels = list(channels)
        while open_channels:
            value, source = alts(open_channels, priority=priority)
            if value is None:
                open_channels.remove(source)
            else:
                received[consumer].append(value)

    consumers = [threading.Thread(target=consume, args=(i,)) for i in range(consumer_count)]
    producers = [threading.Thread(target=produce, args=(i,)) for i in range(channel_count)]
    for thread in consumers + producers:
        thread.start()
    for thread in producers + consumers:
        thread.join(10.0)
        assert not thread.is_alive()
    everything = sorted(value for values in received for value in values)
    assert everything == [(i, n) for i in range(channel_count) for n in range(per_channel)]
    for values in received:
        for index in range(channel_count):
            sequences = [sequence for source, sequence in values if source == index]
            assert sequences == sorted(sequences)
    assert all(channel.statistics().watchers == 0 for channel in channels)


# ---------------------------------------------------------------------------
# close() wakes every kind of waiter
# ---------------------------------------------------------------------------


def test_close_wakes_blocked_putter() -> None:
    channel: Channel[int] = Channel(maxsize=1)
    channel.put(1)
    putter = Background(lambda: channel.put(2))
    wait_until(lambda: channel.statistics().waiting_putters == 1)
    channel.close()
    assert putter.done.wait(0.05)
    assert putter.result is False
    assert channel.get() == 1
    assert channel.get() is None
    putter.join()


def test_close_wakes_blocked_getter() -> None:
    channel: Channel[int] = Channel()
    getter = Background(channel.get)
    wait_until(lambda: channel.statistics().waiting_getters == 1)
    channel.close()
    assert getter.done.wait(0.05)
    assert getter.error is None and getter.result is None
    getter.join()


def test_close_wakes_thread_blocked_in_alts() -> None:
    channel: Channel[int] = Channel()
    other: Channel[int] = Channel()
    selector = Background(lambda: alts([channel, other]))
    wait_until(lambda: channel.statistics().watchers == 1)
    channel.close()
    assert selector.done.wait(0.05)
    assert selector.result == (None, channel)
    assert other.statistics().watchers == 0
    other.close()
    selector.join()


def test_close_wakes_alts_blocked_putting_on_a_full_channel() -> None:
    channel: Channel[int] = Channel(maxsize=1)
    channel.put(1)
    selector = Background(lambda: alts([(channel, 2)]))
    wait_until(lambda: channel.statistics().watchers == 1)
    channel.close()
    assert selector.done.wait(0.05)
    assert selector.result == (False, channel)
    selector.join()


# ---------------------------------------------------------------------------
# alts
# ---------------------------------------------------------------------------


def test_alts_takes_a_ready_value() -> None:
    empty: Channel[str] = Channel()
    ready: Channel[str] = Channel()
    ready.put("hello")
    assert alts([empty, ready]) == ("hello", ready)
    empty.close()
    ready.close()


def test_alts_puts_a_value() -> None:
    full: Channel[int] = Channel(maxsize=1)
    full.put(0)
    roomy: Channel[int] = Channel(maxsize=1)
    assert alts([(full, 1), (roomy, 2)]) == (True, roomy)
    assert roomy.get() == 2
    assert full.get() == 0
    full.close()
    assert alts([(full, 3)]) == (False, full)


def test_alts_put_waits_for_room() -> None:
    channel: Channel[int] = Channel(maxsize=1)
    channel.put(1)
    selector = Background(lambda: alts([(channel, 2)]))
    wait_until(lambda: channel.statistics().watchers == 1)
    assert channel.get() == 1
    assert selector.done.wait(1.0)
    assert selector.result == (True, channel)
    assert channel.get() == 2
    channel.close()
    selector.join()


def test_alts_wakes_when_a_value_arrives() -> None:
    channels: list[Channel[int]] = [Channel() for _ in range(5)]
    selector = Background(lambda: alts(channels))
    wait_until(lambda: all(c.statistics().watchers == 1 for c in channels))
    channels[3].put(42)
    assert selector.done.wait(1.0)
    assert selector.result == (42, channels[3])
    assert all(c.statistics().watchers == 0 for c in channels)
    for channel in channels:
        channel.close()
    selector.join()


def test_alts_default_returns_at_once() -> None:
    channel: Channel[int] = Channel()
    started = time.monotonic()
    assert alts([channel], default="nothing") == ("nothing", None)
    assert time.monotonic() - started < 0.05
    assert channel.statistics().watchers == 0
    channel.put(1)
    assert alts([channel], default="nothing") == (1, channel)
    channel.close()


def test_alts_timeout_raises_timeout_error() -> None:
    channel: Channel[int] = Channel()
    with pytest.raises(TimeoutError):
        alts([channel], timeout=0.02)
    with pytest.raises(TimeoutError):
        alts([channel], timeout=0)
    assert channel.statistics().watchers == 0
    channel.close()


def test_alts_timeout_channel_wins_with_none() -> None:
    never: Channel[int] = Channel()
    deadline = timeout(0.01)
    assert alts([never, deadline]) == (None, deadline)
    never.close()


def test_alts_closed_channel_is_ready_with_none() -> None:
    open_channel: Channel[int] = Channel()
    closed: Channel[int] = Channel()
    closed.close()
    assert alts([open_channel, closed]) == (None, closed)
    open_channel.close()


def test_alts_priority_picks_list_order() -> None:
    first: Channel[str] = Channel()
    second: Channel[str] = Channel()
    for _ in range(20):
        first.put("first")
        second.put("second")
    for _ in range(20):
        assert alts([first, second], priority=True) == ("first", first)
    assert alts([first, second], priority=True) == ("second", second)
    first.close()
    second.close()


def test_alts_rejects_no_operations_and_none_puts() -> None:
    channel: Channel[int] = Channel()
    with pytest.raises(ValueError):
        alts([])
    with pytest.raises(ValueError):
        alts([(channel, None)])
    channel.close()


def test_alts_does_not_spin_while_waiting() -> None:
    idle: list[Channel[int]] = [Channel() for _ in range(100)]

    def wait_in_alts() -> float:
        started = time.thread_time()
        with pytest.raises(TimeoutError):
            alts(idle, timeout=1.0)
        return time.thread_time() - started

    waiter = Background(wait_in_alts)
    waiter.join()
    assert waiter.error is None
    assert waiter.result < 0.010, f"alts used {waiter.result * 1e3:.1f} ms of CPU while idle"
    for channel in idle:
        channel.close()


def test_alts_is_fair_without_priority() -> None:
    left: Channel[int] = Channel()
    right: Channel[int] = Channel()
    left.close()
    right.close()  # closed channels are always ready
    wins = Counter(alts([left, right])[1] is left for _ in range(1000))
    assert 300 <= wins[True] <= 700, wins
    assert all(alts([left, right], priority=True)[1] is left for _ in range(1000))


# ---------------------------------------------------------------------------
# timeout() and the shared timer
# ---------------------------------------------------------------------------


def test_timeout_channel_closes_after_its_delay() -> None:
    started = time.monotonic()
    deadline = timeout(0.02)
    assert not deadline.closed
    assert deadline.get(timeout=2.0) is None
    assert time.monotonic() - started >= 0.015


def test_ten_thousand_timeouts_share_one_timer_thread() -> None:
    deadlines = [timeout(0.05 + index * 1e-6) for index in range(10_000)]
    assert len(timer_threads()) == 1
    (timer_thread,) = timer_threads()
    assert timer_thread.daemon
    for deadline in deadlines:
        assert deadline.get(timeout=5.0) is None
    timer_thread.join(2.0)
    assert not timer_thread.is_alive()
    assert timer_module._timer.thread is None


def test_call_later_runs_callbacks_in_deadline_order() -> None:
    order: list[int] = []
    done = threading.Event()
    call_later(0.03, lambda: (order.append(3), done.set()))
    call_later(0.01, lambda: order.append(1))
    call_later(0.02, lambda: order.append(2))
    assert done.wait(2.0)
    assert order == [1, 2, 3]


def test_call_later_cancel_stops_the_callback() -> None:
    cancelled = threading.Event()
    later = threading.Event()
    handle = call_later(0.01, cancelled.set)
    call_later(0.03, later.set)
    handle.cancel()
    assert later.wait(2.0)
    assert not cancelled.is_set()
    handle.cancel()  # harmless twice, and after the others ran


def test_cancelling_the_last_pending_callback_ends_the_timer_thread() -> None:
    handle = call_later(3600, lambda: None)
    (timer_thread,) = timer_threads()
    handle.cancel()
    timer_thread.join(1.0)
    assert not timer_thread.is_alive()


def test_cancelled_callbacks_do_not_pile_up_in_the_timer() -> None:
    # An idle timeout re-armed per chunk cancels a handle per chunk.
    keeper = call_later(3600, lambda: None)
    for _ in range(20_000):
        call_later(3600, lambda: None).cancel()
    assert len(timer_module._timer._heap) < 5_000
    keeper.cancel()


def test_failing_callback_does_not_stop_the_timer(caplog: pytest.LogCaptureFixture) -> None:
    def fail() -> None:
        raise RuntimeError("callback bug")

    ran = threading.Event()
    with caplog.at_level(logging.ERROR, logger="litestream"):
        call_later(0, fail)
        call_later(0.01, ran.set)
        assert ran.wait(2.0)
    assert "timer callback failed" in caplog.text


def test_infinite_delay_does_not_break_the_timer() -> None:
    forever = call_later(float("inf"), lambda: None)
    ran = threading.Event()
    call_later(0.01, ran.set)
    assert ran.wait(2.0)
    forever.cancel()


@pytest.mark.parametrize("maxsize", [None, "3", 1.5, -1, True])
def test_a_bad_maxsize_is_a_clear_value_error(maxsize) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Channel(maxsize=maxsize)
