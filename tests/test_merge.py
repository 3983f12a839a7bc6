"""Tests for litestream.merge: O(1) fan-in of many channels into (source, value) pairs."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any, Callable

import pytest

from litestream import Channel, ReceiveChannel, alts, completion, extract_content, merge
from litestream.errors import ProviderError
from litestream.testing import FakeLLMServer

MESSAGES = [{"role": "user", "content": "Hi"}]


def wait_until(predicate: Callable[[], bool], limit: float = 2.0) -> None:
    """Establish a precondition (a thread is parked) by polling statistics, bounded."""
    deadline = time.monotonic() + limit
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("precondition did not hold within the limit")
        pause.wait(0.001)


def drain(merged: ReceiveChannel[Any]) -> list[tuple[Any, Any]]:
    return list(merged)


def test_values_keep_their_source_and_their_order_per_source() -> None:
    a: Channel[int] = Channel()
    b: Channel[int] = Channel()
    for value in range(5):
        a.put(value)
        b.put(100 + value)
    a.close()
    b.close()
    pairs = drain(merge([a, b]))
    assert [value for source, value in pairs if source is a] == [0, 1, 2, 3, 4]
    assert [value for source, value in pairs if source is b] == [100, 101, 102, 103, 104]
    assert len(pairs) == 10


def test_a_blocked_get_wakes_when_a_source_gets_a_value() -> None:
    sources: list[Channel[str]] = [Channel() for _ in range(3)]
    merged = merge(sources)
    result: list[Any] = []
    getter = threading.Thread(target=lambda: result.append(merged.get(timeout=5)))
    getter.start()
    wait_until(lambda: merged.statistics().waiting_getters == 1)
    sources[2].put("late")
    getter.join(5)
    assert result == [(sources[2], "late")]
    merged.close()
    for source in sources:
        source.close()


def test_many_producer_threads_interleave_without_loss_or_duplicates() -> None:
    producers, per_producer = 8, 500
    sources: list[Channel[int]] = [Channel(maxsize=4) for _ in range(producers)]
    merged = merge(sources)

    def produce(channel: Channel[int]) -> None:
        for value in range(per_producer):
            channel.put(value)
        channel.close()

    threads = [threading.Thread(target=produce, args=(source,)) for source in sources]
    for thread in threads:
        thread.start()
    seen: dict[int, list[int]] = {id(source): [] for source in sources}
    for source, value in merged:
        seen[id(source)].append(value)
    for thread in threads:
        thread.join(5)
    assert all(values == list(range(per_producer)) for values in seen.values())
    assert merged.closed


def test_a_source_error_comes_in_order_with_its_channel_then_the_others_go_on() -> None:
    failing: Channel[int] = Channel()
    healthy: Channel[int] = Channel()
    failing.put(1)
    failing.put(2)
    failing.close_with_error(ProviderError("overloaded", provider="anthropic"))
    merged = merge([failing, healthy])
    assert merged.get(timeout=1) == (failing, 1)
    assert merged.get(timeout=1) == (failing, 2)
    with pytest.raises(ProviderError) as raised:
        merged.get(timeout=1)
    assert raised.value.channel is failing
    assert not merged.closed
    healthy.put(3)
    assert merged.get(timeout=1) == (healthy, 3)
    healthy.close()
    assert merged.get(timeout=1) is None
    assert merged.closed
    assert failing.statistics().watchers == healthy.statistics().watchers == 0


def test_closing_the_merge_closes_no_source_unless_asked() -> None:
    kept: list[Channel[int]] = [Channel(), Channel()]
    kept[0].put(1)
    merged = merge(kept)
    merged.close()
    merged.close()  # idempotent
    assert merged.get(timeout=0) is None
    assert not any(source.closed for source in kept)
    assert all(source.statistics().watchers == 0 for source in kept)
    assert kept[0].get_nowait() == 1  # the value stayed in its source
    owned: list[Channel[int]] = [Channel(), Channel()]
    with merge(owned, close_sources=True):
        pass
    assert all(source.closed for source in owned)
    for source in kept:
        source.close()


def test_the_merge_closes_once_every_source_closed_and_was_drained() -> None:
    a: Channel[int] = Channel()
    b: Channel[int] = Channel()
    merged = merge([a, b])
    a.put(1)
    a.close()
    b.close()
    assert not merged.closed  # a's value is not drained yet
    assert merged.get_nowait() == (a, 1)
    assert merged.get_nowait() is None
    assert merged.closed
    assert merge([]).get(timeout=0) is None


def test_merge_takes_from_a_source_only_when_asked() -> None:
    source: Channel[int] = Channel(maxsize=2)
    merged = merge([source], maxsize=1)
    assert merged.maxsize == 1
    source.put(1)
    source.put(2)
    with pytest.raises(TimeoutError):
        source.put_nowait(3)  # still full: the merge drained nothing ahead
    assert merged.qsize() == 0  # nothing taken before a get
    assert merged.get_nowait() == (source, 1)
    assert source.qsize() == 1
    merged.close()
    source.close()


def test_merge_holds_at_most_maxsize_values_ahead_of_the_consumer() -> None:
    source: Channel[int] = Channel()
    for value in range(1, 6):
        source.put(value)
    merged = merge([source], maxsize=3)
    assert merged.get_nowait() == (source, 1)
    assert (merged.qsize(), source.qsize()) == (2, 2)
    assert [merged.get_nowait()[1] for _ in range(3)] == [2, 3, 4]
    assert (merged.qsize(), source.qsize()) == (1, 0)  # the next batch: 4 and 5
    merged.close()
    assert merged.get_nowait() is None  # what it held ahead is dropped
    assert not source.closed
    source.close()


def test_a_blocked_get_times_out_and_a_closed_merge_wakes_it() -> None:
    source: Channel[int] = Channel()
    merged = merge([source])
    with pytest.raises(TimeoutError):
        merged.get(timeout=0.01)
    result: list[Any] = []
    getter = threading.Thread(target=lambda: result.append(merged.get()))
    getter.start()
    wait_until(lambda: merged.statistics().waiting_getters == 1)
    merged.close()
    getter.join(5)
    assert result == [None]
    source.close()


def test_merges_nest() -> None:
    a: Channel[int] = Channel()
    b: Channel[int] = Channel()
    inner = merge([a])
    outer = merge([inner, b])
    for value in (1, 2, 3):
        a.put(value)
    b.put(9)
    a.close()
    b.close()
    pairs = drain(outer)
    assert [value for source, value in pairs if source is inner] == [(a, 1), (a, 2), (a, 3)]
    assert [value for source, value in pairs if source is b] == [9]


@pytest.mark.parametrize("channels, error, wanted", [
    (Channel(), TypeError, "not Channel"),
    ("ab", TypeError, "not str"),
    (["x"], TypeError, "item 0 is str"),
])
def test_merge_refuses_what_is_not_a_list_of_channels(channels, error, wanted) -> None:
    with pytest.raises(error, match=wanted):
        merge(channels)


def test_merge_refuses_a_source_twice_and_a_bad_maxsize() -> None:
    channel: Channel[int] = Channel()
    with pytest.raises(ValueError, match="more than once"):
        merge([channel, channel])
    with pytest.raises(ValueError, match="maxsize"):
        merge([channel], maxsize=-1)
    assert channel.statistics().watchers == 0


def test_a_thousand_sources_need_no_thread_and_leave_nothing_behind() -> None:
    threads_before = threading.active_count()
    sources: list[Channel[int]] = [Channel() for _ in range(1000)]
    merged = merge(sources)
    assert threading.active_count() == threads_before
    for index, source in enumerate(sources):
        source.put(index)
        source.close()
    values = sorted(value for _, value in merged)
    assert values == list(range(1000))
    assert merged.closed
    assert all(source.statistics().watchers == 0 for source in sources)
    assert threading.active_count() == threads_before


def test_an_abandoned_merge_stops_watching_its_sources() -> None:
    source: Channel[int] = Channel()
    merge([source])
    gc.collect()
    assert source.statistics().watchers == 0
    assert not source.closed
    source.close()


def test_alts_and_merge_read_the_same_sources_without_loss() -> None:
    sources: list[Channel[int]] = [Channel() for _ in range(4)]
    merged = merge(sources)
    for index, source in enumerate(sources):
        source.put(index)
        source.close()
    got = []
    value, channel = alts([merged])
    got.append(value[1])
    got.extend(value for _, value in merged)
    assert sorted(got) == [0, 1, 2, 3]


def test_merge_reads_real_streams_and_leaves_no_reader_or_socket() -> None:
    with FakeLLMServer() as server:
        texts = ["alpha beta", "gamma delta epsilon", "zeta"]
        for text in texts:
            server.script(text=text, delay=0.001)
        streams = [
            completion("openai", "test-model", {"messages": MESSAGES, "stream": True},
                       {"api_key": "test-key", "api_base": server.api_base("openai")})
            for _ in texts
        ]
        received: dict[int, str] = {id(stream): "" for stream in streams}
        with merge(streams, close_sources=True) as merged:
            for stream, chunk in merged:
                received[id(stream)] += extract_content(chunk) or ""
        assert sorted(received.values()) == sorted(texts)
        assert all(stream.join(5) for stream in streams)
    # conftest checks that no reader thread or socket outlives the test.


def test_a_failing_stream_in_a_merge_raises_with_its_channel() -> None:
    with FakeLLMServer() as server:
        server.script(text="fine")
        server.script(error_status=500)
        config = {"api_key": "test-key", "api_base": server.api_base("openai"), "max_retries": 0}
        request = {"messages": MESSAGES, "stream": True}
        streams = [completion("openai", "test-model", request, config) for _ in range(2)]
        failures = []
        pairs = []
        with merge(streams, close_sources=True) as merged:
            while True:
                try:
                    pair = merged.get(timeout=10)
                except ProviderError as error:
                    failures.append(error.channel)
                    continue
                if pair is None:
                    break
                pairs.append(pair)
        assert len(failures) == 1 and failures[0] in streams
        good = next(stream for stream in streams if stream is not failures[0])
        assert "".join(extract_content(c) or "" for s, c in pairs if s is good) == "fine"
