"""A test listener that keeps every lifecycle event it hears (shared by the telemetry tests)."""

from __future__ import annotations

import threading
from typing import Any


class Recorder:
    """A listener that keeps every event, in the order they came."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Any] = []
        self.first_chunks: list[Any] = []
        self.ends: list[Any] = []

    def on_request(self, event: Any) -> None:
        with self.lock:
            self.requests.append(event)

    def on_first_chunk(self, event: Any) -> None:
        with self.lock:
            self.first_chunks.append(event)

    def on_end(self, event: Any) -> None:
        with self.lock:
            self.ends.append(event)
