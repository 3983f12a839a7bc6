"""Tests of the router state on a real redis-server (started here on a free loopback port).

Skipped, with the reason, when redis-server is not installed, except under
CI (the environment variable CI set), where its absence fails the tests.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from litestream import errors
from litestream._limits import Limits
from litestream.options import RetryPolicy
from litestream.router import RedisState, Router
from litestream.testing import FakeLLMServer

redis = pytest.importorskip("redis") if not os.environ.get("CI") else __import__("redis")

MESSAGES = [{"role": "user", "content": "Hi"}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    try:
        for _ in range(200):  # up to ~10 s for the server to accept connections
            try:
                client.ping()
                return process
            except redis.ConnectionError:
                threading.Event().wait(0.05)
        process.kill()
        raise RuntimeError("redis-server did not start")
    finally:
        client.close()


def stop_redis(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def redis_url():
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (CI must install it: see .ci/run)")
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    process = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0"
    stop_redis(process)


@pytest.fixture
def state(redis_url):
    shared = RedisState(redis_url, prefix=f"t{os.getpid()}-{free_port()}")
    yield shared
    shared.close()


def test_keys_of_a_deployment_share_one_hash_tag(state):
    keys = state.keys("fast")
    assert {key.split("{")[1].split("}")[0] for key in keys} == {"fast"}


def test_admission_is_atomic_and_shared_between_two_states(redis_url, state):
    other = RedisState(redis_url, prefix=state.prefix)
    try:
        limits = Limits(rpm=60, burst=3, max_concurrent=10)
        admitted = [s.admit("d", limits, 0) for s in (state, other, state)]
        assert all(a.lease is not None for a in admitted)
        denied = other.admit("d", limits, 0)
        assert denied.lease is None and denied.limit == "rpm"
        assert 0.5 < denied.retry_after <= 1.0
        for admission in admitted:
            admission.lease.settle()
    finally:
        other.close()


def test_slots_are_shared_and_freed_by_settling_or_expiry(redis_url):
    state = RedisState(redis_url, prefix=f"slots{free_port()}", lease_seconds=0.3)
    try:
        limits = Limits(max_concurrent=1)
        first = state.admit("d", limits, 0)
        assert first.lease is not None
        assert state.admit("d", limits, 0).limit == "max_concurrent"
        first.lease.settle()
        crashed = state.admit("d", limits, 0)  # never settled: a worker killed mid-stream
        assert crashed.lease is not None
        assert state.admit("d", limits, 0).lease is None
        waited = threading.Event().wait(0.4)  # the lease time, on Redis's clock
        assert not waited
        assert state.admit("d", limits, 0).lease is not None
    finally:
        state.close()


def test_tpm_reservations_settle_to_the_reported_usage(state):
    limits = Limits(tpm=6000)
    lease = state.admit("d", limits, 100).lease
    assert state.admit("d", limits, 100).lease is None
    lease.settle(10)
    assert state.admit("d", limits, 80).lease is not None


def test_a_429_cooldown_in_one_router_stops_another(redis_url, state):
    waits: list[float] = []

    def record(seconds: float, cancelled: threading.Event) -> bool:
        waits.append(seconds)
        return True  # give up at once: the test only looks at what was asked

    other_state = RedisState(redis_url, prefix=state.prefix)
    with FakeLLMServer() as server:
        one = Router(state=state, retry_policy=RetryPolicy(max_retries=0))
        two = Router(state=other_state, retry_policy=RetryPolicy(wait=record))
        for routes in (one, two):
            routes.register("fast", provider="openai", model="m", api_key="k-0000",
                            api_base=server.api_base("openai"), rpm=6000)
        server.script(error_status=429, retry_after=2)
        with pytest.raises(errors.RateLimitError):
            one.chat("fast", "Hi")
        with pytest.raises(errors.RateLimitError) as caught:
            two.completion("fast", messages=MESSAGES, timeout=1)
        assert "cooldown" in str(caught.value)
        assert 1.0 < caught.value.retry_after <= 2.0
        assert len(server.requests) == 1  # the second router sent nothing
    other_state.close()


def test_unreachable_redis_local_policy_warns_once_and_deny_raises(caplog):
    url = f"redis://127.0.0.1:{free_port()}/0"
    local = RedisState(url, timeout=0.1, processes=2)
    deny = RedisState(url, timeout=0.1, on_state_error="deny")
    try:
        with caplog.at_level(logging.WARNING, logger="litestream"):
            limits = Limits(rpm=120, burst=1)
            assert local.admit("d", limits, 0).lease is not None
            second = local.admit("d", limits, 0)  # in-process, at half the rate
            assert second.lease is None and second.retry_after == pytest.approx(1.0, abs=0.05)
        warnings = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(warnings) == 1
        with pytest.raises(errors.StreamConnectionError, match="unreachable"):
            deny.admit("d", limits, 0)
    finally:
        local.close()
        deny.close()


def test_redis_stopped_and_restarted_logs_once_and_recovers(caplog):
    port = free_port()
    process = start_redis(port)
    state = RedisState(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        limits = Limits(rpm=6000, burst=100)
        assert state.admit("d", limits, 0).lease is not None
        stop_redis(process)
        with caplog.at_level(logging.INFO, logger="litestream"):
            for _ in range(3):
                assert state.admit("d", limits, 0).lease is not None  # local policy
            process = start_redis(port)
            assert state.admit("d", limits, 0).lease is not None
        messages = [r.getMessage() for r in caplog.records if r.name == "litestream"]
        assert sum("unreachable" in m for m in messages) == 1
        assert sum("reachable again" in m for m in messages) == 1
    finally:
        state.close()
        stop_redis(process)


WORKER = textwrap.dedent("""
    import sys, threading
    from litestream.router import RedisState, Router
    url, prefix, api_base, calls, threads = sys.argv[1:6]
    state = RedisState(url, prefix=prefix, timeout=1.0)
    routes = Router(state=state)
    routes.register("d", provider="openai", model="m", api_key="k-0000", api_base=api_base,
                    rpm=RPM, burst=BURST)
    routes.register("warm", provider="openai", model="warm", api_key="k-0000",
                    api_base=api_base)
    left = [int(calls)]
    lock = threading.Lock()
    ready = threading.Barrier(int(threads))
    def work():
        routes.chat("warm", "Hi")  # open this thread's connection before the hammer
        ready.wait()
        while True:
            with lock:
                if not left[0]:
                    return
                left[0] -= 1
            routes.chat("d", "Hi")
    pool = [threading.Thread(target=work) for _ in range(int(threads))]
    for t in pool: t.start()
    for t in pool: t.join()
    state.close()
""")


#: The most a request may take from its admission to its arrival at the server.
SEND_LAG = 0.05


def test_worker_processes_share_one_rpm(redis_url, tmp_path):
    rpm, burst, processes, calls = 600, 5, 4, 10  # 10 requests a second in all
    with FakeLLMServer() as server:
        script = tmp_path / "worker.py"
        script.write_text(WORKER.replace("RPM", str(rpm)).replace("BURST", str(burst)))
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        prefix = f"hammer{free_port()}"
        workers = [subprocess.Popen(
            [sys.executable, str(script), redis_url, prefix, server.api_base("openai"),
             str(calls), "5"], env=env) for _ in range(processes)]
        for worker in workers:
            assert worker.wait(60) == 0
        stamps = sorted(request.received_at for request in server.requests
                        if (request.json or {}).get("model") == "m")  # not the warm-up calls
    assert len(stamps) == processes * calls
    # The limit holds for admissions (on Redis's clock); a request reaches the
    # server a little after its admission (thread wake-up and send, on a
    # connection the warm-up opened), so a window of arrivals may be up to
    # SEND_LAG narrower than its admissions'.
    for start in range(len(stamps)):
        for end in range(start, len(stamps)):
            span = stamps[end] - stamps[start]
            assert end - start + 1 <= burst + rpm * (span + SEND_LAG) / 60, (start, end, span)
    total = stamps[-1] - stamps[0]
    assert len(stamps) >= 0.95 * (burst + rpm * total / 60)  # the limit was used, not wasted
