"""Resources under load: threads, sockets and memory come back; interrupts and exit are clean."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from _harness import (
    MODELS,
    assert_finished,
    consume,
    join_readers,
    litestream_threads,
    mid_stream_boundary,
    open_fds,
    open_stream,
    rss_bytes,
    transcript,
)

from litestream import transport

ROOT = Path(__file__).parents[2]
MB = 1024 * 1024


def _settle(server) -> None:
    """Let every reader end and every connection close, on both sides (bounded waits)."""
    join_readers()
    transport.close_idle_connections()
    assert server.wait_idle(10.0), f"{server.open_connections} server connections still open"
    for thread in threading.enumerate():  # a server thread may still be on its way out
        if thread.name.startswith("fakellm-conn"):
            thread.join(5.0)


# ---------------------------------------------------------------------------
# Many streams, one after another
# ---------------------------------------------------------------------------


def test_a_thousand_streams_leave_threads_fds_and_memory_as_they_were(server):
    base = server.api_base("openai")
    for _ in range(20):  # warm up: session, pools, timer, imports, allocator arenas
        consume(open_stream("openai", base, idle_timeout=30))
    _settle(server)
    gc.collect()
    threads_before, fds_before, rss_before = threading.active_count(), open_fds(), rss_bytes()
    started = time.monotonic()

    cycles: list[object] = []
    for number in range(1000):
        stream = open_stream("openai", base, idle_timeout=30)
        kind = number % 4
        if kind in (0, 1):  # half read to the end
            outcome = consume(stream)
            assert outcome.error is None and outcome.content
        elif kind == 2:  # a quarter broken off after the first chunk
            assert stream.get(timeout=10) is not None
            stream.close()
        else:  # a quarter abandoned, half of those inside a reference cycle
            if number % 8 == 3:
                stream.get(timeout=10)
            else:
                cycle: list[object] = [stream]
                cycle.append(cycle)
                cycles.append(cycle)
        del stream
        if number % 100 == 99:
            cycles.clear()
            gc.collect()
            assert len(litestream_threads()) < 150, "abandoned readers must end"

    cycles.clear()
    _settle(server)
    gc.collect()
    elapsed = time.monotonic() - started
    threads_after, fds_after, rss_after = threading.active_count(), open_fds(), rss_bytes()
    print(f"\n1000 streams in {elapsed:.1f} s: threads {threads_before} -> {threads_after}, "
          f"fds {fds_before} -> {fds_after}, RSS {rss_before / MB:.1f} -> {rss_after / MB:.1f} MB "
          f"(+{(rss_after - rss_before) / MB:.1f} MB)")
    assert threads_after == threads_before
    assert fds_after == fds_before
    assert rss_after - rss_before < 20 * MB


# ---------------------------------------------------------------------------
# Many streams at once
# ---------------------------------------------------------------------------

PIECES = [f" piece{number}" for number in range(10)]
PIECE_DELAY = 0.1


def _timed_stream(server) -> tuple[list[str], float]:
    started = time.monotonic()
    stream = open_stream("openai", server.api_base("openai"))
    outcome = consume(stream, wait=30)
    assert outcome.error is None, outcome.error
    assert_finished(stream)
    return [chunk.content for chunk in outcome.chunks if chunk.content], time.monotonic() - started


def test_two_hundred_concurrent_streams_each_get_every_chunk_in_order(server):
    server.script(chunks=PIECES, delay=PIECE_DELAY)
    pieces, _ = _timed_stream(server)
    assert pieces == PIECES

    count = 200
    for _ in range(count):
        server.script(chunks=PIECES, delay=PIECE_DELAY)
    barrier = threading.Barrier(count + 1)
    results: list[object] = [None] * count

    def consumer(slot: int) -> None:
        barrier.wait()
        try:
            results[slot] = _timed_stream(server)[0]
        except BaseException as error:  # reported below, with its slot
            results[slot] = error

    consumers = [threading.Thread(target=consumer, args=(slot,)) for slot in range(count)]
    for thread in consumers:
        thread.start()
    barrier.wait()
    for thread in consumers:
        thread.join(60)
    failures = [(slot, result) for slot, result in enumerate(results) if result != PIECES]
    assert not failures, failures[:3]
    # How long they take together is measured by bench/many_streams.py, not asserted here.


# ---------------------------------------------------------------------------
# Leaving a loop by an exception
# ---------------------------------------------------------------------------


def test_keyboard_interrupt_in_a_with_block_closes_the_stream(server):
    server.script(chunks=PIECES, stall_after=2)  # it would never end by itself
    stream = open_stream("openai", server.api_base("openai"))
    with pytest.raises(KeyboardInterrupt):
        with stream:
            for _chunk in stream:
                raise KeyboardInterrupt
    assert stream.closed
    assert stream.join(5.0)
    assert server.wait_for_disconnect(5.0)

    server.script(text="still working")
    assert consume(open_stream("openai", server.api_base("openai"))).content == "still working"


def test_keyboard_interrupt_without_close_leaves_a_stream_that_gc_closes(server):
    server.script(chunks=PIECES, stall_after=2)

    def read_until_interrupted() -> None:
        stream = open_stream("openai", server.api_base("openai"))
        for _chunk in stream:
            raise KeyboardInterrupt

    try:
        read_until_interrupted()
    except KeyboardInterrupt:
        pass  # leaving the except block drops the traceback, and with it the stream
    gc.collect()
    assert server.wait_for_disconnect(5.0)
    join_readers()
    assert litestream_threads() == []

    server.script(text="still working")
    assert consume(open_stream("openai", server.api_base("openai"))).content == "still working"


# ---------------------------------------------------------------------------
# Subprocesses: interpreter exit, memory of an oversized event
# ---------------------------------------------------------------------------


def _run_python(
    code: str, *args: str, timeout: float = 20.0
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT,
    )
    return completed, time.monotonic() - started


_EXIT_WITH_OPEN_STREAMS = """
    import sys
    import litestream

    def start(**config):
        return litestream.completion(
            "openai", "gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True,
            api_key="test-key", api_base=sys.argv[1], **config)

    # One reader blocked in recv on a stalled stream, one blocked on a full buffer.
    stalled = start()
    assert stalled.get(timeout=10) is not None
    backed_up = start(buffer=1)
    assert backed_up.get(timeout=10) is not None
    print("streams open", flush=True)
"""


def test_interpreter_exit_with_open_streams_is_prompt_and_quiet(server):
    server.script(chunks=PIECES, stall_after=3)
    server.script(chunks=[f" {number}" for number in range(200)])
    completed, elapsed = _run_python(_EXIT_WITH_OPEN_STREAMS, server.api_base("openai"))
    print(f"\nexit with open streams took {elapsed:.2f} s")
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "streams open\n"
    assert completed.stderr == ""
    assert elapsed < 5.0
    assert server.wait_idle(5.0)


_CTRL_C = """
    import signal
    import sys
    import litestream

    # A child inherits an ignored SIGINT (a shell ignores it in background jobs),
    # and Python then installs no handler: restore the one that raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    def start():
        return litestream.completion(
            "openai", "gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True,
            api_key="test-key", api_base=sys.argv[1])

    stream = start()
    try:
        with stream:
            for chunk in stream:  # blocks in get() once the server stalls
                if chunk.content:
                    print("reading", flush=True)
    except KeyboardInterrupt:
        print("interrupted, closed:", stream.closed, flush=True)
    print("".join(chunk.content or "" for chunk in start()), flush=True)
"""


def test_ctrl_c_while_blocked_in_the_loop_closes_the_stream_and_the_next_call_works(server):
    server.script(chunks=[" one", " two", " three"], stall_after=1)
    server.script(text="still working")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CTRL_C), server.api_base("openai")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "reading\n"  # waits until the child is in the loop
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    assert out == "interrupted, closed: True\nstill working\n"
    assert server.requests[0].path == "/v1/chat/completions"
    assert len(server.requests) == 2


_OVERSIZED_EVENT = """
    import sys
    import litestream
    from litestream import errors

    def start():
        return litestream.completion(
            sys.argv[2], sys.argv[3], messages=[{"role": "user", "content": "Hi"}],
            stream=True, api_key="test-key", api_base=sys.argv[1])

    def peak_rss():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

    list(start())  # warm up imports, session and allocator
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # reset the peak to the current RSS
    before = peak_rss()
    stream = start()
    try:
        list(stream)
    except errors.ProtocolError as error:
        assert "maximum event size" in error.message, error.message
    else:
        raise SystemExit("no ProtocolError")
    print((peak_rss() - before) * 1024)
"""


@pytest.mark.parametrize("provider", ["openai", "ollama"])
def test_ten_megabyte_line_stops_at_the_default_bound_with_memory_bounded(provider, server):
    body = transcript(provider)
    line = (b"data: " if provider == "openai" else b"") + b"x" * (10 * MB) + b"\n\n"
    server.replay(body)
    server.replay(body[: mid_stream_boundary(provider, body)] + line, piece_size=64 * 1024)
    completed, _ = _run_python(_OVERSIZED_EVENT, server.api_base(provider), provider,
                               MODELS[provider])
    assert completed.returncode == 0, completed.stderr
    growth = int(completed.stdout.strip())
    print(f"\npeak RSS growth reading a 10 MB line ({provider}): {growth / MB:.1f} MB")
    # The default bound is 4 MiB: the reader holds at most that much of the line.
    assert growth < 9 * MB
