"""Fixtures of the reliability suite.

Every test here also runs under the autouse leak check of ``tests/conftest.py``:
no ``litestream-*`` thread and no socket may outlive a test.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from litestream.testing import FakeLLMServer


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    """A running FakeLLMServer, stopped after the test."""
    with FakeLLMServer() as fake:
        yield fake
