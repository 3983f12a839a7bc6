"""Fixtures for the web integration tests: a fake upstream, real WSGI servers, a real browser."""

from __future__ import annotations

import contextlib
import os
import socket
import socketserver
import threading
import wsgiref.simple_server
from typing import Any, Callable, Iterator

import pytest

from litestream.testing import FakeLLMServer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
BROWSER_ARGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-first-run", "--disable-quic",
)


class _HandlerThreads:
    """Runs each request in its own thread and remembers the threads, so teardown can join them."""

    handler_threads: list[threading.Thread]

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread,  # type: ignore[attr-defined]
            args=(request, client_address), name="wsgi-handler", daemon=True)
        self.handler_threads.append(thread)
        thread.start()


def _werkzeug_server(app: Any) -> Any:
    from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        def log_request(self, *args: Any) -> None:
            pass

    class Server(_HandlerThreads, ThreadedWSGIServer):
        pass

    server = Server("127.0.0.1", 0, app, handler=Handler)
    server.handler_threads = []
    return server


def _wsgiref_server(app: Any) -> Any:
    class Handler(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    class Server(_HandlerThreads, socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    server.set_app(app)
    server.handler_threads = []
    return server


@contextlib.contextmanager
def serve_wsgi(app: Any, kind: str = "werkzeug") -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 in a thread; yield its base URL; stop and join everything."""
    server = _werkzeug_server(app) if kind == "werkzeug" else _wsgiref_server(app)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                               name=f"{kind}-serve", daemon=True)
    serving.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        serving.join(5)
        for thread in server.handler_threads:
            thread.join(5)
        stuck = [thread for thread in server.handler_threads if thread.is_alive()]
        assert not stuck, f"{len(stuck)} request handler(s) still running after the test"


@pytest.fixture
def upstream() -> Iterator[FakeLLMServer]:
    """A FakeLLMServer standing in for the provider behind the web app."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def wsgi() -> Iterator[Callable[..., str]]:
    """Start WSGI servers with ``wsgi(app, kind)``; all are stopped after the test."""
    with contextlib.ExitStack() as stack:
        yield lambda app, kind="werkzeug": stack.enter_context(serve_wsgi(app, kind))


@pytest.fixture
def browser(tmp_path: Any) -> Iterator[Any]:
    """A headless Chromium driven by selenium; skipped (failed under CI) when it cannot start."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in BROWSER_ARGS:
            options.add_argument(argument)
        options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except Exception as error:
        reason = f"headless Chromium could not start ({type(error).__name__}: {error})"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must install chromium and chromium-driver")
        pytest.skip(reason)
    try:
        yield driver
    finally:
        driver.quit()


def _read_events_then_hang_up(url: str, path: str, count: int) -> list[bytes]:
    """GET ``path`` over a raw socket, read until ``count`` data events arrived, then close."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        received = b""
        while received.count(b"data: ") < count:
            data = sock.recv(65536)
            assert data, f"the server closed the stream early: {received!r}"
            received += data
        return [line for line in received.split(b"\n") if line.startswith(b"data: ")]
    finally:
        sock.close()


@pytest.fixture()
def hang_up_releases_upstream() -> Callable[[str, FakeLLMServer], None]:
    """``check(url, upstream)``: a client reads two events of ``/stream`` and hangs up;
    the upstream connection must close and no litestream thread may be left."""
    return _check_hang_up_releases_upstream


def _check_hang_up_releases_upstream(url: str, upstream: FakeLLMServer) -> None:
    upstream.script(text="one two three four five", stall_after=3)
    assert len(_read_events_then_hang_up(url, "/stream?question=Hi", 2)) >= 2
    assert upstream.wait_for_disconnect(5), "the upstream request outlived the web client"
    for thread in threading.enumerate():
        if thread.name.startswith("litestream-"):  # the reader, and the timer it used
            thread.join(5)
    assert not [t for t in threading.enumerate() if t.name.startswith("litestream-")]
