"""The transport: reader threads, prompt delivery, cancellation, release, connection reuse."""

from __future__ import annotations

import gc
import gzip
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

import litestream as ls
from litestream import transport
from litestream.options import RetryPolicy
from litestream.testing import FakeLLMServer

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def server():
    """A fresh server per test: nothing another test scripted is left queued."""
    with FakeLLMServer() as fake:
        assert fake.pending == 0
        yield fake


def open_stream(server, provider="openai", **config):
    return ls.completion(provider, "test-model", messages=MESSAGES, stream=True,
                         api_key="transport-test-key", api_base=server.api_base(provider),
                         **config)


def reader_threads():
    return [t for t in threading.enumerate() if t.name.startswith("litestream-reader-")]


def text_of(stream):
    return "".join(ls.extract_content(chunk) or "" for chunk in stream)


def test_reader_thread_is_named_after_the_provider_and_is_a_daemon(server):
    server.script(text="a b", stall_after=1)
    stream = open_stream(server, "anthropic")
    try:
        assert ls.extract_content(stream.get(timeout=5)) or stream.get(timeout=5)
        threads = reader_threads()
        assert [t.name for t in threads] == ["litestream-reader-anthropic"]
        assert threads[0].daemon
    finally:
        stream.close()


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "ollama"])
def test_events_are_delivered_while_the_server_stalls(server, provider):
    # The first chunks must arrive although no more bytes follow them: the
    # reader never waits for a full read buffer.
    server.script(text="first second third", chunks=3, stall_after=2)
    with open_stream(server, provider) as stream:
        texts = []
        while len(texts) < 2:
            chunk = stream.get(timeout=5)
            if ls.extract_content(chunk):
                texts.append(ls.extract_content(chunk))
        assert "".join(texts).split() == ["first", "second"]


def test_close_mid_stream_releases_the_socket_and_the_thread_within_200_ms(server):
    server.script(text="a b c d e", chunks=5, stall_after=2)
    stream = open_stream(server)
    while not ls.extract_content(stream.get(timeout=5)):
        pass
    started = time.monotonic()
    stream.close()
    assert stream.join(timeout=0.2)
    assert time.monotonic() - started < 0.2
    assert server.wait_for_disconnect(timeout=1)
    assert stream.get() is None


def test_close_wakes_a_reader_blocked_on_a_full_buffer(server):
    server.script(text=" ".join(["word"] * 500), chunks=500)
    stream = open_stream(server, buffer=1)
    assert stream.get(timeout=5) is not None
    stream.close()
    assert stream.join(timeout=1)


def test_an_abandoned_stream_is_released_after_garbage_collection(server):
    server.script(text="a b c", chunks=3, stall_after=1)
    stream = open_stream(server)
    assert stream.get(timeout=5) is not None
    thread = reader_threads()[0]
    del stream
    gc.collect()
    thread.join(timeout=2)
    assert not thread.is_alive()
    assert server.wait_for_disconnect(timeout=2)


@pytest.mark.parametrize("text", ["emoji 😀 and 東京 and é", "🎉🎉 世界"])
@pytest.mark.parametrize("provider, path", [("openai", "/v1/chat/completions"),
                                            ("ollama", "/api/chat")])
def test_multibyte_characters_split_at_every_byte_survive(server, provider, path, text):
    # Take the wire bytes of one scripted reply, then replay them one byte per write.
    server.script(text=text, chunks=1)
    wire = requests.post(server.url + path, timeout=5,
                         json={"model": "m", "messages": MESSAGES, "stream": True}).content
    assert text.encode() in wire
    server.replay(wire, piece_size=1)
    with open_stream(server, provider) as stream:
        assert text_of(stream) == text


def test_a_finished_stream_returns_its_connection_for_reuse(server):
    transport.close_idle_connections()
    assert server.wait_idle(timeout=2)
    server.script(text="one")
    server.script(text="two")
    assert text_of(open_stream(server)) == "one"
    # Pooled, not closed: the server still holds the connection open...
    assert not server.wait_idle(timeout=0.3)
    disconnects = server.disconnects
    assert text_of(open_stream(server)) == "two"
    # ...and the second request did not need a new one.
    assert server.open_connections == 1
    assert server.disconnects == disconnects


def test_close_idle_connections_closes_pooled_sockets(server):
    server.script(text="pooled")
    assert text_of(open_stream(server)) == "pooled"
    transport.close_idle_connections()
    assert server.wait_idle(timeout=2)


def test_non_streaming_timeout_bounds_the_whole_call_not_each_read(server):
    # A whole JSON body dripping in small pieces: every read is quick, the call is not.
    server.script(text="slow but steady")
    body = requests.post(server.api_base("openai") + "/chat/completions", timeout=5,
                         json={"model": "m", "messages": MESSAGES}).content
    server.replay(body, content_type="application/json", piece_size=20, piece_delay=0.2)
    started = time.monotonic()
    with pytest.raises(ls.errors.TotalTimeout):
        ls.completion("openai", "test-model", messages=MESSAGES, api_key="transport-test-key",
                      api_base=server.api_base("openai"), timeout=0.5)
    assert time.monotonic() - started < 1.5
    assert server.wait_for_disconnect(timeout=2)


def test_connection_refused_names_the_host_without_urllib3_wording():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(ls.errors.StreamConnectionError) as raised:
        ls.completion("openai", "m", messages=MESSAGES, api_key="transport-test-key",
                      api_base=f"http://127.0.0.1:{port}/v1")
    message = str(raised.value)
    assert message.startswith(f"could not connect to 127.0.0.1:{port}: ")
    assert "refused" in message.lower()
    assert "Max retries" not in message and "HTTPConnection" not in message


def test_a_gzip_compressed_stream_is_read_over_http(server):
    transcript = Path(__file__).parent / "fixtures" / "streams" / "openai" / "plain_text.txt"
    expected = json.loads(transcript.with_suffix(".json").read_text())["expected"]["content"]
    server.replay(gzip.compress(transcript.read_bytes()), headers={"Content-Encoding": "gzip"},
                  piece_size=64)
    with open_stream(server) as stream:
        assert text_of(stream) == expected


def test_a_stream_retries_before_its_first_chunk_without_real_waiting(server):
    waits = []

    def fake_wait(seconds, cancelled):
        waits.append(seconds)
        return False

    server.script(error_status=500)
    server.script(error_status=500)
    server.script(text="third time lucky")
    policy = RetryPolicy(max_retries=2, wait=fake_wait)
    with open_stream(server, retry_policy=policy) as stream:
        assert text_of(stream) == "third time lucky"
    assert len(server.requests) == 3
    assert len(waits) == 2


def test_a_stream_is_not_retried_once_a_chunk_was_delivered(server):
    waits = []
    server.script(text="a b c", chunks=3, inband_error_after=1)
    server.script(text="never sent")
    policy = RetryPolicy(max_retries=2, wait=lambda seconds, cancelled: waits.append(1))
    with open_stream(server, retry_policy=policy) as stream:
        first = stream.get(timeout=5)
        assert ls.extract_content(first) or ls.extract_content(stream.get(timeout=5))
        with pytest.raises(ls.errors.LitestreamError):
            text_of(stream)
    assert len(server.requests) == 1
    assert not waits


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_parse_although_the_parent_was_parsing() -> None:
    """The readers' parse gate, held at fork time by another thread, is free in the child."""
    from litestream import _reader

    with _reader._PARSE_GATE:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os._exit(0 if _reader._PARSE_GATE.acquire(timeout=5) else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_stream_that_failed_by_a_deadline_is_freed_once_dropped(server):
    import weakref

    def consume_until_the_deadline() -> weakref.ref:
        stream = open_stream(server, idle_timeout=0.2, max_retries=0)
        with pytest.raises(ls.errors.IdleTimeout):
            for _chunk in stream:
                pass  # the error's traceback holds this frame, and the frame the stream
        assert stream.join(5.0)
        return weakref.ref(stream)

    server.script(text="a b c", stall_after=1)
    stream_ref = consume_until_the_deadline()
    gc.collect()
    # The reader kept the deadline's error; its finalizer, kept in a global
    # registry, must not keep the reader (and so the error and the stream) alive.
    assert stream_ref() is None
