"""Throughput and time-to-first-chunk: litestream against raw parsing, requests and other SDKs.

A loopback server in a separate process streams OpenAI-format chunks over
HTTP/1.1 chunked encoding (one HTTP chunk per event, varied tokens). Each
client reads the whole stream; the best of a few runs counts. Prints a table
of chunks/s and the ratios the project tracks. Not a test: run it by hand::

    python bench/throughput.py [--chunks 20000] [--runs 3] [--quick]

Two server shapes (one event per HTTP chunk; 64 KiB writes holding many
events), each quiet and "under load" (one extra CPU-busy process), and the
time to first chunk (median of 60, raw and litestream requests interleaved).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import socket
import statistics
import threading
import time
from typing import Callable, Optional

WORDS = ("the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", ",",
         " streaming", " tokens", " 42", " émigré", " 東京", " end", ".", "\n")


def _body(count: int, write: int = 0) -> bytes:
    parts = []
    for index in range(count):
        token = WORDS[index % len(WORDS)] * (1 + index % 3)
        chunk = {
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
            "model": "bench-model",
            "choices": [{"index": 0, "delta": {"content": token},
                         "finish_reason": None}],
        }
        parts.append(b"data: " + json.dumps(chunk).encode() + b"\n\n")
    final = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000,
             "model": "bench-model",
             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    parts.append(b"data: " + json.dumps(final).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    if write:
        # Many events per HTTP chunk, as a proxy or a fast local server writes them.
        joined = b"".join(parts)
        parts = [joined[i:i + write] for i in range(0, len(joined), write)]
    encoded = [b"%x\r\n%s\r\n" % (len(part), part) for part in parts]
    return b"".join(encoded) + b"0\r\n\r\n"


def _serve(sock: socket.socket, big: int) -> None:
    bodies = {b"big": _body(big), b"wide": _body(big, 65536), b"small": _body(3)}
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")
    while True:
        connection, _ = sock.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_answer, args=(connection, bodies, head), daemon=True).start()


def _answer(connection: socket.socket, bodies: dict[bytes, bytes], head: bytes) -> None:
    """Answer every request of one keep-alive connection."""
    try:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = connection.recv(65536)
                if not data:
                    raise ConnectionError
                buffer += data
            header, buffer = buffer.split(b"\r\n\r\n", 1)
            length = 0
            for line in header.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(buffer) < length:
                buffer += connection.recv(65536)
            request_body, buffer = buffer[:length], buffer[length:]
            kind = next((k for k in (b"small", b"wide") if k in request_body), b"big")
            connection.sendall(head + bodies[kind])
    except (ConnectionError, OSError):
        connection.close()


def _request_body(kind: str) -> dict:
    return {"model": "bench-model", "stream": True,
            "messages": [{"role": "user", "content": kind}]}


# -- clients --------------------------------------------------------------------


def raw_http_client(port: int, kind: str, first: Optional[list] = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    started = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body=json.dumps(_request_body(kind)),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    count, rest = 0, b""
    while True:
        data = response.read1(65536)
        if not data:
            break
        events = (rest + data).split(b"\n\n")
        rest = events.pop()
        for event in events:
            payload = event[6:]
            if payload != b"[DONE]":
                json.loads(payload)
                if first is not None and count == 0:
                    first.append(time.perf_counter() - started)
                count += 1
    connection.close()
    return count


def requests_iter_lines(port: int, kind: str, first: Optional[list] = None) -> int:
    import requests

    started = time.perf_counter()
    count = 0
    with requests.post(f"http://127.0.0.1:{port}/v1/chat/completions",
                       json=_request_body(kind), stream=True) as response:
        for line in response.iter_lines():
            if line.startswith(b"data: ") and line != b"data: [DONE]":
                json.loads(line[6:])
                if first is not None and count == 0:
                    first.append(time.perf_counter() - started)
                count += 1
    return count


def _litestream_completion(port: int, kind: str):  # noqa: ANN202 - a litestream Stream
    import litestream

    return litestream.completion(
        "openai", "bench-model", _request_body(kind),
        {"api_key": "bench", "api_base": f"http://127.0.0.1:{port}/v1"})


def litestream_stream(port: int, kind: str, first: Optional[list] = None) -> int:
    started = time.perf_counter()
    count = 0
    for _chunk in _litestream_completion(port, kind):
        if first is not None and count == 0:
            first.append(time.perf_counter() - started)
        count += 1
    return count


def litestream_text(port: int, kind: str, first: Optional[list] = None) -> int:
    """litestream, the consumer reading each chunk's text (what a chat UI does)."""
    from litestream import extract_content

    count = 0
    for chunk in _litestream_completion(port, kind):
        extract_content(chunk)
        count += 1
    return count


def litestream_choices(port: int, kind: str, first: Optional[list] = None) -> int:
    """litestream, the consumer reading ``chunk.choices[0].delta`` (which builds the choice)."""
    count = 0
    for chunk in _litestream_completion(port, kind):
        chunk.choices[0].delta.content  # noqa: B018 - the read is the point
        count += 1
    return count


def openai_sdk(port: int, kind: str, first: Optional[list] = None) -> int:
    import openai

    client = openai.OpenAI(api_key="bench", base_url=f"http://127.0.0.1:{port}/v1")
    count = 0
    body = _request_body(kind)
    for _chunk in client.chat.completions.create(model=body["model"], messages=body["messages"],
                                                 stream=True):
        count += 1
    client.close()
    return count


def litellm_sdk(port: int, kind: str, first: Optional[list] = None) -> int:
    # Keep litellm from fetching its model price list from the internet.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    count = 0
    body = _request_body(kind)
    for _chunk in litellm.completion(model="openai/bench-model", messages=body["messages"],
                                     api_base=f"http://127.0.0.1:{port}/v1", api_key="bench",
                                     stream=True):
        count += 1
    return count


def _busy() -> None:
    """Spin one core: the extra CPU-bound process of the "under load" rows."""
    while True:
        pass


def _rates(contenders: list[tuple[str, Callable[..., int]]], port: int, kind: str,
           runs: int) -> dict[str, Optional[float]]:
    """Return each contender's best chunks/s over ``runs`` rounds, interleaved round by round."""
    best: dict[str, Optional[float]] = {name: None for name, _ in contenders}
    for _ in range(runs):
        for name, client in contenders:
            try:
                started = time.perf_counter()
                cpu_started = time.process_time()
                count = client(port, kind)
            except ImportError:
                continue
            rate = count / (time.perf_counter() - started)
            cpu = (time.process_time() - cpu_started) / count * 1e6
            best[name] = rate if best[name] is None else max(best[name] or 0, rate)
            CPU_US[(kind, name)] = min(CPU_US.get((kind, name), cpu), cpu)
    return best


#: The least CPU (this process: client and reader threads) per chunk, in µs, by (kind, name):
#: steadier than chunks/s when other programs share the machine.
CPU_US: dict[tuple[str, str], float] = {}


def _first_chunk_ms(port: int, requests: int = 60) -> tuple[float, float]:
    """Return the median time to first chunk of raw and litestream, requests interleaved."""
    raw: list[float] = []
    ours: list[float] = []
    for _ in range(requests):
        raw_http_client(port, "small", raw)
        litestream_stream(port, "small", ours)
    # The fastest tenth as well: steadier than the median on a shared machine.
    FIRST_CHUNK_P10.extend(sorted(times)[len(times) // 10] * 1000 for times in (raw, ours))
    return statistics.median(raw) * 1000, statistics.median(ours) * 1000


FIRST_CHUNK_P10: list[float] = []


RAW = "raw http.client read1 + split + json.loads"
REQUESTS = "requests iter_lines + json.loads"
OURS = "litestream: for chunk in completion(...)"
OURS_TEXT = "  same, reading extract_content(chunk)"
OURS_CHOICES = "  same, reading chunk.choices[0].delta"
SDK = "openai SDK"
LITELLM = "litellm"


def main() -> None:
    """Run every measurement and print the tables and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="8,000 chunks, 2 runs")
    args = parser.parse_args()
    if args.quick:
        args.chunks, args.runs = 8000, 2

    context = multiprocessing.get_context("fork")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = context.Process(target=_serve, args=(sock, args.chunks), daemon=True)
    server.start()
    sock.close()
    try:
        import litellm  # noqa: F401
        has_litellm = True
    except ImportError:
        has_litellm = False
    raw_paths = [(RAW, raw_http_client), (REQUESTS, requests_iter_lines)]
    sdks = [(SDK, openai_sdk)] + ([(LITELLM, litellm_sdk)] if has_litellm else [])
    litestream_stream(port, "small")  # warm up imports
    rows: dict[str, dict[str, Optional[float]]] = {}
    readers = [(OURS_TEXT, litestream_text), (OURS_CHOICES, litestream_choices)]
    rows["one event per HTTP chunk, quiet"] = _rates(
        [*raw_paths, (OURS, litestream_stream), *readers, *sdks[:1]], port, "big", args.runs)
    rows["64 KiB HTTP chunks, quiet"] = _rates(
        [*raw_paths, (OURS, litestream_stream), *readers], port, "wide", args.runs)
    raw_first, ours_first = _first_chunk_ms(port)
    busy = context.Process(target=_busy, daemon=True)
    busy.start()
    try:
        rows["one event per HTTP chunk, under load"] = _rates(
            [*raw_paths, (OURS, litestream_stream)], port, "big", args.runs)
        rows["64 KiB HTTP chunks, under load"] = _rates(
            [*raw_paths, (OURS, litestream_stream)], port, "wide", args.runs)
    finally:
        busy.terminate()
    if has_litellm:
        rows["litellm (one run)"] = _rates([(OURS, litestream_stream), (LITELLM, litellm_sdk)],
                                           port, "big", 1)
    server.terminate()

    print(f"\n{args.chunks} OpenAI chunks over loopback, best of {args.runs} interleaved runs; "
          f"Python {platform.python_version()}, {multiprocessing.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}")
    for title, rates in rows.items():
        print(f"\n{title}")
        kind = "wide" if title.startswith("64 KiB") else "big"
        for name, rate in rates.items():
            shown = f"{rate:12,.0f}" if rate else f"{'n/a':>12}"
            cpu = CPU_US.get((kind, name))
            cpu_shown = f"  {cpu:6.2f} CPU us/chunk" if cpu and "load" not in title else ""
            print(f"  {name:46} {shown} chunks/s{cpu_shown}")
        raw = max(rates.get(RAW) or 0, rates.get(REQUESTS) or 0)
        ours = rates.get(OURS) or 0
        target = "0.4" if "load" in title else "0.5"
        if raw:
            print(f"  litestream / faster raw path: {ours / raw:6.2f}x  [>= {target}x]")
            for name in (OURS_TEXT, OURS_CHOICES):
                if rates.get(name):
                    print(f"  {name.strip()}: {(rates[name] or 0) / raw:6.2f}x the raw path")
        if "load" not in title and CPU_US.get((kind, OURS)):
            raw_cpu = min(CPU_US.get((kind, RAW), 1e9), CPU_US.get((kind, REQUESTS), 1e9))
            print(f"  CPU per chunk, leanest raw path / litestream: "
                  f"{raw_cpu / CPU_US[(kind, OURS)]:6.2f}x")
        for name, goal in ((SDK, 10), (LITELLM, 100)):
            if rates.get(name):
                print(f"  litestream / {name}: {ours / rates[name]:6.1f}x  [>= {goal}x]")
    if not has_litellm:
        print("\nlitellm: not installed, not measured")
    print(f"\ntime to first chunk (median of 60, interleaved): raw {raw_first:.3f} ms, "
          f"litestream {ours_first:.3f} ms, overhead {ours_first - raw_first:+.3f} ms  "
          f"[< 0.5 ms]")
    raw_p10, ours_p10 = FIRST_CHUNK_P10
    print(f"time to first chunk, 10th percentile: raw {raw_p10:.3f} ms, litestream "
          f"{ours_p10:.3f} ms, overhead {ours_p10 - raw_p10:+.3f} ms")


if __name__ == "__main__":
    main()
