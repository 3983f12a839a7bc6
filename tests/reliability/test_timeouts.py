"""Deadlines under a slow but steady stream: per-chunk deadlines never kill it, the total one does.

The six providers run at once (one consumer thread each), so the suite pays
for one slow stream, not six.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from _harness import PROVIDERS, Outcome, assert_finished, consume, open_stream

from litestream import errors

PIECES = [f" w{number}" for number in range(10)]  # one every 0.3 s: about 3 s in all
DELAY = 0.3


def _run_all(server, **config) -> dict[str, tuple[Outcome, float]]:
    for _ in PROVIDERS:
        server.script(chunks=PIECES, delay=DELAY)
    # Before the streams open: each one's deadlines count from its own start, so
    # no stream's elapsed time below can be shorter than its deadline.
    started = time.monotonic()
    streams = {name: open_stream(name, server.api_base(name), **config) for name in PROVIDERS}

    def run(name: str) -> tuple[Outcome, float]:
        outcome = consume(streams[name])
        return outcome, time.monotonic() - started

    with ThreadPoolExecutor(len(PROVIDERS)) as pool:
        results = dict(zip(PROVIDERS, pool.map(run, PROVIDERS), strict=True))
    for stream in streams.values():
        assert_finished(stream)
    return results


def test_slow_steady_stream_outlives_short_first_chunk_and_idle_timeouts(server):
    results = _run_all(server, first_chunk_timeout=1, idle_timeout=1)
    for name, (outcome, elapsed) in results.items():
        assert outcome.error is None, (name, outcome.error)
        assert outcome.content == "".join(PIECES), name
        assert outcome.finish_reasons == ["stop"], name
        assert elapsed >= DELAY * len(PIECES) * 0.9, (name, elapsed)


def test_total_timeout_ends_a_slow_stream_after_the_chunks_so_far(server):
    results = _run_all(server, first_chunk_timeout=1, idle_timeout=1, timeout=1.5)
    for name, (outcome, elapsed) in results.items():
        assert isinstance(outcome.error, errors.TotalTimeout), (name, outcome.error)
        assert not outcome.error.retryable
        # About five pieces fit in 1.5 s; all of them arrive, in order, before the error.
        count = len([chunk for chunk in outcome.chunks if chunk.content])
        assert 2 <= count < len(PIECES), (name, count)
        assert outcome.content == "".join(PIECES[:count]), name
        assert 1.4 <= elapsed < 3.0, (name, elapsed)
