"""Per-event CPU cost of framing and parsing, without threads or sockets.

Feeds a recorded-shape body of text deltas for each provider to the framing
decoder and the provider's stream parser in one thread and prints CPU
microseconds per event (``time.thread_time``) for: the reference (split +
``json.loads``), framing alone (64 KiB reads and one event per read), parsing alone (pre-framed
events), and framing plus parsing. The contenders are interleaved round by
round and the best round counts. Not a test: run it by hand::

    python bench/parse.py [--events 20000] [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any, Callable

from litestream.framing import make_decoder
from litestream.providers import get_provider

WORDS = ("the", " quick", " brown", " fox", " jumps", " over", " a", " lazy", " dog", ",",
         " streaming", " tokens", " 42", " émigré", " 東京", " end", ".", "\n")


def _token(index: int) -> str:
    return WORDS[index % len(WORDS)] * (1 + index % 3)


def _sse(payload: Any, event: str = "") -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(payload).encode() + b"\n\n"


def openai_body(count: int) -> bytes:
    """OpenAI ``chat.completion.chunk`` text deltas, then a finish chunk and ``[DONE]``."""
    def chunk(delta: dict, finish: Any = None) -> dict:
        return {"id": "chatcmpl-bench", "object": "chat.completion.chunk",
                "created": 1700000000, "model": "bench-model",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    parts = [_sse(chunk({"content": _token(i)})) for i in range(count)]
    parts.append(_sse(chunk({}, "stop")))
    return b"".join(parts) + b"data: [DONE]\n\n"


def anthropic_body(count: int) -> bytes:
    """Anthropic ``content_block_delta`` text deltas between the start and stop events."""
    parts = [_sse({"type": "message_start", "message": {"id": "msg_b", "model": "claude-b",
                                                         "usage": {"input_tokens": 3}}},
                  "message_start"),
             _sse({"type": "content_block_start", "index": 0,
                   "content_block": {"type": "text", "text": ""}}, "content_block_start")]
    parts += [_sse({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": _token(i)}}, "content_block_delta")
              for i in range(count)]
    parts += [_sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
              _sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": count}}, "message_delta"),
              _sse({"type": "message_stop"}, "message_stop")]
    return b"".join(parts)


def gemini_body(count: int) -> bytes:
    """Gemini ``streamGenerateContent?alt=sse`` candidates with one text part each."""
    parts = [_sse({"candidates": [{"content": {"role": "model", "parts": [{"text": _token(i)}]},
                                   "index": 0}],
                   "modelVersion": "gemini-b", "responseId": "r"}) for i in range(count)]
    parts.append(_sse({"candidates": [{"content": {"role": "model", "parts": [{"text": "."}]},
                                       "finishReason": "STOP", "index": 0}],
                       "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": count},
                       "modelVersion": "gemini-b", "responseId": "r"}))
    return b"".join(parts)


def ollama_body(count: int) -> bytes:
    """Ollama ``/api/chat`` NDJSON lines, then the ``done`` line."""
    lines = [json.dumps({"model": "llama-b", "created_at": "2025-10-26T17:15:24.097767Z",
                         "message": {"role": "assistant", "content": _token(i)},
                         "done": False}).encode() for i in range(count)]
    lines.append(json.dumps({"model": "llama-b", "created_at": "2025-10-26T17:15:24.1Z",
                             "message": {"role": "assistant", "content": ""}, "done": True,
                             "done_reason": "stop", "prompt_eval_count": 3,
                             "eval_count": count}).encode())
    return b"\n".join(lines) + b"\n"


BODIES: dict[str, Callable[[int], bytes]] = {
    "openai": openai_body, "anthropic": anthropic_body, "gemini": gemini_body,
    "ollama": ollama_body,
}


def _reads(body: bytes, size: int) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)]


def _event_reads(body: bytes, separator: bytes) -> list[bytes]:
    parts = body.split(separator)
    return [part + separator for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def reference(reads: list[bytes], separator: bytes, prefix: int) -> int:
    """Split on the separator and ``json.loads`` each payload: the floor any client pays."""
    count, rest = 0, b""
    for data in reads:
        events = (rest + data).split(separator)
        rest = events.pop()
        for event in events:
            payload = event[event.find(b"data: ") + 6:] if prefix else event
            if payload and payload != b"[DONE]":
                json.loads(payload)
                count += 1
    return count


def framing_only(provider: str, reads: list[bytes]) -> int:
    """Run the framing decoder over the reads."""
    decoder = make_decoder(get_provider(provider).framing)
    count = 0
    for data in reads:
        count += len(decoder.feed(data))
    return count + len(decoder.close())


def parse_only(provider: str, events: list[Any]) -> int:
    """Feed pre-framed events to a fresh stream parser."""
    parser = get_provider(provider).stream_parser("bench-model")
    count = 0
    feed = parser.feed
    for event in events:
        count += len(feed(event))
    return count


#: The reader's default buffer: it parses and hands over a read's events this many at a time.
BUFFER = 64


def frame_and_parse(provider: str, reads: list[bytes]) -> int:
    """Framing and parsing together, as the reader thread runs them.

    The chunks stay alive as long as in the reader (until one buffer's
    worth is handed over), so the garbage collector's cost is counted too.
    """
    impl = get_provider(provider)
    decoder = make_decoder(impl.framing)
    parser = impl.stream_parser("bench-model")
    count = 0
    if not hasattr(parser, "feed_many"):  # an older litestream: a read's chunks in one list
        for data in reads:
            chunks: list[Any] = []
            for event in decoder.iter_feed(data):
                chunks.extend(parser.feed(event))
            count += len(chunks)
        return count
    for data in reads:
        events = decoder.decode(data)[0]
        for start in range(0, len(events), BUFFER):
            chunks = []
            parser.feed_many(events[start:start + BUFFER], chunks)
            count += len(chunks)
    return count


def _timed(function: Callable[[], int]) -> float:
    """Return the CPU seconds ``function`` took on this thread (less noisy than wall time)."""
    started = time.thread_time()
    function()
    return time.thread_time() - started


def measure(provider: str, events: int, rounds: int) -> dict[str, float]:
    """Return microseconds per event of each contender for ``provider`` (best round)."""
    body = BODIES[provider](events)
    framing = get_provider(provider).framing
    separator = b"\n" if framing == "ndjson" else b"\n\n"
    big = _reads(body, 65536)
    single = _event_reads(body, separator)
    decoded = make_decoder(framing).feed(body)
    contenders: dict[str, Callable[[], int]] = {
        "split + json.loads (64 KiB reads)": lambda: reference(big, separator, framing != "ndjson"),
        "framing, 64 KiB reads": lambda: framing_only(provider, big),
        "framing, one event per read": lambda: framing_only(provider, single),
        "parser only": lambda: parse_only(provider, decoded),
        "framing + parser, 64 KiB reads": lambda: frame_and_parse(provider, big),
    }
    best = {name: float("inf") for name in contenders}
    for _ in range(rounds):
        for name, contender in contenders.items():
            best[name] = min(best[name], _timed(contender))
    return {name: seconds / len(decoded) * 1e6 for name, seconds in best.items()}


def main() -> None:
    """Print the per-event cost table for every provider."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="5,000 events, 3 rounds")
    parser.add_argument("--providers", default=",".join(BODIES))
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 5000, 3
    print(f"{args.events} text events per provider, best of {args.rounds} rounds; "
          f"Python {platform.python_version()}")
    for provider in args.providers.split(","):
        results = measure(provider, args.events, args.rounds)
        print(f"\n{provider}: microseconds per event")
        for name, micros in results.items():
            print(f"  {name:36} {micros:7.2f}")


if __name__ == "__main__":
    main()
