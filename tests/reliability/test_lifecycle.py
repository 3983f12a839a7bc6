"""Closing, backpressure, selection and re-emission under faults, and the non-streaming path."""

from __future__ import annotations

import gc
import socket
import threading
from typing import Iterator

import pytest
from _harness import (
    MESSAGES,
    MODELS,
    PROVIDERS,
    assert_finished,
    closed_port,
    consume,
    join_readers,
    litestream_threads,
    open_stream,
)

import litestream
from litestream import errors
from litestream.streaming import to_sse_stream

PIECES = [f" w{number}" for number in range(50)]


@pytest.fixture
def full_listener() -> Iterator[int]:
    """A port whose accept queue is full: a new connection never completes its handshake."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        while True:  # connect until one attempt times out: the queue is full then
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except (TimeoutError, OSError):
                break
            assert len(fillers) < 50, "the accept queue never filled"
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_connection_that_never_completes_raises_connect_timeout(full_listener):
    stream = open_stream("openai", f"http://127.0.0.1:{full_listener}/v1", connect_timeout=0.3)
    outcome = consume(stream)
    assert outcome.chunks == []
    assert isinstance(outcome.error, errors.ConnectTimeout)
    assert outcome.error.retryable
    assert_finished(stream)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_close_before_the_headers_ends_the_request(provider, server):
    # Closed at once: the reader may be connecting, sending, or waiting for headers.
    server.script(no_response=True)
    stream = open_stream(provider, server.api_base(provider))
    stream.close()
    assert stream.join(5.0)
    assert stream.get(timeout=1) is None
    assert server.wait_idle(5.0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_close_from_another_thread_wakes_a_blocked_consumer(provider, server):
    server.script(chunks=PIECES, stall_after=2, keepalive_interval=0.05)
    stream = open_stream(provider, server.api_base(provider))
    got_content = threading.Event()
    seen: list[object] = []

    def consumer() -> None:
        for chunk in stream:
            if chunk.content:
                got_content.set()
            seen.append(chunk)
        seen.append("end")

    thread = threading.Thread(target=consumer)
    thread.start()
    assert got_content.wait(5.0)
    stream.close()
    thread.join(5.0)
    assert not thread.is_alive()
    assert seen[-1] == "end"
    assert stream.join(5.0)
    assert server.wait_for_disconnect(5.0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_slow_consumer_holds_the_reader_back_and_close_releases_it(provider, server):
    many = [f" word{number}" for number in range(5000)]  # far more than one socket read
    server.script(chunks=many)
    with open_stream(provider, server.api_base(provider), buffer=2) as stream:
        assert stream.get(timeout=5) is not None
        # The reader blocks on the full buffer: at most one read's batch past it.
        assert stream.qsize() < len(many) // 2
    assert stream.join(5.0)
    assert server.wait_for_disconnect(5.0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_abandoned_stream_blocked_on_a_full_buffer_is_closed_by_gc(provider, server):
    server.script(chunks=[f" word{number}" for number in range(5000)])
    stream = open_stream(provider, server.api_base(provider), buffer=1)
    assert stream.get(timeout=5) is not None
    del stream  # never closed: the finalizer must release the blocked reader
    gc.collect()
    assert server.wait_for_disconnect(5.0)
    join_readers()
    assert litestream_threads() == []


def test_alts_names_the_stream_that_failed_and_the_others_go_on(server):
    server.script(error_status=500)
    failing = open_stream("openai", server.api_base("openai"))
    assert failing.join(5.0)  # its error is waiting in it
    server.script(text="still here")
    healthy = open_stream("openai", server.api_base("openai"))
    with pytest.raises(errors.ProviderError) as raised:
        while True:
            litestream.alts([failing, healthy], timeout=5, priority=True)
    assert raised.value.channel is failing
    assert consume(healthy).content == "still here"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_sse_reemission_delivers_content_then_one_error_event(provider, server):
    server.script(chunks=PIECES[:3], inband_error_after=2)
    events = list(to_sse_stream(open_stream(provider, server.api_base(provider)), heartbeat=None))
    assert events[-1].startswith(b"event: error\ndata: ")
    assert b"[DONE]" not in b"".join(events)
    content = [event for event in events if b'"content":" w' in event]
    assert len(content) == 2


def test_sse_reemission_closed_by_the_web_server_closes_the_upstream(server):
    server.script(chunks=PIECES, stall_after=3)
    stream = open_stream("openai", server.api_base("openai"))
    events = to_sse_stream(stream, heartbeat=None)
    assert next(events).startswith(b"data: ")
    events.close()  # what a WSGI server does when the client goes away
    assert stream.closed
    assert stream.join(5.0)
    assert server.wait_for_disconnect(5.0)


_CALLBACK_FAULTS = {
    "inband_error": ({"inband_error_after": 2}, {}, errors.ProviderError),
    "cut": ({"cut_after_bytes": 400}, {}, errors.StreamConnectionError),
    "idle": ({"stall_after": 2, "keepalive_interval": 0.05}, {"idle_timeout": 0.3},
             errors.IdleTimeout),
    "malformed": ({"malformed_after": 1}, {}, errors.ProtocolError),
}


@pytest.mark.parametrize("fault", sorted(_CALLBACK_FAULTS))
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "ollama"])
def test_callbacks_under_faults_call_on_error_exactly_once(provider, fault, server):
    script, config, error_class = _CALLBACK_FAULTS[fault]
    server.script(chunks=PIECES[:6], **script)
    stream = open_stream(provider, server.api_base(provider), **config)
    calls: list[tuple[str, object]] = []
    future = litestream.consume_stream_with_callbacks(
        stream, lambda chunk: calls.append(("chunk", chunk)),
        on_complete=lambda response: calls.append(("complete", response)),
        on_error=lambda error: calls.append(("error", error)))
    with pytest.raises(error_class):
        future.result(timeout=10)
    kinds = [kind for kind, _ in calls]
    assert kinds.count("error") == 1 and "complete" not in kinds
    assert kinds[-1] == "error" and isinstance(calls[-1][1], error_class)
    assert stream.closed and stream.join(5.0)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "ollama"])
def test_two_consumers_of_one_failing_stream_share_its_chunks_and_one_error(provider, server):
    server.script(chunks=PIECES, inband_error_after=40)
    stream = open_stream(provider, server.api_base(provider), buffer=4)
    seen: list[list[object]] = [[], []]

    def consumer(mine: list[object]) -> None:
        try:
            for chunk in stream:
                mine.append(chunk.content)
        except errors.LitestreamError as error:
            mine.append(error)

    threads = [threading.Thread(target=consumer, args=(mine,)) for mine in seen]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10.0)
    raised = [item for mine in seen for item in mine if isinstance(item, errors.LitestreamError)]
    assert len(raised) == 1, "the error is raised once, to one consumer"
    texts = [item for mine in seen for item in mine if isinstance(item, str)]
    assert sorted(texts) == sorted(PIECES[:40])
    for mine in seen:  # each consumer sees its share in order
        own = [item for item in mine if isinstance(item, str)]
        assert own == sorted(own, key=PIECES.index)


# ---------------------------------------------------------------------------
# The non-streaming path under the same faults
# ---------------------------------------------------------------------------


def _complete(provider: str, api_base: str, **config: object) -> litestream.Response:
    config.setdefault("max_retries", 0)  # one scripted fault, one attempt
    response = litestream.completion(provider, MODELS[provider], messages=MESSAGES, stream=False,
                                     api_key="test-key", api_base=api_base, **config)
    assert isinstance(response, litestream.Response)
    return response


@pytest.mark.parametrize("provider", PROVIDERS)
def test_non_streaming_faults_raise_typed_errors(provider, server):
    base = server.api_base(provider)
    with pytest.raises(errors.StreamConnectionError):
        _complete(provider, f"http://127.0.0.1:{closed_port()}")
    server.script(error_status=429, retry_after=3)
    with pytest.raises(errors.RateLimitError) as raised:
        _complete(provider, base)
    assert raised.value.retry_after == 3.0
    server.script(error_status=503, error_body="<html><h1>Service Unavailable</h1></html>")
    with pytest.raises(errors.ProviderError, match="Service Unavailable"):
        _complete(provider, base)
    server.script(no_response=True)
    with pytest.raises(errors.StreamTimeout):
        _complete(provider, base, timeout=0.3)
    # The request given up on must have reached the server (and taken its reply)
    # before the next is sent: replies go to requests in the order they arrive.
    assert server.wait_for_requests(3, 5.0)
    server.script(not_event_stream=True)
    with pytest.raises(errors.ProtocolError):
        _complete(provider, base)
    server.script(text="whole answer", cut_after_bytes=20)
    with pytest.raises((errors.StreamConnectionError, errors.ProtocolError)):
        _complete(provider, base)
    server.script(text="whole answer")
    assert _complete(provider, base).content == "whole answer"
