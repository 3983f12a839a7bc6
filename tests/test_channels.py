"""Tests for litestream.channels: Channel, ReceiveChannel, alts and timeout."""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Callable, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from timers import timer_threads

from litestream import Router, accumulate_stream, completion, extract_content, merge
from litestream import timer as timer_module
from litestream.channels import Channel, ChannelStatistics, ReceiveChannel, alts, timeout
from litestream.errors import ProviderError
from litestream.testing import FakeLLMServer
from litestream.transport import Stream
from litestream.types import Choice, Chunk, Delta

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


pytestmark = pytest.mark.usefixtures("timer_thread_ends")


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


HUGE = 1e12  # seconds: finite, but past threading.TIMEOUT_MAX


def test_huge_timeouts_wait_instead_of_overflowing() -> None:
    channel: Channel[int] = Channel(maxsize=1)
    channel.put(1)
    putter = Background(lambda: channel.put(2, timeout=HUGE))
    wait_until(lambda: channel.statistics().waiting_putters == 1)
    assert channel.get() == 1
    assert putter.done.wait(1.0) and putter.error is None and putter.result is True
    assert channel.get(timeout=HUGE) == 2
    getter = Background(lambda: channel.get(timeout=HUGE))
    selector = Background(lambda: alts([channel], timeout=HUGE))
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
# timeout()
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


@pytest.mark.parametrize("maxsize", [None, "3", 1.5, -1, True])
def test_a_bad_maxsize_is_a_clear_value_error(maxsize) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        Channel(maxsize=maxsize)


# ---------------------------------------------------------------------------
# Receive-only handles
# ---------------------------------------------------------------------------

MESSAGES = [{"role": "user", "content": "Hi"}]
WRITING_NAMES = ("put", "send", "write", "close_with_error", "inject", "push", "feed", "offer")


def writing_methods(handle: object) -> list[str]:
    """Public names of ``handle`` that look like a way to write into it."""
    return [name for name in dir(handle)
            if not name.startswith("_") and name.startswith(WRITING_NAMES)]


def open_stream(server: FakeLLMServer) -> Stream:
    return completion("openai", "test-model", {"messages": MESSAGES, "stream": True},
                      {"api_key": "test-key", "api_base": server.api_base("openai")})


def test_a_returned_stream_exposes_no_method_that_writes() -> None:
    router = Router(backoff_base=0.01, backoff_cap=0.05)
    with FakeLLMServer() as server:
        server.script(text="one two")
        server.script(text="three four")
        router.register("r", provider="openai", model="test-model",
                        config={"api_key": "test-key", "api_base": server.api_base("openai")})
        stream = open_stream(server)
        routed = router.completion("r", messages=MESSAGES, stream=True)
        for handle in (stream, routed):
            assert isinstance(handle, ReceiveChannel)
            assert not isinstance(handle, Channel)
            assert writing_methods(handle) == []
            assert {"get", "get_nowait", "close", "closed", "statistics"} <= set(dir(handle))
        # The producers still fill them, through their private senders (the
        # two requests may reach the server in either order).
        texts = {"".join(extract_content(chunk) or "" for chunk in handle)
                 for handle in (stream, routed)}
        assert texts == {"one two", "three four"}
        assert stream.closed and routed.closed


def test_the_accumulated_text_channel_is_receive_only_and_still_filled() -> None:
    source: Channel[Chunk] = Channel()
    for text in ("He", "llo"):
        source.put(Chunk(id="c", model="m", provider="p", created=0,
                         choices=(Choice(index=0, delta=Delta(content=text)),)))
    source.close()
    accumulated = accumulate_stream(source)
    assert writing_methods(accumulated) == []
    assert list(accumulated) == ["He", "Hello"]


def test_a_channel_is_a_receive_channel_that_also_writes() -> None:
    channel: Channel[int] = Channel()
    assert isinstance(channel, ReceiveChannel)
    assert sorted(writing_methods(channel)) == ["close_with_error", "put", "put_nowait"]
    assert not hasattr(channel, "on_close")
    channel.close()


# ---------------------------------------------------------------------------
# Strict inputs
# ---------------------------------------------------------------------------


def test_alts_refuses_a_single_channel_at_once_and_takes_nothing() -> None:
    channel: Channel[int] = Channel(1)
    channel.put(7)
    with pytest.raises(TypeError, match="list or tuple.*not Channel"):
        alts(channel, timeout=1)  # type: ignore[arg-type]
    assert channel.get_nowait() == 7
    # An empty one is refused at once too instead of blocking forever.
    caller = Background(lambda: alts(Channel(1), timeout=1))  # type: ignore[arg-type]
    assert caller.done.wait(2.0)
    assert isinstance(caller.error, TypeError)
    caller.join()


def test_alts_refuses_a_stream_without_eating_a_chunk() -> None:
    with FakeLLMServer() as server:
        server.script(text="first second")
        stream = open_stream(server)
        with stream:
            first = stream.get(timeout=5)  # a chunk is buffered from here on
            with pytest.raises(TypeError, match="not Stream"):
                alts(stream, timeout=1)  # type: ignore[arg-type]
            rest = "".join(extract_content(chunk) or "" for chunk in stream)
        assert (extract_content(first) or "") + rest == "first second"


@pytest.mark.parametrize("operations, wanted", [
    (["x"], "item 0 is str 'x'"),
    ("ab", "not str 'ab'"),
    ([1.5], "item 0 is float"),
    ({Channel()}, "not set"),
    (iter([Channel()]), "not list_iterator"),
    ([(Channel(),)], "item 0 is tuple"),
    ([(Channel(), 1, 2)], "item 0 is tuple"),
    ([("x", 1)], "item 0 is tuple"),
    (None, "not NoneType"),
])
def test_alts_names_what_it_was_given_and_what_it_wants(operations, wanted) -> None:
    with pytest.raises(TypeError) as raised:
        alts(operations, timeout=0)
    message = str(raised.value)
    assert "list or tuple of channels and (channel, value) pairs" in message
    assert wanted in message


def test_alts_cannot_put_on_a_receive_only_channel() -> None:
    with FakeLLMServer() as server:
        server.script(text="real")
        stream = open_stream(server)
        with stream:
            fake = Chunk(id="x", model="m", provider="p", created=0, choices=())
            with pytest.raises(TypeError, match="receive-only"):
                alts([(stream, fake)], timeout=1)
            assert "".join(extract_content(chunk) or "" for chunk in stream) == "real"


BAD_SECONDS = [
    (float("nan"), ValueError),
    (float("inf"), ValueError),
    (-1, ValueError),
    (-0.5, ValueError),
    ("1", TypeError),
    (True, TypeError),
    ([1], TypeError),
]


def raises_at_once(call: Callable[[], Any], error: type, name: str) -> None:
    """``call`` raises ``error`` naming ``name`` promptly (on a thread, so a hang fails)."""
    caller = Background(call)
    assert caller.done.wait(2.0), "hung instead of refusing the timeout"
    assert isinstance(caller.error, error), repr(caller.error)
    assert name in str(caller.error)
    caller.join()


@pytest.mark.parametrize("seconds, error", BAD_SECONDS)
def test_a_bad_timeout_is_refused_by_get_put_and_alts(seconds, error) -> None:
    empty: Channel[int] = Channel(1)
    full: Channel[int] = Channel(1)
    full.put(1)
    raises_at_once(lambda: empty.get(timeout=seconds), error, "timeout")
    raises_at_once(lambda: full.put(2, timeout=seconds), error, "timeout")
    raises_at_once(lambda: alts([empty], timeout=seconds), error, "timeout")
    raises_at_once(lambda: alts([(full, 2)], timeout=seconds), error, "timeout")
    assert full.get_nowait() == 1 and full.qsize() == 0
    assert empty.statistics().watchers == 0


@pytest.mark.parametrize("seconds, error", [*BAD_SECONDS, (None, TypeError)])
def test_a_bad_timeout_channel_delay_is_refused(seconds, error) -> None:
    with pytest.raises(error, match="seconds"):
        timeout(seconds)


def test_a_negative_timeout_is_not_treated_as_zero() -> None:
    channel: Channel[int] = Channel()
    channel.put(1)  # ready: the old code returned it for timeout=-1
    with pytest.raises(ValueError, match="timeout"):
        channel.get(timeout=-1)
    assert channel.get(timeout=0) == 1


def test_a_zero_timeout_still_means_do_not_wait() -> None:
    channel: Channel[int] = Channel()
    with pytest.raises(TimeoutError):
        channel.get(timeout=0)
    with pytest.raises(TimeoutError):
        alts([channel], timeout=0)
    assert channel.statistics().watchers == 0


# ---------------------------------------------------------------------------
# alts over receive channels of every kind
# ---------------------------------------------------------------------------


def test_alts_takes_from_a_merged_channel() -> None:
    source: Channel[int] = Channel()
    merged = merge([source])
    waiter = Background(lambda: alts([merged, Channel()], timeout=5))
    wait_until(lambda: merged.statistics().watchers == 1)
    source.put(3)
    waiter.join()
    assert waiter.result == ((source, 3), merged)
    assert merged.statistics().watchers == 0
    merged.close()
    source.close()


def test_alts_with_one_ready_channel_among_many_picks_it() -> None:
    channels: list[Channel[int]] = [Channel() for _ in range(500)]
    channels[321].put(5)
    assert alts(channels) == (5, channels[321])
    assert alts(channels, default="none") == ("none", None)
    for channel in channels:
        channel.close()


@pytest.mark.parametrize("maxsize, batch", [(1, 1), (2, 5), (4, 4), (64, 330)])
def test_batches_overshooting_maxsize_reach_an_iterating_consumer_in_order(
        maxsize: int, batch: int) -> None:
    """A producer woken only once there is room still delivers everything, and stays bounded."""
    from litestream._channel_state import _Sender

    channel: ReceiveChannel[int] = ReceiveChannel(maxsize)
    sender: _Sender[int] = _Sender(channel._state)
    total = batch * 20
    most_queued = [0]

    def produce() -> None:
        for start in range(0, total, batch):
            values = list(range(start, min(start + batch, total)))
            for offset in range(0, len(values), maxsize):
                assert sender.put_many(values[offset:offset + maxsize])
                most_queued[0] = max(most_queued[0], channel.qsize())
        sender.close()

    producer = threading.Thread(target=produce)
    producer.start()
    received = list(channel)
    producer.join(5.0)
    assert not producer.is_alive()
    assert received == list(range(total))
    assert most_queued[0] <= 2 * maxsize  # maxsize plus at most one batch in hand-off


def test_iterating_wakes_a_producer_blocked_on_a_full_channel() -> None:
    channel: Channel[int] = Channel(maxsize=1)
    channel.put(1)
    put_done = threading.Event()

    def put_second() -> None:
        channel.put(2)
        put_done.set()
        channel.close()

    producer = threading.Thread(target=put_second)
    producer.start()
    values = list(channel)
    producer.join(5.0)
    assert values == [1, 2]
    assert put_done.is_set()
