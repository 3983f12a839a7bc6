"""Shared fixtures: every test is checked for leaked litestream threads and sockets."""

from __future__ import annotations

import os
import threading
import time

import pytest
from timers import timer_threads

from litestream import transport

_GRACE = 5.0


def _socket_inodes() -> set[str]:
    inodes = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith("socket:"):
            inodes.add(target)
    return inodes


def _litestream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("litestream-")]


def _running_servers() -> list:
    try:
        from litestream.testing import FakeLLMServer
    except ImportError:
        return []
    return list(FakeLLMServer.running())


@pytest.fixture
def timer_thread_ends():
    """Fail a test of timers that leaves one pending: the timer thread must end (2 s grace)."""
    yield
    for thread in timer_threads():
        thread.join(2.0)
        assert not thread.is_alive(), "the timer thread outlived the test"


@pytest.fixture
def server():
    """A FakeLLMServer on 127.0.0.1 for one test (modules may define their own)."""
    from litestream.testing import FakeLLMServer

    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
def backup_server():
    """A second FakeLLMServer, for fallbacks and races."""
    from litestream.testing import FakeLLMServer

    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def no_leaked_threads_or_sockets():
    """Fail the test if a litestream thread or a socket it opened outlives it."""
    sockets_before = _socket_inodes()
    yield
    deadline = time.monotonic() + _GRACE
    for thread in _litestream_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in _litestream_threads()]
    transport.close_idle_connections()
    for server in _running_servers():
        server.wait_idle(max(0.1, deadline - time.monotonic()))
    leaked = _socket_inodes() - sockets_before
    assert not alive, f"litestream threads outlived the test: {alive}"
    assert not leaked, f"{len(leaked)} socket(s) outlived the test"
