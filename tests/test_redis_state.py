"""Tests of the router state on a real redis-server (started here on a free loopback port).

Skipped, with the reason, when redis-server is not installed, except under
CI (the environment variable CI set), where its absence fails the tests.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
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


def test_quick_setup_shares_the_routers_limits_through_litestream_redis_url(redis_url):
    other = RedisState(redis_url)  # the default prefix, as quick_setup's state uses
    with FakeLLMServer() as server:
        env = {**server.environment(), "LITESTREAM_REDIS_URL": redis_url}
        routes = Router(retry_policy=RetryPolicy(max_retries=0))
        try:
            assert "openai" in routes.quick_setup(env)
            state = routes._state
            assert isinstance(state, RedisState) and state.url == redis_url
            routes.quick_setup(env)
            assert routes._state is state  # set up again: the same state
            other.cool("openai", 5.0)  # another process saw a 429
            with pytest.raises(errors.RateLimitError, match="cooldown"):
                routes.completion("openai", messages=MESSAGES, timeout=0.5)
            assert server.requests == []  # stopped at admission: nothing sent
        finally:
            other.close()
            routes._state.close()
        plain = Router()
        plain.quick_setup({**server.environment(), "LITESTREAM_REDIS_URL": " "})
        assert not plain._state.shared


def test_a_malformed_litestream_redis_url_is_logged_and_not_used(caplog):
    routes = Router()
    with caplog.at_level(logging.WARNING, logger="litestream"):
        routes.quick_setup({"LITESTREAM_REDIS_URL": "http://user:secret@host/0"})
    assert not routes._state.shared
    assert "LITESTREAM_REDIS_URL" in caplog.text and "secret" not in caplog.text


def test_a_renewed_lease_outlives_the_lease_time(redis_url):
    state = RedisState(redis_url, prefix=f"renew{free_port()}", lease_seconds=0.6)
    try:
        limits = Limits(max_concurrent=1)
        lease = state.admit("d", limits, 0).lease
        assert lease is not None
        for _ in range(4):  # 0.8 s in all, renewed every 0.2 s (a third of the lease)
            assert not threading.Event().wait(0.2)
            lease.renew()
            assert state.admit("d", limits, 0).limit == "max_concurrent"
        lease.settle()
        assert state.admit("d", limits, 0).lease is not None
    finally:
        state.close()


def test_redis_hung_then_back_local_limits_hold_and_deny_raises(caplog):
    port = free_port()
    process = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    local = RedisState(url, timeout=0.2)
    deny = RedisState(url, timeout=0.2, on_state_error="deny")
    results: list[object] = []
    try:
        with FakeLLMServer() as server:
            routes = Router(state=local, retry_policy=RetryPolicy(max_retries=0))
            denying = Router(state=deny, retry_policy=RetryPolicy(max_retries=0))
            for each in (routes, denying):
                each.register("d", provider="openai", model="m", api_key="k-0000",
                              api_base=server.api_base("openai"), rpm=60, burst=2)
            assert routes.chat("d", "Hi")  # on Redis: one of the burst of 2 spent
            process.send_signal(signal.SIGSTOP)  # hung: accepts, never answers
            with caplog.at_level(logging.INFO, logger="litestream"):

                def call(router: Router) -> None:
                    try:
                        results.append(router.chat("d", "Hi"))
                    except errors.LitestreamError as error:
                        results.append(error)

                callers = [threading.Thread(target=call, args=(routes,)) for _ in range(2)]
                callers.append(threading.Thread(target=call, args=(denying,)))
                for caller in callers:
                    caller.start()
                for caller in callers:
                    caller.join(10)  # each Redis call gives up after 0.2 s
                assert not any(caller.is_alive() for caller in callers)
                # In-process limits hold: the local burst of 2 is spent, not sent.
                with pytest.raises(errors.RateLimitError, match="rpm"):
                    routes.completion("d", messages=MESSAGES, timeout=0.5)
                process.send_signal(signal.SIGCONT)
                with pytest.raises(errors.RateLimitError):  # Redis's bucket: 1 left of 2...
                    routes.chat("d", "Hi")
                    routes.completion("d", messages=MESSAGES, timeout=0.5)  # ...then none
            texts = sorted(str(r) for r in results)
            assert sum(isinstance(r, errors.StreamConnectionError) and "unreachable" in str(r)
                       for r in results) == 1, texts
            assert sum(isinstance(r, str) for r in results) == 2, texts
            assert len(server.requests) == 4  # 1 + 2 local + 1 on Redis again; deny sent none
        messages = [r.getMessage() for r in caplog.records if r.name == "litestream"]
        # One warning per state and outage (each state logs its own), one info when back.
        assert sum("unreachable" in m and "in-process" in m for m in messages) == 1, messages
        assert sum("unreachable" in m and "denying" in m for m in messages) == 1, messages
        assert sum("reachable again" in m for m in messages) == 1, messages
    finally:
        process.send_signal(signal.SIGCONT)
        local.close()
        deny.close()
        stop_redis(process)


# ---------------------------------------------------------------------------
# Worker processes against one redis-server and one FakeLLMServer
# ---------------------------------------------------------------------------

#: A worker process: ``threads`` threads make ``calls`` calls to deployment "d" in all.
#: It warms up (one call per thread on its own deployment, to open the
#: connections), prints "ready", waits for a line on stdin, then goes; at the
#: end it prints one JSON line: Redis's clock and the raw value of ``read_key``.
WORKER = textwrap.dedent("""
    import json, sys, threading
    import redis
    from litestream.router import RedisState, Router
    cfg = json.loads(sys.argv[1])
    state = RedisState(cfg["url"], prefix=cfg["prefix"], timeout=1.0,
                       lease_seconds=cfg.get("lease", 30.0))
    routes = Router(state=state)
    for name, model, limits in (("d", "m", cfg["limits"]), ("warm", "warm", {})):
        routes.register(name, provider="openai", model=model, api_key=cfg["key"],
                        api_base=cfg["api_base"], **limits)
    left = [cfg["calls"]]
    lock = threading.Lock()
    ready = threading.Barrier(cfg["threads"] + 1)
    go = threading.Event()
    def work():
        if cfg.get("warm", True):
            routes.chat("warm", "Hi")
        ready.wait()
        go.wait()
        while True:
            with lock:
                if not left[0]:
                    return
                left[0] -= 1
            stream = routes.completion("d", messages=[{"role": "user", "content": "Hi"}],
                                       stream=True, **cfg.get("request", {}))
            for chunk in stream:
                pass
    pool = [threading.Thread(target=work) for _ in range(cfg["threads"])]
    for t in pool: t.start()
    ready.wait()
    print("ready", flush=True)
    sys.stdin.readline()
    go.set()
    for t in pool: t.join()
    client = redis.Redis.from_url(cfg["url"])
    seconds, micros = client.time()
    value = client.get(cfg["read_key"]) if cfg.get("read_key") else None
    print(json.dumps({"time": seconds + micros / 1e6,
                      "value": value.decode() if value else None}), flush=True)
    client.close()
    state.close()
""")

#: The most a request may take from its admission to its arrival at the server.
SEND_LAG = 0.05


class Workers:
    """Start worker processes, let them go together, collect their last lines."""

    def __init__(self, tmp_path, count: int, **cfg) -> None:
        script = tmp_path / "worker.py"
        script.write_text(WORKER)
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        self.processes = [subprocess.Popen(
            [sys.executable, str(script), json.dumps({**cfg, "key": f"k-{index:04d}"})],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for index in range(count)]
        for process in self.processes:
            assert process.stdout.readline().strip() == "ready"

    def go(self) -> None:
        for process in self.processes:
            process.stdin.write("go\n")
            process.stdin.flush()

    def finish(self) -> list[dict]:
        lines = []
        for process in self.processes:
            out, _ = process.communicate(timeout=60)
            assert process.returncode == 0
            lines.append(json.loads(out.strip().splitlines()[-1]))
        return lines


def arrivals(server: FakeLLMServer) -> list[float]:
    """Arrival times of the calls to deployment "d" (not the warm-up calls), sorted."""
    return sorted(r.received_at for r in server.requests if (r.json or {}).get("model") == "m")


def most_in_any_window(stamps: list[float], allowed) -> None:
    """Assert every run of arrivals holds no more than ``allowed(span)`` requests."""
    for start in range(len(stamps)):
        for end in range(start, len(stamps)):
            span = stamps[end] - stamps[start]
            assert end - start + 1 <= allowed(span), (start, end, span)


def test_eight_processes_of_25_threads_share_one_rpm(redis_url, tmp_path):
    rpm, burst, processes, calls = 1200, 10, 8, 80  # 20 requests a second in all
    with FakeLLMServer() as server:
        workers = Workers(tmp_path, processes, url=redis_url, prefix=f"rpm{free_port()}",
                          api_base=server.api_base("openai"), calls=calls // processes,
                          threads=25, limits={"rpm": rpm, "burst": burst})
        workers.go()
        workers.finish()
        stamps = arrivals(server)
    assert len(stamps) == calls
    # The limit holds for admissions (on Redis's clock); a request reaches the
    # server a little after its admission, so a window of arrivals may be up
    # to SEND_LAG narrower than its admissions'.
    most_in_any_window(stamps, lambda span: burst + rpm * (span + SEND_LAG) / 60)
    total = stamps[-1] - stamps[0]
    assert len(stamps) >= 0.95 * (burst + rpm * total / 60)  # the limit was used, not wasted


def test_processes_share_one_tpm_and_settle_to_the_reported_usage(redis_url, tmp_path):
    tpm, used, calls = 60000, 100, 40  # 1000 tokens a second; 100 per reply: 10 calls a second
    prefix = f"tpm{free_port()}"
    key = RedisState(redis_url, prefix=prefix).keys("d")[1]
    client = redis.Redis.from_url(redis_url)
    with FakeLLMServer() as server:
        workers = Workers(tmp_path, 3, url=redis_url, prefix=prefix, read_key=key,
                          api_base=server.api_base("openai"), calls=calls // 4 + 1, threads=5,
                          limits={"tpm": tpm}, request={"max_tokens": 2 * used})
        for _ in range(3 * (calls // 4 + 1)):
            server.script(usage={"prompt_tokens": 10, "completion_tokens": used - 10})
        # The bucket starts half full at a known point, so its end is known: every
        # admission finds the bucket ahead of now (all threads keep asking).
        seconds, micros = client.time()
        start = seconds + micros / 1e6 + 0.5
        client.set(key, repr(start), px=60000)
        workers.go()
        readings = workers.finish()
        stamps = arrivals(server)
    client.close()
    count = len(stamps)
    assert count == 3 * (calls // 4 + 1)
    # Every call reserved its estimate (~2x its usage) and settled to its usage.
    last = max(readings, key=lambda reading: reading["time"])  # after every settlement
    charged = (float(last["value"]) - start) * tpm / 60
    assert abs(charged - count * used) <= used, (charged, count * used)
    per_second = tpm / 60
    reservation = 2 * used + 10  # max_tokens and the prompt's estimate, generously
    most_in_any_window(
        stamps, lambda span: (per_second * (1 + span + SEND_LAG) + reservation) / used)
    total = stamps[-1] - stamps[0]
    assert count * used >= 0.95 * per_second * total  # refunds were used again


def test_max_concurrent_across_four_processes_never_exceeded(redis_url, tmp_path):
    slots, chunks, delay = 5, 5, 0.05
    with FakeLLMServer() as server:
        workers = Workers(tmp_path, 4, url=redis_url, prefix=f"slots{free_port()}",
                          api_base=server.api_base("openai"), calls=8, threads=4,
                          limits={"max_concurrent": slots})
        for _ in range(4 * 8):
            server.script(chunks=chunks, delay=delay)
        workers.go()
        workers.finish()
        stamps = arrivals(server)
    assert len(stamps) == 4 * 8
    # A stream is surely open on the server from its arrival until its last
    # chunk, at least ``chunks * delay`` later (the server waits before each).
    shortest = chunks * delay - 0.001
    open_at = [sum(other <= stamp < other + shortest for other in stamps) for stamp in stamps]
    assert max(open_at) == slots  # never more, and the slots were used


def test_a_killed_worker_frees_its_slots_within_the_lease_time(redis_url, tmp_path):
    lease, slots = 1.0, 5
    prefix = f"kill{free_port()}"
    with FakeLLMServer() as server:
        workers = Workers(tmp_path, 1, url=redis_url, prefix=prefix, lease=lease,
                          api_base=server.api_base("openai"), calls=slots, threads=slots,
                          limits={"max_concurrent": slots})
        warm = len(server.requests)
        for _ in range(slots):
            server.script(text="word " * 400, delay=0.02)  # 8 s of chunks: leases renewed
        workers.go()
        assert server.wait_for_requests(warm + slots, timeout=30)
        state = RedisState(redis_url, prefix=prefix, lease_seconds=lease)
        routes = Router(state=state, retry_policy=RetryPolicy(max_retries=0))
        routes.register("d", provider="openai", model="m", api_key="k-test",
                        api_base=server.api_base("openai"), max_concurrent=slots)
        try:
            # Longer than a lease: the reading worker keeps renewing its slots.
            with pytest.raises(errors.RateLimitError, match="max_concurrent"):
                list(routes.completion("d", messages=MESSAGES, stream=True, timeout=1.5 * lease))
            worker = workers.processes[0]
            worker.kill()  # SIGKILL mid-stream: nothing settles its leases
            worker.communicate(timeout=10)
            assert worker.returncode == -signal.SIGKILL
            # Its streams had 5 s left; the slots come back when the leases expire.
            text = "".join(chunk.content or "" for chunk in routes.completion(
                "d", messages=MESSAGES, stream=True, timeout=2.5 * lease))
            assert text == "Hello from FakeLLMServer!"
        finally:
            state.close()


def test_a_429_in_one_process_pauses_every_process_for_its_retry_after(redis_url, tmp_path):
    retry_after, before = 1.0, 12
    with FakeLLMServer() as server:
        workers = Workers(tmp_path, 3, url=redis_url, prefix=f"cool{free_port()}",
                          api_base=server.api_base("openai"), calls=10, threads=5,
                          limits={"rpm": 1200, "burst": 5})
        warm = len(server.requests)
        for _ in range(before):
            server.script()
        server.script(error_status=429, retry_after=retry_after)
        workers.go()
        workers.finish()
        requests = server.requests[warm:]
    assert len(requests) == 3 * 10 + 1  # the 429 was retried
    hit = requests[before].received_at
    quiet = [r for r in requests if hit + SEND_LAG < r.received_at < hit + retry_after]
    assert quiet == []  # nobody sent during the cooldown (in flight before it: allowed)
    senders = {r.headers["authorization"] for r in requests if r.received_at >= hit + retry_after}
    assert len(senders) >= 2  # they resumed afterwards, every process, not only the one hit
