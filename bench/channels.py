"""Channel benchmarks: throughput against queue.Queue, alts wake latency, idle CPU, merge fan-in.

Run with ``python bench/channels.py`` (``--quick`` for a shorter run). Prints
one line per measurement with the ratio or percentile against its target.
Not a test: numbers depend on the machine; see bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import sys
import threading
import time
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from litestream import merge  # noqa: E402
from litestream.channels import Channel, alts  # noqa: E402

_DONE = object()


# ---------------------------------------------------------------------------
# (a) throughput: one producer thread, one consumer thread
# ---------------------------------------------------------------------------


def _queue_run(maxsize: int, count: int) -> float:
    q: queue.Queue[Any] = queue.Queue(maxsize)

    def produce() -> None:
        put = q.put
        for i in range(count):
            put(i)
        put(_DONE)

    producer = threading.Thread(target=produce)
    start = time.perf_counter()
    producer.start()
    get = q.get
    while get() is not _DONE:
        pass
    elapsed = time.perf_counter() - start
    producer.join()
    return elapsed


def _channel_run(maxsize: int, count: int) -> float:
    channel: Channel[int] = Channel(maxsize)

    def produce() -> None:
        put = channel.put
        for i in range(count):
            put(i)
        channel.close()

    producer = threading.Thread(target=produce)
    start = time.perf_counter()
    producer.start()
    get = channel.get
    while get() is not None:
        pass
    elapsed = time.perf_counter() - start
    producer.join()
    return elapsed


def _best_of(run: Callable[[int, int], float], maxsize: int, count: int, rounds: int) -> float:
    return min(run(maxsize, count) for _ in range(rounds))


def bench_throughput(count: int, rounds: int) -> list[str]:
    lines = []
    for maxsize in (0, 64):
        # Interleave the two so that drift in machine load hits both alike.
        queue_times, channel_times = [], []
        for _ in range(rounds):
            queue_times.append(_queue_run(maxsize, count))
            channel_times.append(_channel_run(maxsize, count))
        queue_rate = count / min(queue_times)
        channel_rate = count / min(channel_times)
        ratio = channel_rate / queue_rate
        verdict = "ok" if ratio >= 0.8 else "MISS"
        lines.append(
            f"throughput maxsize={maxsize:<3} queue.Queue {queue_rate:>10,.0f}/s  "
            f"Channel {channel_rate:>10,.0f}/s  ratio {ratio:.2f} (target >= 0.80) {verdict}"
        )
    return lines


# ---------------------------------------------------------------------------
# (b) wake latency of alts over many channels
# ---------------------------------------------------------------------------


def _percentiles(latencies: list[float]) -> tuple[float, float, float]:
    latencies = sorted(latencies)
    p50 = latencies[len(latencies) // 2] * 1e3
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1e3
    return p50, p99, latencies[-1] * 1e3


def _event_round(samples: int) -> list[float]:
    """The floor: how fast this machine wakes a thread blocked on a bare Event."""
    latencies: list[float] = []
    sent_at = [0.0]
    wake = threading.Event()
    waiting = threading.Event()
    received = threading.Event()

    def consume() -> None:
        for _ in range(samples):
            waiting.set()
            wake.wait()
            latencies.append(time.perf_counter() - sent_at[0])
            wake.clear()
            received.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    pause = threading.Event()
    for _ in range(samples):
        waiting.wait()
        waiting.clear()
        pause.wait(0.001)  # let the consumer park in wake.wait()
        sent_at[0] = time.perf_counter()
        wake.set()
        received.wait()
        received.clear()
    consumer.join()
    return latencies


def _alts_round(channels: list[Channel[float]], samples: int) -> tuple[list[float], list[float]]:
    latencies: list[float] = []
    cpu_per_call: list[float] = []
    waiting = threading.Event()
    received = threading.Event()

    def consume() -> None:
        for _ in range(samples):
            waiting.set()
            cpu_start = time.thread_time()
            sent_at, _channel = alts(channels)
            now = time.perf_counter()
            cpu_per_call.append(time.thread_time() - cpu_start)
            latencies.append(now - sent_at)
            received.set()

    consumer = threading.Thread(target=consume)
    consumer.start()
    pause = threading.Event()
    for i in range(samples):
        waiting.wait()
        waiting.clear()
        target = channels[(i * 7919) % len(channels)]
        _wait_until(lambda t=target: t.statistics().watchers == 1)
        # Registered; give it time to finish its last look and park in the wait.
        pause.wait(0.001)
        target.put(time.perf_counter())
        received.wait()
        received.clear()
    consumer.join()
    return latencies, cpu_per_call


def bench_alts_latency(channel_count: int, samples: int, rounds: int) -> list[str]:
    channels: list[Channel[float]] = [Channel() for _ in range(channel_count)]
    alts_latencies: list[float] = []
    event_latencies: list[float] = []
    cpu: list[float] = []
    round_p99s: list[str] = []
    for _ in range(rounds):
        event_latencies += _event_round(samples)
        latencies, cpu_per_call = _alts_round(channels, samples)
        alts_latencies += latencies
        cpu += cpu_per_call
        round_p99s.append(f"{_percentiles(latencies)[1]:.3f}")
    for channel in channels:
        channel.close()
    p50, p99, worst = _percentiles(alts_latencies)
    base_p50, base_p99, base_worst = _percentiles(event_latencies)
    cpu_p50 = _percentiles(cpu)[0]
    verdict = "ok" if p99 < 1.0 else "MISS"
    return [
        f"baseline: bare threading.Event wake ({len(event_latencies)} samples): "
        f"p50 {base_p50:.3f} ms  p99 {base_p99:.3f} ms  max {base_worst:.3f} ms",
        f"alts wake latency over {channel_count} channels ({len(alts_latencies)} samples): "
        f"p50 {p50:.3f} ms  p99 {p99:.3f} ms  max {worst:.3f} ms "
        f"(target p99 < 1 ms) {verdict}; p99 per round {', '.join(round_p99s)} ms; "
        f"consumer CPU per alts call p50 {cpu_p50:.3f} ms",
    ]


def _wait_until(predicate: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("benchmark precondition never held")
        pause.wait(0.0002)


# ---------------------------------------------------------------------------
# (c) idle cost of many blocked getters
# ---------------------------------------------------------------------------


def bench_idle_cpu(thread_count: int, seconds: float) -> list[str]:
    channels: list[Channel[int]] = [Channel() for _ in range(thread_count)]
    threads = [
        threading.Thread(target=channel.get, name=f"bench-getter-{i}")
        for i, channel in enumerate(channels)
    ]
    for thread in threads:
        thread.start()
    _wait_until(lambda: all(c.statistics().waiting_getters == 1 for c in channels), 30.0)
    cpu_start = time.process_time()
    wall_start = time.perf_counter()
    threading.Event().wait(seconds)
    cpu = time.process_time() - cpu_start
    wall = time.perf_counter() - wall_start
    for channel in channels:
        channel.close()
    for thread in threads:
        thread.join()
    share = cpu / wall * 100
    verdict = "ok" if share < 1.0 else "MISS"
    return [
        f"idle CPU with {thread_count} threads blocked in get over {wall:.1f} s: "
        f"{cpu * 1e3:.1f} ms CPU = {share:.3f}% of one core (target < 1%) {verdict}"
    ]


# ---------------------------------------------------------------------------
# (d) fan-in: merge vs an alts loop over many ready channels, vs one channel
# ---------------------------------------------------------------------------


def _ready_channels(channel_count: int, per_channel: int) -> list[Channel[int]]:
    channels: list[Channel[int]] = [Channel() for _ in range(channel_count)]
    for channel in channels:
        for value in range(1, per_channel + 1):
            channel.put(value)
    return channels


def _alts_loop_rate(channel_count: int, count: int) -> float:
    # Every channel holds more than the loop takes, so all stay ready: the
    # cost measured is alts' per-call cost over channel_count channels.
    channels = _ready_channels(channel_count, count // channel_count + 2)
    start = time.perf_counter()
    for _ in range(count):
        alts(channels)
    return count / (time.perf_counter() - start)


def _merge_rate(channel_count: int, count: int) -> float:
    channels = _ready_channels(channel_count, count // channel_count + 2)
    merged = merge(channels)
    get = merged.get
    start = time.perf_counter()
    for _ in range(count):
        get()
    rate = count / (time.perf_counter() - start)
    merged.close()
    return rate


def _single_get_rate(count: int) -> float:
    (channel,) = _ready_channels(1, count)
    get = channel.get
    start = time.perf_counter()
    for _ in range(count):
        get()
    return count / (time.perf_counter() - start)


def bench_merge(channel_count: int, count: int, alts_count: int, rounds: int) -> list[str]:
    alts_rates, merge_rates, single_rates = [], [], []
    for _ in range(rounds):
        # Interleaved, so that drift in machine load hits all three alike.
        alts_rates.append(_alts_loop_rate(channel_count, alts_count))
        merge_rates.append(_merge_rate(channel_count, count))
        single_rates.append(_single_get_rate(count))
    alts_rate, merge_rate, single_rate = max(alts_rates), max(merge_rates), max(single_rates)
    over_alts = merge_rate / alts_rate
    over_single = merge_rate / single_rate
    return [
        f"fan-in over {channel_count} ready channels (best of {rounds}): merge "
        f"{merge_rate / 1e3:.0f}k values/s, alts loop {alts_rate / 1e3:.1f}k/s, "
        f"one channel's get {single_rate / 1e3:.0f}k/s",
        f"merge / alts loop = {over_alts:.0f}x (target >= 50x) "
        f"{'ok' if over_alts >= 50 else 'MISS'}",
        f"merge / one channel's get = {over_single:.2f}x (target >= 0.5x) "
        f"{'ok' if over_single >= 0.5 else 'MISS'}",
    ]


# ---------------------------------------------------------------------------


def machine() -> str:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; nproc {os.cpu_count()}; "
        f"CPU {model}; Python {platform.python_version()} ({platform.python_implementation()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--merge-only", action="store_true", help="only the fan-in rows")
    args = parser.parse_args()
    count = 50_000 if args.quick else 200_000
    rounds = 3 if args.quick else 7
    print(machine())
    if args.merge_only:
        for line in bench_merge(1000, count, 2_000 if args.quick else 5_000, rounds):
            print(line)
        return
    results = []
    results += bench_throughput(count, rounds)
    results += bench_alts_latency(1000, 200, 2 if args.quick else 5)
    results += bench_idle_cpu(1000, 2.0 if args.quick else 5.0)
    results += bench_merge(1000, count, 2_000 if args.quick else 5_000, rounds)
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
