"""Fixtures for the real-model tests: one llama.cpp server with SmolLM2 for the session.

The tests here are skipped only when ``llama-cpp-python`` is not installed,
and never in CI: with ``CI`` set, a missing ``llama_cpp`` is a failure, so the
suite cannot pass there without having talked to a real model.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import time
from typing import Iterator

import pytest

from litestream.testing.local import LocalModelServer

_MISSING = "llama-cpp-python is not installed; pip install -e '.[real]' to run the real-model tests"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``real`` marker."""
    config.addinivalue_line("markers", "real: talks to a real model served by llama.cpp")


@pytest.fixture(scope="session")
def llama_cpp_installed() -> None:
    """Skip the test when llama-cpp-python is missing; fail it instead when ``CI`` is set."""
    if importlib.util.find_spec("llama_cpp") is None:
        if os.environ.get("CI"):
            pytest.fail(f"{_MISSING} (CI is set, so the real-model tests may not be skipped)")
        pytest.skip(_MISSING)


@pytest.fixture(scope="session")
def llama_server(llama_cpp_installed: None) -> Iterator[LocalModelServer]:
    """llama.cpp's server with SmolLM2 on a free loopback port, for the whole session."""
    started = time.monotonic()
    with LocalModelServer(startup_timeout=120.0) as server:
        print(f"\nllama.cpp server ready at {server.url} in {time.monotonic() - started:.2f} s")
        yield server


@pytest.fixture
def dead_api_base() -> str:
    """An ``api_base`` on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
