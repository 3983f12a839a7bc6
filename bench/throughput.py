"""Throughput and time-to-first-chunk: litestream against raw parsing, requests and other SDKs.

A loopback server in a separate process streams OpenAI-format chunks over
HTTP/1.1 chunked encoding (one HTTP chunk per event, varied tokens). Each
client reads the whole stream; the best of a few runs counts. Prints a table
of chunks/s and the ratios the project tracks. Not a test: run it by hand::

    python bench/throughput.py [--chunks 20000] [--runs 3]
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


def _body(count: int) -> bytes:
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
    encoded = [b"%x\r\n%s\r\n" % (len(part), part) for part in parts]
    return b"".join(encoded) + b"0\r\n\r\n"


def _serve(sock: socket.socket, big: int) -> None:
    bodies = {b"big": _body(big), b"small": _body(3)}
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
            kind = b"small" if b"small" in request_body else b"big"
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


def litestream_stream(port: int, kind: str, first: Optional[list] = None) -> int:
    import litestream

    started = time.perf_counter()
    count = 0
    stream = litestream.completion(
        "openai", "bench-model", _request_body(kind),
        {"api_key": "bench", "api_base": f"http://127.0.0.1:{port}/v1"})
    for _chunk in stream:
        if first is not None and count == 0:
            first.append(time.perf_counter() - started)
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


def _best_rate(client: Callable[..., int], port: int, runs: int) -> Optional[float]:
    best = None
    for _ in range(runs):
        started = time.perf_counter()
        count = client(port, "big")
        rate = count / (time.perf_counter() - started)
        best = rate if best is None else max(best, rate)
    return best


def _first_chunk_ms(client: Callable[..., int], port: int, requests: int = 60) -> float:
    first: list[float] = []
    for _ in range(requests):
        client(port, "small", first)
    return statistics.median(first) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = multiprocessing.get_context("fork").Process(
        target=_serve, args=(sock, args.chunks), daemon=True)
    server.start()
    sock.close()

    clients = [
        ("raw http.client read1 + split + json.loads", raw_http_client, 1),
        ("requests iter_lines + json.loads", requests_iter_lines, 1),
        ("litestream: for chunk in completion(...)", litestream_stream, 1),
        ("openai SDK", openai_sdk, 1),
        ("litellm", litellm_sdk, 1),
    ]
    rates: dict[str, Optional[float]] = {}
    for name, client, _ in clients:
        runs = args.runs if client not in (litellm_sdk,) else 1
        try:
            rates[name] = _best_rate(client, port, runs)
        except ImportError as error:
            rates[name] = None
            print(f"  ({name}: not installed: {error.name})")
    print(f"\n{args.chunks} OpenAI chunks over loopback; Python {platform.python_version()}, "
          f"{multiprocessing.cpu_count()} cores, {platform.processor() or platform.machine()}")
    print(f"{'client':46} {'chunks/s':>12}")
    for name, rate in rates.items():
        shown = f"{rate:12,.0f}" if rate else f"{'n/a':>12}"
        print(f"{name:46} {shown}")

    raw = max(rates[clients[0][0]] or 0, rates[clients[1][0]] or 0)
    ours = rates[clients[2][0]] or 0
    print("\nratios (targets in brackets)")
    print(f"  litestream / faster raw path : {ours / raw:6.2f}x  [>= 0.4x]")
    for name, target in ((clients[3][0], 8), (clients[4][0], 100)):
        if rates[name]:
            print(f"  litestream / {name:17}: {ours / rates[name]:6.1f}x  [>= {target}x]")

    raw_first = _first_chunk_ms(raw_http_client, port)
    ours_first = _first_chunk_ms(litestream_stream, port)
    print(f"\ntime to first chunk (median of 60): raw {raw_first:.3f} ms, "
          f"litestream {ours_first:.3f} ms, overhead {ours_first - raw_first:+.3f} ms  [< 1 ms]")
    server.terminate()


if __name__ == "__main__":
    main()
