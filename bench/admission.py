"""What admission costs per call, in-process and on Redis, and how much of a limit is used.

Run: ``PYTHONPATH=. python bench/admission.py [--quick]`` (needs redis-server
and redis-py; starts its own redis-server on a free loopback port, no
persistence). Two measurements:

(a) admission overhead per call, in µs (median and p99): ``admit`` (one
    EVALSHA on Redis: cooldown, rpm, tpm and max_concurrent checked and
    reserved together) and ``admit`` + ``settle`` (the second round trip
    every call pays when it ends), for :class:`LocalState` and
    :class:`RedisState`, from one thread and from 8 threads at once;
(b) the 8 processes × 25 threads hammer of the tests, longer: the share of
    ``burst + rpm·T/60`` the server received over the run (T: first to last
    arrival), and the fullest window of arrivals against its own bound.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import sys
import tempfile
import threading
import time
from typing import Callable

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from litestream._limits import Limits, LocalState  # noqa: E402
from litestream.redis_state import RedisState  # noqa: E402
from litestream.testing import FakeLLMServer  # noqa: E402
from tests.test_redis_state import (  # noqa: E402
    Workers,
    arrivals,
    free_port,
    start_redis,
    stop_redis,
)

LIMITS = Limits(rpm=1e9, tpm=1e12, max_concurrent=10_000)  # all checked, never full


def timings(state: object, calls: int, settle: bool, threads: int) -> list[float]:
    """Return per-call seconds of ``admit`` (and ``settle``) on ``state``."""
    samples: list[float] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        mine = []
        key = f"bench{index % 2}"  # two deployments: threads contend, as in an app
        for _ in range(calls // threads):
            start = time.perf_counter()
            admission = state.admit(key, LIMITS, 100)  # type: ignore[attr-defined]
            if settle:
                admission.lease.settle(50)
            mine.append(time.perf_counter() - start)
            if not settle:
                admission.lease.settle(50)
        with lock:
            samples.extend(mine)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return samples


def row(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return f"| {name} | {statistics.median(ordered) * 1e6:,.1f} | {p99 * 1e6:,.1f} |"


def overhead(url: str, calls: int) -> list[str]:
    lines = ["| state, operation, threads | median µs | p99 µs |", "|---|---|---|"]
    states: list[tuple[str, Callable[[], object]]] = [
        ("LocalState", LocalState),
        ("RedisState (loopback)", lambda: RedisState(url, prefix=f"bench{free_port()}")),
    ]
    for name, make in states:
        for settle in (False, True):
            for threads in (1, 8):
                state = make()
                timings(state, min(calls, 500), settle, threads)  # warm: script loaded, pool open
                samples = timings(state, calls, settle, threads)
                operation = "admit + settle" if settle else "admit"
                lines.append(row(f"{name}, {operation}, {threads}", samples))
                close = getattr(state, "close", None)
                if close:
                    close()
    return lines


def hammer(url: str, calls: int) -> list[str]:
    rpm, burst, processes = 1200, 10, 8
    with FakeLLMServer() as server, tempfile.TemporaryDirectory() as tmp:
        workers = Workers(pathlib.Path(tmp), processes, url=url, prefix=f"hammer{free_port()}",
                          api_base=server.api_base("openai"), calls=calls // processes,
                          threads=25, limits={"rpm": rpm, "burst": burst})
        workers.go()
        workers.finish()
        stamps = arrivals(server)
    total = stamps[-1] - stamps[0]
    share = len(stamps) / (burst + rpm * total / 60)
    fullest = max(
        (end - start + 1) / (burst + rpm * (stamps[end] - stamps[start]) / 60)
        for start in range(len(stamps)) for end in range(start, len(stamps)))
    return [
        f"8 processes × 25 threads, rpm={rpm}, burst={burst}: {len(stamps)} requests "
        f"in {total:.2f} s",
        f"- share of burst + rpm·T/60 received over the run: **{share:.1%}**",
        f"- fullest window of arrivals / its bound (no send lag allowed): {fullest:.1%}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    quick = parser.parse_args().quick
    port = free_port()
    process = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for line in overhead(url, 2_000 if quick else 20_000):
            print(line)
        print()
        for line in hammer(url, 80 if quick else 400):
            print(line)
    finally:
        stop_redis(process)


if __name__ == "__main__":
    main()
