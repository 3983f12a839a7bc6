"""What lifecycle listeners cost per chunk: nothing measurable without one (target < 1 us).

Run: ``PYTHONPATH=. python bench/listeners.py``. Three numbers:

(a) no listener: what the reader pays per chunk, the ``monitor is not None``
    test made once per batch of chunks (measured per chunk with one-chunk
    batches, the worst case), and the once-per-call ``monitor_for`` lookup;
(b) one listener: :meth:`CallMonitor.chunks` per content chunk (timing,
    usage, the text kept for an estimate).
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from litestream import listeners
from litestream.types import Choice, Chunk, Delta

ROUNDS = 1_000_000
CHUNK = Chunk(id="c", model="m", provider="openai", created=1,
              choices=(Choice(index=0, delta=Delta(content="token")),))


def per_chunk_without_listener() -> float:
    reader = SimpleNamespace(monitor=None)
    batch = [CHUNK]
    start = time.perf_counter()
    for _ in range(ROUNDS):
        if reader.monitor is not None:
            reader.monitor.chunks(batch)
    return (time.perf_counter() - start) / ROUNDS


def per_call_lookup() -> float:
    start = time.perf_counter()
    for _ in range(ROUNDS // 10):
        listeners.monitor_for("openai", "m", {}, stream=True)
    return (time.perf_counter() - start) / (ROUNDS // 10)


def per_chunk_with_listener() -> float:
    class Quiet:
        def on_end(self, event: object) -> None:
            pass

    monitor = listeners.monitor_for("openai", "m", {"messages": []}, stream=True,
                                    call_listeners=[Quiet()])
    assert monitor is not None
    batch = [CHUNK] * 100
    rounds = ROUNDS // 100
    start = time.perf_counter()
    for _ in range(rounds):
        monitor.chunks(batch)
    return (time.perf_counter() - start) / (rounds * 100)


def main() -> None:
    without = per_chunk_without_listener()
    lookup = per_call_lookup()
    with_one = per_chunk_with_listener()
    print(f"(a) no listener, per chunk: {without * 1e9:.0f} ns "
          f"({'OK' if without < 1e-6 else 'OVER'} vs target < 1 us)")
    print(f"(a) no listener, per call (monitor_for -> None): {lookup * 1e9:.0f} ns")
    print(f"(b) one listener, per content chunk: {with_one * 1e9:.0f} ns")


if __name__ == "__main__":
    main()
