"""A thousand concurrent streams in one process, consumed through ``litestream.merge``.

A loopback server in another process accepts every stream, sends its
headers and a first chunk, then holds it idle until told to go; then every
stream sends its remaining chunks. Measured in one run, in ``--rounds``
rounds (3 by default) interleaved with one stream alone from the same
server (before the first round and after each), so that whatever else the
machine does hits both alike:

- time to open them all: from the first ``completion()`` call until every
  stream has delivered its first chunk;
- resident memory per idle open stream (``VmRSS`` growth divided by the
  number of streams; reader threads and sockets included), in the first
  round (later rounds reuse memory the first one freed);
- aggregate chunks/s of all streams drained through one ``merge``, relative
  to one stream's chunks/s: per round, against the better of the two
  single-stream runs beside it; the median of the rounds is the result.

Not a test: run it by hand::

    python bench/many_streams.py [--streams 1000] [--chunks 60] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import socket
import statistics
import threading
import time

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")


def _events(count: int, first: int = 0) -> bytes:
    parts = []
    for index in range(first, first + count):
        chunk = {"id": "chatcmpl-many", "object": "chat.completion.chunk",
                 "created": 1700000000, "model": "bench-model",
                 "choices": [{"index": 0, "delta": {"content": f" tok{index % 97}"},
                              "finish_reason": None}]}
        parts.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts)


def _tail() -> bytes:
    final = {"id": "chatcmpl-many", "object": "chat.completion.chunk", "created": 1700000000,
             "model": "bench-model", "choices": [{"index": 0, "delta": {},
                                                  "finish_reason": "stop"}]}
    parts = [b"data: " + json.dumps(final).encode() + b"\n\n", b"data: [DONE]\n\n"]
    return b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts) + b"0\r\n\r\n"


Go = list  # one multiprocessing Event per round: that round's streams send their rest


def _serve(sock: socket.socket, go: Go, chunks: int, solo_chunks: int) -> None:
    first = _events(1)
    rest = _events(chunks - 1, 1) + _tail()
    solo = _events(solo_chunks) + _tail()
    while True:
        connection, _ = sock.accept()
        threading.Thread(target=_answer, args=(connection, go, first, rest, solo),
                         daemon=True, name="bench-answer").start()


def _answer(connection: socket.socket, go: Go, first: bytes, rest: bytes,
            solo: bytes) -> None:
    try:
        request = b""
        while b"\r\n\r\n" not in request:
            data = connection.recv(65536)
            if not data:
                return
            request += data
        header, body = request.split(b"\r\n\r\n", 1)
        length = 0
        for line in header.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            body += connection.recv(65536)
        if b"solo" in body:
            connection.sendall(HEAD + solo)
        else:
            connection.sendall(HEAD + first)
            go[int(body.split(b"many-")[1].split(b'"')[0])].wait()
            connection.sendall(rest)
        connection.shutdown(socket.SHUT_WR)
        while connection.recv(65536):
            pass
    except OSError:
        pass
    finally:
        connection.close()


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _open(port: int, kind: str):  # noqa: ANN202 - a litestream Stream
    import litestream

    return litestream.completion(
        "openai", "bench-model",
        {"messages": [{"role": "user", "content": kind}], "stream": True},
        {"api_key": "bench", "api_base": f"http://127.0.0.1:{port}/v1", "max_retries": 0})


def _solo_rate(port: int, chunks: int) -> tuple[float, float]:
    """Return one stream's chunks/s and this process's CPU µs per chunk."""
    started = time.perf_counter()
    cpu_started = time.process_time()
    count = 0
    with _open(port, "solo") as stream:
        for _chunk in stream:
            count += 1
    cpu = (time.process_time() - cpu_started) / count * 1e6
    return count / (time.perf_counter() - started), cpu


class Round:
    """One round: open every stream, let them idle, then drain them all through ``merge``."""

    def __init__(self, port: int, streams: int, go: multiprocessing.synchronize.Event,
                 kind: str) -> None:
        import litestream

        threads_before = threading.active_count()
        rss_before = _rss_kib()
        started = time.perf_counter()
        opened = [_open(port, kind) for _ in range(streams)]
        first = [stream.get() for stream in opened]
        #: Seconds from the first call until every stream delivered its first chunk.
        self.open_seconds = time.perf_counter() - started
        assert all(chunk is not None for chunk in first)
        time.sleep(0.5)  # let every stream settle into waiting for its socket
        #: KiB of resident memory per idle open stream, and the threads before and then.
        self.rss_per_stream = (_rss_kib() - rss_before) / streams
        self.threads = (threads_before, threading.active_count())

        merged = litestream.merge(opened, close_sources=True)
        started = time.perf_counter()
        cpu_started = time.process_time()
        go.set()
        count = 0
        while merged.get() is not None:
            count += 1
        #: Chunks drained, and the seconds and CPU µs per chunk it took.
        self.count = count
        self.seconds = time.perf_counter() - started
        self.cpu_per_chunk = (time.process_time() - cpu_started) / count * 1e6
        merged.close()

    @property
    def rate(self) -> float:
        """Aggregate chunks/s of the drain."""
        return self.count / self.seconds


def main() -> None:
    """Run the measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=60, help="chunks per stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="30 chunks per stream, one round")
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.rounds = 30, 1
    solo_chunks = args.streams * args.chunks  # as many as a round drains

    context = multiprocessing.get_context("fork")
    go = [context.Event() for _ in range(args.rounds)]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    port = sock.getsockname()[1]
    server = context.Process(target=_serve, args=(sock, go, args.chunks, solo_chunks),
                             daemon=True)
    server.start()
    sock.close()
    try:
        _solo_rate(port, solo_chunks)  # warm up: imports, first connection
        solos = [_solo_rate(port, solo_chunks)]
        rounds = []
        for index in range(args.rounds):
            rounds.append(Round(port, args.streams, go[index], f"many-{index}"))
            solos.append(_solo_rate(port, solo_chunks))
    finally:
        server.terminate()
        server.join()

    ratios = [one.rate / max(solos[index][0], solos[index + 1][0])
              for index, one in enumerate(rounds)]
    cpu_ratios = [min(solos[index][1], solos[index + 1][1]) / one.cpu_per_chunk
                  for index, one in enumerate(rounds)]
    first = rounds[0]
    print(f"{args.streams} streams x {args.chunks} chunks over loopback, {args.rounds} "
          f"round(s); Python {platform.python_version()}, {multiprocessing.cpu_count()} cores")
    print(f"  time to open all (first chunk of each)  {first.open_seconds * 1000:9.0f} ms "
          f"({first.open_seconds / args.streams * 1e6:.0f} us per stream)")
    print(f"  RSS per idle open stream                {first.rss_per_stream:9.1f} KiB"
          f"  [<= 64 KB]  (threads {first.threads[0]} -> {first.threads[1]})")
    print("  one stream alone                        "
          + ", ".join(f"{rate:,.0f}" for rate, _cpu in solos) + " chunks/s")
    print(f"  {args.streams} streams through merge            "
          + ", ".join(f"{one.rate:,.0f}" for one in rounds)
          + f" chunks/s ({first.count} chunks a round)")
    print("  aggregate / one stream, per round       "
          + ", ".join(f"{ratio:.2f}" for ratio in ratios))
    print(f"  aggregate / one stream, median          {statistics.median(ratios):9.2f}x"
          "  [>= 0.5x]")
    # CPU per chunk is steadier than chunks/s when other programs share the machine.
    print("  CPU per chunk: one stream "
          + ", ".join(f"{cpu:.1f}" for _rate, cpu in solos) + " us; "
          + f"{args.streams} streams " + ", ".join(f"{one.cpu_per_chunk:.1f}" for one in rounds)
          + f" us; median ratio {statistics.median(cpu_ratios):.2f}x")


if __name__ == "__main__":
    main()
