"""The router's health book: recent failures per deployment, and cooldowns.

A deployment that fails ``failures`` times within ``window`` seconds is
skipped for ``duration`` seconds (while another one is left to try). The
book is keyed by ``(registered name, provider, model)`` and reads an
injectable clock, so tests move time instead of waiting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

from litestream import errors

__all__ = ["DeploymentKey", "HealthBook", "counts_against_deployment"]

logger = logging.getLogger("litestream")

#: ``(registered name, provider, model)``: the unit a cooldown applies to.
DeploymentKey = tuple[str, str, str]


def counts_against_deployment(error: errors.LitestreamError) -> bool:
    """Return True for failures of the deployment itself, not of the caller's request."""
    return errors.is_retryable(error) or isinstance(error, (
        errors.AuthenticationError,
        errors.PermissionDeniedError,
        errors.QuotaExceededError,
        errors.ModelNotFoundError,
    ))


class HealthBook:
    """Recent failures per deployment, and which deployments are cooling down.

    Args:
        failures: this many failures of a deployment ...
        window: ... within this many seconds ...
        duration: ... make it cool down for this many seconds.
        clock: monotonic seconds; ``time.monotonic`` by default.
    """

    def __init__(self, failures: int, window: float, duration: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failures = failures
        self.window = window
        self.duration = duration
        self.clock = clock
        self._lock = threading.Lock()
        self._recent: dict[DeploymentKey, deque[float]] = {}
        self._cooling_until: dict[DeploymentKey, float] = {}

    def cooling(self, key: DeploymentKey) -> bool:
        """Return True while ``key`` is skipped after repeated failures or a cooldown."""
        return self.cooling_for(key) > 0

    def cooling_for(self, key: DeploymentKey) -> float:
        """Return the seconds ``key`` still cools down (0 when it does not)."""
        with self._lock:
            until = self._cooling_until.get(key)
            if until is None:
                return 0.0
            left = until - self.clock()
            if left > 0:
                return left
            del self._cooling_until[key]
            return 0.0

    def cool(self, key: DeploymentKey, seconds: float) -> None:
        """Make ``key`` cool down for at least ``seconds`` (a provider's ``Retry-After``)."""
        with self._lock:
            until = self.clock() + seconds
            self._cooling_until[key] = max(until, self._cooling_until.get(key, until))

    def failed(self, key: DeploymentKey) -> bool:
        """Count a failure; return True when it starts a cooldown (the ``failures``-th)."""
        now = self.clock()
        with self._lock:
            recent = self._recent.setdefault(key, deque())
            recent.append(now)
            while recent and recent[0] <= now - self.window:
                recent.popleft()
            if len(recent) < self.failures:
                return False
            del self._recent[key]
            self._cooling_until[key] = now + self.duration
        logger.info(
            "%s/%s (%s) failed %d times within %.0f s: skipping it for %.0f s",
            key[1], key[2], key[0], self.failures, self.window, self.duration,
        )
        return True

    def succeeded(self, key: DeploymentKey) -> None:
        """Forget the failures of ``key``."""
        with self._lock:
            self._recent.pop(key, None)
            self._cooling_until.pop(key, None)

    def forget(self, name: str) -> None:
        """Forget the failures of every deployment registered as ``name``."""
        with self._lock:
            for table in (self._recent, self._cooling_until):
                for key in [key for key in table if key[0] == name]:
                    del table[key]

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._recent.clear()
            self._cooling_until.clear()
