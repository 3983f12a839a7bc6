"""Measure a stream while printing it: tokens, milliseconds, tokens per second.

    python examples/metrics.py

The callbacks run on a worker thread; ``consume_stream_with_callbacks``
returns a future, and waiting on it waits for ``on_complete`` or ``on_error``.
"""

from __future__ import annotations

import time

import _setup

import litestream as ls


def stream_with_metrics(question: str, provider: str, model: str, config: dict) -> None:
    """Print the answer and, at the end, its token count and throughput."""
    stream = ls.completion(provider, model,
                           {"messages": [{"role": "user", "content": question}], "stream": True},
                           config)
    pieces: list[str] = []
    start_time = time.monotonic()

    def on_chunk(chunk: ls.Chunk) -> None:
        content = ls.extract_content(chunk)
        if content:
            pieces.append(content)
            print(content, end="", flush=True)

    def on_complete(response: ls.Response) -> None:
        duration_ms = (time.monotonic() - start_time) * 1000
        # Estimate on the whole text: estimating each chunk apart would count
        # at least one token per chunk.
        token_count = ls.estimate_tokens("".join(pieces))
        print(f"\n\nTokens: {token_count} | Time: {duration_ms:.0f}ms | "
              f"Tokens/sec: {token_count * 1000.0 / max(duration_ms, 1.0):.1f}")

    def on_error(error: BaseException) -> None:
        print(f"\nError: {ls.error_summary(error)}")

    future = ls.consume_stream_with_callbacks(stream, on_chunk, on_complete, on_error)
    try:
        future.result(timeout=120)
    except ls.LitestreamError:
        pass  # on_error has reported it


def main() -> None:
    reply = {"text": "Streaming shows the first words at once and the rest as they are "
                     "generated, so a long answer feels fast.", "delay": 0.01}
    with _setup.backend(reply) as backend:
        stream_with_metrics("Why stream LLM answers? Two sentences.", *backend.target())


if __name__ == "__main__":
    main()
