"""The shared timer thread, as the tests look for it."""

from __future__ import annotations

import threading

#: The name of litestream's one timer thread.
TIMER_THREAD_NAME = "litestream-timer"


def timer_threads() -> list[threading.Thread]:
    """The shared timer thread, if it is running."""
    return [t for t in threading.enumerate() if t.name == TIMER_THREAD_NAME]
