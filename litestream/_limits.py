"""Limits per deployment, and the in-process state that admits calls under them.

A deployment registered with ``rpm``, ``tpm``, ``max_concurrent`` or
``burst`` has :class:`Limits`. Before each attempt the router asks its
state to :meth:`~LocalState.admit` the call: every limit is checked and, only
when all have room, reserved together. A call not admitted is told how long
to wait (``retry_after``); nothing is sent for it.

* ``rpm`` is a GCRA (a token bucket kept as one "theoretical arrival
  time"): it refills continuously at ``rpm/60`` requests per second and
  holds at most ``burst`` requests (default: one second's worth, at least 1).
* ``tpm`` the same way, in tokens: an admitted call reserves its estimate
  (the prompt's estimated tokens plus ``max_tokens``, or
  :data:`DEFAULT_COMPLETION_RESERVE`), and settles with the provider's
  reported usage when it ends (the difference is refunded or charged). The
  bucket holds one second's worth, or one call's estimate if that is larger.
* ``max_concurrent`` counts in-flight attempts; a :class:`Lease` frees its
  slot when the attempt ends.

The state reads an injectable clock, so tests move time instead of waiting.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from typing import Any, Callable, Mapping, Optional, Protocol

import attrs

from litestream import errors
from litestream.tokens import estimate_tokens

__all__ = [
    "DEFAULT_COMPLETION_RESERVE",
    "Admission",
    "Lease",
    "Limits",
    "LocalState",
    "State",
    "estimate_call_tokens",
]

#: Completion tokens reserved for a call that sets no ``max_tokens``.
DEFAULT_COMPLETION_RESERVE = 1024

#: Seconds a call waits before asking again for a concurrency slot.
SLOT_POLL = 0.05


def _positive(name: str) -> Callable[[Any, Any, Any], None]:
    def validate(instance: Any, attribute: Any, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                math.isfinite(value) and value > 0):
            raise errors.ConfigurationError(f"{name} must be a number > 0, not {value!r}")
    return validate


@attrs.frozen
class Limits:
    """The limits of one deployment (None: no limit).

    Attributes:
        rpm: requests per minute.
        tpm: tokens per minute.
        max_concurrent: attempts in flight at once.
        burst: requests admitted at once on a full bucket; one second's
            worth of ``rpm`` (at least 1) by default.
    """

    rpm: Optional[float] = attrs.field(default=None, validator=_positive("rpm"))
    tpm: Optional[float] = attrs.field(default=None, validator=_positive("tpm"))
    max_concurrent: Optional[int] = attrs.field(
        default=None, validator=_positive("max_concurrent"))
    burst: Optional[int] = attrs.field(default=None, validator=_positive("burst"))

    @max_concurrent.validator
    def _whole_slots(self, attribute: Any, value: Any) -> None:
        if value is not None and not isinstance(value, int):
            raise errors.ConfigurationError(f"max_concurrent must be an integer, not {value!r}")

    @property
    def any(self) -> bool:
        """True when at least one limit is set."""
        return any(v is not None for v in (self.rpm, self.tpm, self.max_concurrent))

    @property
    def request_burst(self) -> float:
        """Requests a full bucket admits at once."""
        if self.burst is not None:
            return float(self.burst)
        return max(1.0, math.floor((self.rpm or 60.0) / 60.0))


def estimate_call_tokens(request: Mapping[str, Any]) -> int:
    """Return the tokens a call reserves: its prompt's estimate plus its completion budget."""
    prompt = 0
    for message in request.get("messages") or ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            prompt += estimate_tokens(content)
        elif isinstance(content, list):
            prompt += sum(estimate_tokens(part.get("text") or "") for part in content
                          if isinstance(part, Mapping))
    budget = request.get("max_tokens") or request.get("max_completion_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget <= 0:
        budget = DEFAULT_COMPLETION_RESERVE
    return prompt + budget


@attrs.frozen
class Admission:
    """What :meth:`LocalState.admit` answered.

    Attributes:
        lease: the reservation when admitted, else None.
        retry_after: when not admitted, the seconds until it may be.
        limit: when not admitted, which limit is full (``"rpm"``...).
    """

    lease: Optional[Lease]
    retry_after: float = 0.0
    limit: Optional[str] = None


class State(Protocol):
    """Where a router keeps its deployments' limits: this process, or a shared store."""

    #: True when other processes see what this state records (cooldowns included).
    shared: bool

    def admit(self, key: str, limits: Limits, tokens: int) -> Admission:
        """Check every limit and the cooldown of ``key``; reserve them all, or none."""

    def settle(self, lease: Lease, used_tokens: int) -> None:
        """Free ``lease``'s slot and charge ``used_tokens`` instead of its reservation."""

    def renew(self, lease: Lease) -> None:
        """Extend ``lease``'s slot while its stream is read."""

    def cool(self, key: str, seconds: float) -> None:
        """Admit nothing for ``key`` during ``seconds``."""

    def forget(self, key: str) -> None:
        """Forget the buckets of ``key``."""


class Lease:
    """An admitted call's reservation: one concurrency slot and its reserved tokens.

    Call :meth:`settle` once, when the attempt ends; later calls do nothing.
    """

    def __init__(self, state: State, key: str, limits: Limits, tokens: int,
                 lease_id: Optional[str] = None) -> None:
        self.state = state
        self.key = key
        self.limits = limits
        self.tokens = tokens
        self.id = lease_id or str(next(_lease_ids))
        self._settled = False
        self._lock = threading.Lock()

    def renew(self) -> None:
        """Keep the slot while the stream is read (a shared state's leases expire)."""
        if not self._settled:
            self.state.renew(self)

    def settle(self, used_tokens: Optional[int] = None) -> None:
        """Free the slot; charge ``used_tokens`` instead of the reservation (None: keep it)."""
        with self._lock:
            if self._settled:
                return
            self._settled = True
        self.state.settle(self, self.tokens if used_tokens is None else used_tokens)


_lease_ids = itertools.count(1)


class LocalState:
    """Limits kept in this process: the default state of a router.

    Args:
        clock: monotonic seconds; ``time.monotonic`` by default.
    """

    shared = False

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._request_tat: dict[str, float] = {}
        self._token_tat: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        self._cooling_until: dict[str, float] = {}

    def admit(self, key: str, limits: Limits, tokens: int) -> Admission:
        """Check every limit of ``key`` and reserve them together, or none of them.

        Args:
            key: the deployment's name.
            limits: its limits.
            tokens: the tokens the call reserves (for ``tpm``).
        """
        now = self.clock()
        with self._lock:
            cooling = self._cooling_until.get(key, now) - now
            if cooling > 0:
                return Admission(None, cooling, "cooldown")
            in_flight = self._in_flight.get(key, 0)
            if limits.max_concurrent is not None and in_flight >= limits.max_concurrent:
                return Admission(None, SLOT_POLL, "max_concurrent")
            waits: list[tuple[float, str]] = []
            request_tat = token_tat = None
            if limits.rpm is not None:
                interval = 60.0 / limits.rpm
                request_tat, wait = _gcra(self._request_tat.get(key, now), now, interval,
                                          limits.request_burst * interval)
                waits.append((wait, "rpm"))
            if limits.tpm is not None:
                cost = tokens * 60.0 / limits.tpm
                token_tat, wait = _gcra(self._token_tat.get(key, now), now, cost,
                                        max(1.0, cost))
                waits.append((wait, "tpm"))
            wait, limit = max(waits, default=(0.0, None))
            if wait > 0:
                return Admission(None, wait, limit)
            if request_tat is not None:
                self._request_tat[key] = request_tat
            if token_tat is not None:
                self._token_tat[key] = token_tat
            self._in_flight[key] = in_flight + 1
        return Admission(Lease(self, key, limits, tokens))

    def settle(self, lease: Lease, used_tokens: int) -> None:
        """Free ``lease``'s slot and charge (or refund) the tokens it did not reserve."""
        with self._lock:
            self._in_flight[lease.key] = max(0, self._in_flight.get(lease.key, 1) - 1)
            if lease.limits.tpm is not None and lease.key in self._token_tat:
                self._token_tat[lease.key] += (used_tokens - lease.tokens) * 60.0 / lease.limits.tpm

    def renew(self, lease: Lease) -> None:
        """Do nothing: a slot of this process ends with its attempt, it never expires."""

    def cool(self, key: str, seconds: float) -> None:
        """Admit nothing for ``key`` during ``seconds``."""
        with self._lock:
            until = self.clock() + seconds
            self._cooling_until[key] = max(until, self._cooling_until.get(key, until))

    def in_flight(self, key: str) -> int:
        """Return the attempts of ``key`` in flight."""
        with self._lock:
            return self._in_flight.get(key, 0)

    def forget(self, key: str) -> None:
        """Forget the buckets of ``key`` (it was registered again); slots in flight stay."""
        with self._lock:
            self._request_tat.pop(key, None)
            self._token_tat.pop(key, None)
            self._cooling_until.pop(key, None)


def _gcra(tat: float, now: float, increment: float, capacity: float) -> tuple[float, float]:
    """Return the new theoretical arrival time, and the wait (0: admitted now)."""
    new_tat = max(tat, now) + increment
    allowed_at = new_tat - capacity
    return new_tat, max(0.0, allowed_at - now)
