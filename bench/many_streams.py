"""A thousand concurrent streams in one process, consumed through ``litestream.merge``.

A loopback server in another process accepts every stream, sends its
headers and a first chunk, then holds it idle until told to go; then every
stream sends its remaining chunks. Measured in one run:

- time to open them all: from the first ``completion()`` call until every
  stream has delivered its first chunk;
- resident memory per idle open stream (``VmRSS`` growth divided by the
  number of streams; reader threads and sockets included);
- aggregate chunks/s of all streams drained through one ``merge``, relative
  to one stream's chunks/s from the same server (measured before and after,
  the better of the two counts).

Not a test: run it by hand::

    python bench/many_streams.py [--streams 1000] [--chunks 60] [--quick]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import socket
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


def _serve(sock: socket.socket, go: multiprocessing.synchronize.Event, chunks: int,
           solo_chunks: int) -> None:
    first = _events(1)
    rest = _events(chunks - 1, 1) + _tail()
    solo = _events(solo_chunks) + _tail()
    while True:
        connection, _ = sock.accept()
        threading.Thread(target=_answer, args=(connection, go, first, rest, solo),
                         daemon=True, name="bench-answer").start()


def _answer(connection: socket.socket, go: multiprocessing.synchronize.Event, first: bytes,
            rest: bytes, solo: bytes) -> None:
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
            go.wait()
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


def main() -> None:
    """Run the measurement and print the table."""
    import litestream

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--chunks", type=int, default=60, help="chunks per stream")
    parser.add_argument("--quick", action="store_true", help="30 chunks per stream")
    args = parser.parse_args()
    if args.quick:
        args.chunks = 30
    solo_chunks = args.streams * args.chunks // 4

    context = multiprocessing.get_context("fork")
    go = context.Event()
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
        solo_before, solo_cpu_before = _solo_rate(port, solo_chunks)
        threads_before = threading.active_count()
        rss_before = _rss_kib()
        started = time.perf_counter()
        streams = [_open(port, "many") for _ in range(args.streams)]
        first = [stream.get() for stream in streams]
        opened = time.perf_counter() - started
        assert all(chunk is not None for chunk in first)
        time.sleep(0.5)  # let every reader thread settle into its blocking read
        rss_idle = _rss_kib()
        threads_idle = threading.active_count()

        merged = litestream.merge(streams, close_sources=True)
        started = time.perf_counter()
        cpu_started = time.process_time()
        go.set()
        count = 0
        while merged.get() is not None:
            count += 1
        drained = time.perf_counter() - started
        drain_cpu = (time.process_time() - cpu_started) / count * 1e6
        merged.close()
        for stream in streams:
            stream.close()
        aggregate = count / drained
        solo_after, solo_cpu_after = _solo_rate(port, solo_chunks)
    finally:
        server.terminate()
        server.join()

    solo = max(solo_before, solo_after)
    per_stream = (rss_idle - rss_before) / args.streams
    print(f"{args.streams} streams x {args.chunks} chunks over loopback; Python "
          f"{platform.python_version()}, {multiprocessing.cpu_count()} cores")
    print(f"  time to open all (first chunk of each)  {opened * 1000:9.0f} ms "
          f"({opened / args.streams * 1e6:.0f} us per stream)")
    print(f"  RSS per idle open stream                {per_stream:9.1f} KiB  [<= 64 KB]"
          f"  (threads {threads_before} -> {threads_idle})")
    print(f"  one stream alone                        {solo:9,.0f} chunks/s "
          f"(before {solo_before:,.0f}, after {solo_after:,.0f})")
    print(f"  {args.streams} streams through merge            {aggregate:9,.0f} chunks/s "
          f"({count} chunks in {drained:.2f} s)")
    print(f"  aggregate / one stream                  {aggregate / solo:9.2f}x  [>= 0.5x]")
    solo_cpu = min(solo_cpu_before, solo_cpu_after)
    # CPU per chunk is steadier than chunks/s when other programs share the machine.
    print(f"  CPU per chunk: one stream {solo_cpu:.1f} us, {args.streams} streams "
          f"{drain_cpu:.1f} us; ratio {solo_cpu / drain_cpu:.2f}x")


if __name__ == "__main__":
    main()
