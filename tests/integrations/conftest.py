"""Fixtures for the web integration tests: a fake upstream, the example apps served by real
WSGI servers, a real browser."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socketserver
import sys
import threading
import wsgiref.simple_server
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from litestream.testing import FakeLLMServer

EXAMPLES = Path(__file__).parents[2] / "examples"
DJANGO_SITE = EXAMPLES / "django_app"
# The web examples share examples/_setup.py (their upstream from LITESTREAM_* variables).
if str(EXAMPLES) not in sys.path:
    sys.path.append(str(EXAMPLES))

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


def load_flask_example() -> Any:
    """Import ``examples/flask_app.py`` as a module."""
    spec = importlib.util.spec_from_file_location("flask_app_example", EXAMPLES / "flask_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The upstream key each example app is configured with (it must never reach a client).
UPSTREAM_KEYS = {"flask": "sk-upstream-secret-123456789", "django": "sk-upstream-django-98765"}


@pytest.fixture
def flask_url(upstream: FakeLLMServer, wsgi: Any) -> str:
    """The Flask example, served by werkzeug, in front of ``upstream``."""
    app = load_flask_example().create_app(
        provider="openai", model="test-model",
        config={"api_key": UPSTREAM_KEYS["flask"], "api_base": upstream.api_base("openai")},
        heartbeat=0.05)
    return wsgi(app)


@pytest.fixture(scope="module")
def django_application() -> Any:
    """The Django example site's WSGI application."""
    if str(DJANGO_SITE) not in sys.path:
        sys.path.insert(0, str(DJANGO_SITE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_site.settings")
    from chat_site.wsgi import application

    return application


@pytest.fixture
def django_url(django_application: Any, upstream: FakeLLMServer, wsgi: Any) -> Iterator[str]:
    """The Django example, served by a threaded wsgiref server, in front of ``upstream``."""
    from _setup import Upstream
    from django.test import override_settings

    config = {"api_key": UPSTREAM_KEYS["django"], "api_base": upstream.api_base("openai")}
    target = Upstream("openai", "test-model", config)
    with override_settings(LITESTREAM_UPSTREAM=target, LITESTREAM_HEARTBEAT=0.05):
        yield wsgi(django_application, "wsgiref")


@pytest.fixture(params=["flask", "django"])
def app_url(request: Any) -> str:
    """Each example app in turn (Flask, then Django): the same tests run against both."""
    return request.getfixturevalue(f"{request.param}_url")
