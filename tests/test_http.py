"""Tests for litestream._http: the short way of a plain request, on kept-alive connections."""

from __future__ import annotations

import socket
import threading
from typing import Callable
from urllib.parse import urlsplit

import pytest
import requests
from reliability._raw_server import RawServer, read_request

import litestream as ls
from litestream import _http, _session, errors
from litestream._body import BodyReader, read_capped

STREAM = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s")
EVENTS = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
          b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}\n\n'
          b"data: [DONE]\n\n")


def _answering(reply: Callable[[RawServer], bytes]):
    """A handler answering every request of a connection with ``reply(server)``."""
    def handle(connection: socket.socket, stop: threading.Event, server: RawServer) -> None:
        while not stop.is_set():
            request = read_request(connection)
            if not request:
                return
            server.record(request)
            connection.sendall(reply(server))
    return handle


#: Every request of the connection answered with one short stream.
_keep_alive = _answering(lambda server: STREAM % (len(EVENTS), EVENTS))


def _one_answer_then_close(connection: socket.socket, stop: threading.Event,
                           server: RawServer) -> None:
    """Answer one request as if the connection stayed open, then close it."""
    request = read_request(connection)
    if request:
        server.record(request)
        connection.sendall(STREAM % (len(EVENTS), EVENTS))
    connection.shutdown(socket.SHUT_RDWR)


def _server(handler) -> RawServer:
    server = RawServer(lambda connection, stop: handler(connection, stop, server))
    return server


def _stream_text(url: str, **options) -> str:
    stream = ls.completion("openai", "m", messages=[{"role": "user", "content": "hi"}],
                           stream=True, api_key="sk-test", api_base=f"{url}/v1",
                           max_retries=0, **options)
    with stream:
        return "".join(ls.extract_content(chunk) or "" for chunk in stream)


def _head_lines(request: bytes) -> list[bytes]:
    return request.partition(b"\r\n\r\n")[0].split(b"\r\n")


def test_a_plain_request_goes_out_as_requests_would_send_it() -> None:
    with _server(_keep_alive) as server:
        url = f"{server.url}/v1/chat/completions"
        headers = {"Authorization": "Bearer sk-test", "Accept-Encoding": "identity"}
        body = {"model": "m", "messages": [{"role": "user", "content": "é"}]}
        ours = _session.send("POST", url, headers, body, 5.0, True)
        assert isinstance(ours, _http.Response)
        read_capped(BodyReader(ours), 10_000)
        ours.release(True)
        with requests.Session() as plain:
            theirs = plain.post(url, headers=headers, json=body)
            assert theirs.status_code == 200
    ours_request, theirs_request = server.requests
    assert ours_request.partition(b"\r\n\r\n")[2] == theirs_request.partition(b"\r\n\r\n")[2]
    assert sorted(_head_lines(ours_request)) == sorted(_head_lines(theirs_request))


def test_a_connection_is_kept_alive_for_the_next_request() -> None:
    with _server(_keep_alive) as server:
        assert [_stream_text(server.url) for _ in range(3)] == ["hi"] * 3
        assert len(server.requests) == 3
        assert len(server.connections) == 1


def test_an_idle_connection_the_server_closed_is_not_used_again() -> None:
    with _server(_one_answer_then_close) as server:
        # The first answer says nothing of closing: the connection goes back
        # to the pool, and the server's close must be noticed before reuse.
        assert _stream_text(server.url) == "hi"
        key = ("http", "127.0.0.1", server.port, None)
        assert len(_http._idle.get(key, [])) == 1
        assert _stream_text(server.url) == "hi"
        assert len(server.connections) == 2


def test_a_proxy_in_the_environment_takes_requests_path(monkeypatch) -> None:
    with _server(_keep_alive) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # The proxy answers itself; what matters is that it was asked, in proxy form.
        assert _stream_text("http://llm.invalid:8080") == "hi"
    request_line = _head_lines(proxy.requests[0])[0]
    assert request_line == b"POST http://llm.invalid:8080/v1/chat/completions HTTP/1.1"


def test_a_cookie_the_server_set_is_sent_back_through_requests_path() -> None:
    def first_sets_a_cookie(server: RawServer) -> bytes:
        cookie = b"Set-Cookie: sid=abc; Path=/\r\n" if len(server.requests) == 1 else b""
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n" + cookie
                + b"Content-Length: %d\r\n\r\n" % len(EVENTS) + EVENTS)

    try:
        with _server(_answering(first_sets_a_cookie)) as server:
            assert _stream_text(server.url) == "hi"
            assert _session.session().cookies.get("sid") == "abc"
            assert _stream_text(server.url) == "hi"
        assert b"Cookie: sid=abc" not in server.requests[0]
        assert b"Cookie: sid=abc" in server.requests[1]
    finally:
        _session.session().cookies.clear()


def test_a_refused_connection_names_the_host() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there now
    with pytest.raises(errors.StreamConnectionError, match=f"127.0.0.1:{port}"):
        _stream_text(f"http://127.0.0.1:{port}")


@pytest.mark.parametrize("url, short", [
    ("http://127.0.0.1:8080/v1/chat/completions", True),
    ("https://api.example.com/v1/chat/completions?alt=sse", True),
    ("http://user:secret@127.0.0.1:8080/v1", False),  # requests makes that Basic auth
    ("http://bücher.example/v1", False),  # IDNA
    ("http://127.0.0.1/v1/a b", False),  # requests quotes it
    ("http://127.0.0.1/v1/caf%C3%A9", False),
    ("ftp://127.0.0.1/v1", False),
])
def test_only_urls_requests_would_send_unchanged_take_the_short_way(url: str, short: bool) -> None:
    assert _http.usable(urlsplit(url)) is short


def test_a_header_value_with_a_line_break_is_refused_before_sending() -> None:
    with _server(_keep_alive) as server:
        with pytest.raises(requests.exceptions.InvalidHeader):
            _session.send("POST", f"{server.url}/v1", {"X-Bad": "a\r\nInjected: 1"}, {}, 5.0,
                          True)
        assert server.requests == []


def test_idle_connections_beyond_the_limit_are_closed(monkeypatch) -> None:
    monkeypatch.setattr(_http, "MAX_IDLE_PER_HOST", 1)
    all_asked = threading.Barrier(3, timeout=10)

    def answer_together(connection: socket.socket, stop: threading.Event,
                        server: RawServer) -> None:
        # No answer before all three requests arrived: three connections are in use.
        request = read_request(connection)
        server.record(request)
        all_asked.wait()
        connection.sendall(STREAM % (len(EVENTS), EVENTS))
        while read_request(connection):
            pass

    with _server(answer_together) as server:
        streams = [ls.completion("openai", "m", messages=[{"role": "user", "content": "hi"}],
                                 stream=True, api_key="sk-test", api_base=f"{server.url}/v1")
                   for _ in range(3)]
        for stream in streams:
            with stream:
                assert [ls.extract_content(chunk) for chunk in stream] == ["hi"]
        assert len(server.connections) == 3
        key = ("http", "127.0.0.1", server.port, None)
        assert len(_http._idle.get(key, [])) == 1


def test_a_whole_body_answer_leaves_its_connection_for_the_next_call() -> None:
    answer = (b'{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":'
              b'[{"index":0,"message":{"role":"assistant","content":"hi"},'
              b'"finish_reason":"stop"}]}')

    json_answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer))

    with _server(_answering(lambda server: json_answer)) as server:
        for _ in range(2):
            response = ls.completion("openai", "m", messages=[{"role": "user", "content": "hi"}],
                                     api_key="sk-test", api_base=f"{server.url}/v1")
            assert response.content == "hi"
        assert len(server.requests) == 2
        assert len(server.connections) == 1
