"""Router state on Redis: limits, reservations, leases and cooldowns shared by every process.

``Router(state=RedisState("redis://host:6379/0"))`` makes every process
(gunicorn workers, several machines) pointed at the same Redis share one
set of limits per deployment name. Each admission is one Lua script run
with EVALSHA: the cooldown, ``rpm``, ``tpm`` and ``max_concurrent`` are
checked and reserved together, atomically, on Redis's clock. The keys of a
deployment share a hash tag (``litestream:{fast}:rpm``...) so the script
works on Redis Cluster. Concurrency slots are leases that expire unless the
stream being read renews them, so a crashed worker frees its slot.

When Redis cannot be reached (every call has a short timeout, so it never
hangs a request), ``on_state_error`` decides: ``"local"`` (default) goes on
with in-process limits, divided by the ``processes`` hint, logging one
warning per outage and one info line when Redis is back; ``"deny"`` makes
calls raise :class:`~litestream.errors.StreamConnectionError`.

Needs redis-py: ``pip install "litestream[redis]"``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from typing import Any, Optional

import attrs

from litestream import errors
from litestream._limits import SLOT_POLL, Admission, Lease, Limits, LocalState

__all__ = ["RedisState"]

logger = logging.getLogger("litestream")

# KEYS: rpm TAT, tpm TAT, slots (lease id -> expiry), cooldown-until.
# ARGV: rpm interval, rpm capacity, token cost, token capacity (seconds; 0: no limit),
#       max concurrent (0: none), lease id, lease seconds, slot poll seconds.
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cool = tonumber(redis.call('GET', KEYS[4]) or '0')
if cool > now then return {0, tostring(cool - now), 'cooldown'} end
local interval, rcap = tonumber(ARGV[1]), tonumber(ARGV[2])
local cost, tcap = tonumber(ARGV[3]), tonumber(ARGV[4])
local slots, lease_s = tonumber(ARGV[5]), tonumber(ARGV[7])
if slots > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= slots then return {0, ARGV[8], 'max_concurrent'} end
end
local wait, limit, rtat, ttat = 0, '', nil, nil
if interval > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  rtat = tat + interval
  if rtat - rcap - now > wait then wait, limit = rtat - rcap - now, 'rpm' end
end
if cost > 0 then
  local tat = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), now)
  ttat = tat + cost
  local cap = math.max(tcap, cost)
  if ttat - cap - now > wait then wait, limit = ttat - cap - now, 'tpm' end
end
if wait > 0 then return {0, tostring(wait), limit} end
if rtat then
  redis.call('SET', KEYS[1], tostring(rtat), 'PX', math.ceil((rtat - now) * 1000) + 1000)
end
if ttat then
  redis.call('SET', KEYS[2], tostring(ttat), 'PX', math.ceil((ttat - now) * 1000) + 1000)
end
if slots > 0 then
  redis.call('ZADD', KEYS[3], now + lease_s, ARGV[6])
  redis.call('PEXPIRE', KEYS[3], math.ceil(lease_s * 1000) + 1000)
end
return {1, '0', ''}
"""

# KEYS: tpm TAT, slots. ARGV: token seconds to add (negative: refund), lease id.
_SETTLE = """
redis.call('ZREM', KEYS[2], ARGV[2])
local delta = tonumber(ARGV[1])
if delta ~= 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[1], delta)
end
return 1
"""

# KEYS: slots. ARGV: lease id, lease seconds.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000) + 1000)
end
return 1
"""

# KEYS: cooldown-until. ARGV: seconds.
_COOL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local untill = now + tonumber(ARGV[1])
if untill > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], tostring(untill), 'PX', math.ceil(tonumber(ARGV[1]) * 1000) + 1000)
end
return 1
"""


class RedisState:
    """Limits, leases and cooldowns kept in Redis, shared by every process using it.

    Args:
        url: the Redis URL (``redis://127.0.0.1:6379/0``).
        prefix: the start of every key.
        on_state_error: ``"local"`` (go on with in-process limits) or
            ``"deny"`` (raise) while Redis cannot be reached.
        processes: with ``"local"``, how many processes share the limits:
            each keeps ``1/processes`` of every rate and slot count.
        timeout: seconds for every Redis call (connect included).
        lease_seconds: a concurrency slot not renewed for this long is freed.

    Attributes:
        url: the Redis URL given (never shown in messages or ``repr``: it
            may hold a password).

    Raises:
        ConfigurationError: a bad argument, or redis-py is not installed.
    """

    shared = True

    def __init__(self, url: str, prefix: str = "litestream", *, on_state_error: str = "local",
                 processes: int = 1, timeout: float = 0.25, lease_seconds: float = 30.0) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:  # pragma: no cover - the extra is not installed
            raise errors.ConfigurationError(
                'RedisState needs redis-py: pip install "litestream[redis]"') from None
        if on_state_error not in ("local", "deny"):
            raise errors.ConfigurationError(
                f"on_state_error must be 'local' or 'deny', not {on_state_error!r}")
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise errors.ConfigurationError(f"processes must be an integer >= 1, not {processes!r}")
        self.url = url
        self.prefix = prefix
        self.on_state_error = on_state_error
        self.processes = processes
        self.lease_seconds = lease_seconds
        self._redis_errors = (redis.RedisError, OSError)
        try:
            self._client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0), health_check_interval=0)
        except ValueError as error:  # the URL may hold a password: not repeated
            raise errors.ConfigurationError(
                f"not a Redis URL (redis://, rediss:// or unix://): {type(error).__name__}"
            ) from None
        self._admit = self._client.register_script(_ADMIT)
        self._settle = self._client.register_script(_SETTLE)
        self._cool = self._client.register_script(_COOL)
        self._renew = self._client.register_script(_RENEW)
        self._local = LocalState()
        self._lock = threading.Lock()
        self._down = False
        self._closed = False
        self._calls = 0
        self._idle = threading.Condition()
        self._timeout = timeout
        self._renewed: dict[str, float] = {}

    def keys(self, name: str) -> list[str]:
        """Return the keys of deployment ``name``: rpm, tpm, slots, cooldown (one hash tag)."""
        tag = f"{self.prefix}:{{{name}}}"
        return [f"{tag}:rpm", f"{tag}:tpm", f"{tag}:slots", f"{tag}:cool"]

    def admit(self, key: str, limits: Limits, tokens: int) -> Admission:
        """Check and reserve every limit of ``key`` in one script run on Redis."""
        lease_id = uuid.uuid4().hex
        interval = 60.0 / limits.rpm if limits.rpm else 0.0
        cost = tokens * 60.0 / limits.tpm if limits.tpm else 0.0
        args = [interval, limits.request_burst * interval, cost, 1.0 if cost else 0.0,
                limits.max_concurrent or 0, lease_id, self.lease_seconds, SLOT_POLL]
        try:
            admitted, wait, limit = self._admit(keys=self.keys(key), args=args)
        except self._redis_errors as error:
            return self._degraded(error).admit(key, self._scaled(limits), tokens)
        self._back()
        if int(admitted):
            return Admission(Lease(self, key, limits, tokens, lease_id))
        return Admission(None, float(wait), _text(limit))

    def settle(self, lease: Lease, used_tokens: int) -> None:
        """Free ``lease``'s slot and charge (or refund) the tokens it did not reserve."""
        self._renewed.pop(lease.id, None)
        delta = (used_tokens - lease.tokens) * 60.0 / lease.limits.tpm if lease.limits.tpm else 0
        keys = self.keys(lease.key)
        self._quietly(lambda: self._settle(keys=[keys[1], keys[2]], args=[delta, lease.id]))

    def renew(self, lease: Lease) -> None:
        """Extend ``lease``'s slot (at most once per third of the lease time)."""
        if not lease.limits.max_concurrent:
            return
        now = time.monotonic()
        if now - self._renewed.get(lease.id, 0.0) < self.lease_seconds / 3:
            return
        self._renewed[lease.id] = now
        slots = self.keys(lease.key)[2]
        self._quietly(lambda: self._renew(keys=[slots], args=[lease.id, self.lease_seconds]))

    def cool(self, key: str, seconds: float) -> None:
        """Admit nothing for ``key`` during ``seconds``, in every process."""
        self._local.cool(key, seconds)
        self._quietly(lambda: self._cool(keys=[self.keys(key)[3]], args=[seconds]))

    def forget(self, key: str) -> None:
        """Forget this process's fallback buckets of ``key`` (shared ones stay)."""
        self._local.forget(key)

    def close(self) -> None:
        """Close the connections to Redis, once the calls under way have ended.

        A lease settled (or renewed) after the state closed, by a stream's
        router thread that ends last, is dropped: its slot expires with its lease.
        """
        with self._idle:
            self._closed = True
            self._idle.wait_for(lambda: not self._calls, timeout=4 * self._timeout + 1)
        self._client.close()

    def _quietly(self, call: Any) -> None:
        with self._idle:
            if self._closed:
                return
            self._calls += 1
        try:
            call()
        except self._redis_errors as error:
            try:
                self._degraded(error)
            except errors.StreamConnectionError:
                pass  # "deny" refuses calls; a settlement or a renewal has nothing to refuse
        else:
            self._back()
        finally:
            with self._idle:
                self._calls -= 1
                self._idle.notify_all()

    def _degraded(self, error: BaseException) -> LocalState:
        with self._lock:
            first, self._down = not self._down, True
        if first:
            logger.warning("litestream: router state on Redis unreachable (%s): %s",
                           type(error).__name__,
                           "using in-process limits" if self.on_state_error == "local"
                           else "denying calls")
        if self.on_state_error == "deny":
            raise errors.StreamConnectionError(
                f"the router's shared state (Redis) is unreachable: {type(error).__name__}")
        return self._local

    def _back(self) -> None:
        if self._down:
            with self._lock:
                back, self._down = self._down, False
            if back:
                logger.info("litestream: router state on Redis reachable again")

    def _scaled(self, limits: Limits) -> Limits:
        if self.processes == 1:
            return limits
        share = self.processes
        return attrs.evolve(
            limits,
            rpm=limits.rpm / share if limits.rpm else None,
            tpm=limits.tpm / share if limits.tpm else None,
            max_concurrent=max(1, math.floor(limits.max_concurrent / share))
            if limits.max_concurrent else None,
        )

    def __repr__(self) -> str:
        return f"<RedisState prefix={self.prefix!r} on_state_error={self.on_state_error!r}>"


def _text(value: Any) -> Optional[str]:
    text = value.decode() if isinstance(value, bytes) else value
    return text or None
