"""Hostile and broken servers (issue 14, part 2): each answered by a raw loopback server of its own.

Every test has a hard timeout, so a regression to a hang fails instead of
stalling the suite.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import zlib

import pytest
from _raw_server import RawServer, read_request

import litestream as ls
from litestream import errors
from litestream._body import MAX_INFLATE_PER_READ
from litestream._channel_state import _ChannelState
from litestream.transport import MAX_ERROR_BODY, MAX_RESPONSE_BODY

pytestmark = pytest.mark.timeout(30)

MESSAGES = [{"role": "user", "content": "Hi"}]
CONTENT = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"content": "hello"}, "finish_reason": None}]}
EVENT = b"data: " + json.dumps(CONTENT).encode() + b"\n\n"
WHOLE = json.dumps({"id": "r1", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {
                        "role": "assistant", "content": "whole"}}]}).encode()


def stream_of(server, provider="openai", **options):
    options.setdefault("max_retries", 0)
    return ls.completion(provider, "m", messages=MESSAGES, stream=True, api_key="hostile-key-123",
                         api_base=server.url + "/v1", **options)


def call(server, provider="openai", **options):
    options.setdefault("max_retries", 0)
    return ls.completion(provider, "m", messages=MESSAGES, api_key="hostile-key-123",
                         api_base=server.url + "/v1", **options)


def answer(head: bytes, body: bytes = b"", stall: bool = False):
    """Return a handler sending ``head`` and ``body``, then stalling or closing."""
    def handler(connection, stop):
        if not read_request(connection):
            return
        connection.sendall(head + body)
        if stall:
            stop.wait()
        else:
            connection.shutdown(socket.SHUT_WR)
            stop.wait(5)
    return handler


# -- hangs: a body delimited by the connection's end, then nothing ------------

UNDELIMITED_HEADS = {
    "connection-close": b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nConnection: close\r\n\r\n",
    "http-1.0": b"HTTP/1.0 200 OK\r\nContent-Type: %s\r\n\r\n",
}


@pytest.mark.parametrize("kind", list(UNDELIMITED_HEADS))
def test_close_ends_twenty_stalled_streams_delimited_by_the_connection_end(kind):
    head = UNDELIMITED_HEADS[kind] % b"text/event-stream"
    with RawServer(answer(head, EVENT, stall=True)) as server:
        streams = [stream_of(server, idle_timeout=None) for _ in range(20)]
        for stream in streams:
            assert stream.get(timeout=10).content == "hello"
        for stream in streams:
            stream.close()
        assert all(stream.join(timeout=5) for stream in streams)


@pytest.mark.parametrize("kind", list(UNDELIMITED_HEADS))
def test_an_idle_deadline_ends_a_stalled_stream_delimited_by_the_connection_end(kind):
    head = UNDELIMITED_HEADS[kind] % b"text/event-stream"
    with RawServer(answer(head, EVENT, stall=True)) as server:
        stream = stream_of(server, idle_timeout=0.3)
        assert stream.get(timeout=10).content == "hello"
        with pytest.raises(errors.IdleTimeout):
            stream.get(timeout=10)
        assert stream.join(timeout=5)


@pytest.mark.parametrize("kind", list(UNDELIMITED_HEADS))
def test_a_total_deadline_ends_a_stalled_whole_body_delimited_by_the_connection_end(kind):
    head = UNDELIMITED_HEADS[kind] % b"application/json"
    with RawServer(answer(head, WHOLE[:10], stall=True)) as server:
        with pytest.raises(errors.TotalTimeout):
            call(server, timeout=0.5)


def test_a_whole_body_dripping_one_byte_at_a_time_meets_the_default_total_deadline(monkeypatch):
    from litestream import options, transport
    assert options.DEFAULT_RESPONSE_TIMEOUT == 600.0  # as the official SDKs
    monkeypatch.setattr(transport, "DEFAULT_RESPONSE_TIMEOUT", 0.5)

    def handler(connection, stop):
        read_request(connection)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100000\r\n\r\n")
        while not stop.wait(0.05):  # every byte in time for the idle deadline
            connection.sendall(b" ")
    with RawServer(handler) as server:
        with pytest.raises(errors.TotalTimeout):
            call(server, idle_timeout=5)


def test_a_whole_body_that_stalls_meets_the_first_byte_and_idle_deadlines():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
    with RawServer(answer(head, b"", stall=True)) as server:
        with pytest.raises(errors.FirstChunkTimeout):
            call(server, first_chunk_timeout=0.3)
    with RawServer(answer(head, b"{", stall=True)) as server:
        with pytest.raises(errors.IdleTimeout):
            call(server, idle_timeout=0.3)


# -- redirects ----------------------------------------------------------------

@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("stream", [True, False])
def test_a_redirect_is_not_followed_and_sends_no_credentials_elsewhere(status, stream):
    with RawServer(answer(b"", b"")) as elsewhere:
        def handler(connection, stop):
            read_request(connection)
            connection.sendall(
                b"HTTP/1.1 %d Moved\r\nLocation: %s/v1/messages?token=LOCATIONSECRET\r\n"
                b"Content-Length: 0\r\n\r\n" % (status, elsewhere.url.encode()))
            stop.wait(5)
        with RawServer(handler) as server:
            with pytest.raises(errors.ProtocolError) as raised:
                if stream:
                    stream_of(server, "anthropic").get(timeout=10)
                else:
                    call(server, "anthropic")
        assert not elsewhere.connections
    message = str(raised.value)
    assert str(status) in message and "does not follow redirects" in message
    assert "LOCATIONSECRET" not in message and raised.value.status_code == status


# -- compression --------------------------------------------------------------

def test_a_gzip_stream_keeps_backpressure_with_a_paused_consumer(monkeypatch):
    body = gzip.compress(EVENT * 20000)
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    full_at_a_put = threading.Event()
    put_many = _ChannelState.put_many

    def noting_put_many(state, values):
        if state._full():
            full_at_a_put.set()  # the reader is about to wait for the consumer
        return put_many(state, values)

    monkeypatch.setattr(_ChannelState, "put_many", noting_put_many)
    with RawServer(answer(head, body)) as server:
        stream = stream_of(server, buffer=8)
        try:
            assert stream.get(timeout=10).content == "hello"
            assert full_at_a_put.wait(10)
            # The reader filled the buffer and waits: it holds at most the
            # buffer plus the chunks of one read (64 KiB inflated), of 20,000.
            state = stream._state
            with state.lock:
                assert 8 <= len(state.buffer) <= 8 + MAX_INFLATE_PER_READ // len(EVENT) + 1
        finally:
            stream.close()


def test_a_gzip_bomb_of_comments_meets_the_first_chunk_deadline():
    body = gzip.compress(b": keepalive\n\n" * 20_000_000)  # 260 MB of comments, ~250 KB sent
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with RawServer(answer(head, body, stall=True)) as server:
        with pytest.raises(errors.FirstChunkTimeout):
            stream_of(server, first_chunk_timeout=0.5).get(timeout=20)


def test_inflation_per_read_is_bounded():
    assert MAX_INFLATE_PER_READ <= 65536


def test_a_whole_body_past_the_cap_is_a_protocol_error():
    body = gzip.compress(b" " * (MAX_RESPONSE_BODY + 1))
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with RawServer(answer(head, body)) as server:
        with pytest.raises(errors.ProtocolError, match="larger than"):
            call(server)


def test_a_whole_body_at_the_cap_is_read():
    text = WHOLE + b" " * (MAX_RESPONSE_BODY - len(WHOLE))
    body = zlib.compress(text)
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: deflate\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with RawServer(answer(head, body)) as server:
        assert call(server).choices[0].message.content == "whole"


def test_an_error_body_is_read_only_up_to_its_cap():
    message = "m" * (MAX_ERROR_BODY * 4)
    body = gzip.compress(json.dumps({"error": {"message": message}}).encode())
    head = (b"HTTP/1.1 500 Oops\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    with RawServer(answer(head, body)) as server:
        with pytest.raises(errors.ProviderError) as raised:
            call(server)
    assert raised.value.status_code == 500
    assert len(str(raised.value)) < MAX_ERROR_BODY + 1000


# -- foreign exceptions -------------------------------------------------------

def test_a_deeply_nested_whole_body_is_a_protocol_error():
    body = b"[" * 100_000
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    with RawServer(answer(head % len(body), body)) as server:
        with pytest.raises(errors.ProtocolError):
            call(server)


@pytest.mark.parametrize("status, error_class", [(429, errors.RateLimitError),
                                                 (500, errors.ProviderError)])
def test_an_error_body_that_breaks_the_parser_keeps_the_status_class(status, error_class):
    body = json.dumps({"error": {"message": "x", "code": "²", "status": "²",
                                 "type": "²"}}).encode()
    head = (b"HTTP/1.1 %d Err\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, len(body)))
    for provider in ("openai", "anthropic", "gemini", "ollama"):
        with RawServer(answer(head, body)) as server:
            with pytest.raises(error_class) as raised:
                call(server, provider)
        assert raised.value.retryable


@pytest.mark.parametrize("value", ["inf", "1e999", "nan", "-inf"])
def test_an_infinite_retry_after_is_ignored(value):
    head = (b"HTTP/1.1 429 Slow\r\nContent-Type: application/json\r\nRetry-After: %s\r\n"
            b"Content-Length: 2\r\n\r\n" % value.encode())
    with RawServer(answer(head, b"{}")) as server:
        with pytest.raises(errors.RateLimitError) as raised:
            call(server)
        assert raised.value.retry_after is None
        with pytest.raises(errors.RateLimitError):
            stream_of(server).get(timeout=10)
    assert errors.error_summary(raised.value)


# -- secrets and small ones ---------------------------------------------------

def test_a_password_in_the_api_base_is_never_shown():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    api_base = f"http://user:PASSWORD123@127.0.0.1:{port}/v1"
    for stream in (True, False):
        with pytest.raises(errors.StreamConnectionError) as raised:
            result = ls.completion("openai", "m", messages=MESSAGES, api_key="hostile-key-123",
                                   api_base=api_base, stream=stream, max_retries=0)
            if stream:
                result.get(timeout=10)
        shown = str(raised.value) + repr(raised.value) + errors.error_summary(raised.value)
        assert "PASSWORD123" not in shown


def test_an_html_200_without_a_content_type_is_a_protocol_error():
    body = b"<html><body>Welcome to the captive portal</body></html>"
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    with RawServer(answer(head, body)) as server:
        with pytest.raises(errors.ProtocolError, match="captive portal"):
            stream_of(server).get(timeout=10)


def test_a_streamed_event_at_its_size_bound_is_read_and_one_byte_more_is_not():
    line = b"data: " + json.dumps(CONTENT).replace("hello", "h" * 5000).encode() + b"\n"
    body = line + b"\ndata: [DONE]\n\n"
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n"
            % len(body))
    with RawServer(answer(head, body)) as server:
        stream = stream_of(server, max_event_size=len(line))
        assert stream.get(timeout=10).content == "h" * 5000
        stream.close()
    chunked = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    with RawServer(answer(chunked, line, stall=True)) as server:
        with pytest.raises(errors.ProtocolError, match="maximum event size"):
            stream_of(server, max_event_size=len(line) - 1).get(timeout=10)
