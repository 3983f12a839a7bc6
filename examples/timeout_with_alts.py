"""Bound a stream with a timeout() channel and alts; close the stream when time is up.

    python examples/timeout_with_alts.py

``alts([stream, deadline])`` returns whichever is ready first: a chunk, the
stream's end (``None``), or the deadline channel closing. Closing the
stream on timeout cancels its HTTP request and ends its reader thread.
"""

from __future__ import annotations

import _setup

import litestream as ls


def stream_with_timeout(question: str, max_seconds: float, provider: str, model: str,
                        config: dict) -> str:
    """Print the answer until it ends or ``max_seconds`` pass; return "complete" or "timeout"."""
    stream = ls.completion(provider, model,
                           {"messages": [{"role": "user", "content": question}], "stream": True},
                           config)
    deadline = ls.timeout(max_seconds)
    try:
        while True:
            chunk, channel = ls.alts([stream, deadline])
            if channel is deadline:
                print(f"\nTimeout after {max_seconds} s!")
                return "timeout"
            if chunk is None:
                print("\nComplete!")
                return "complete"
            print(ls.extract_content(chunk) or "", end="", flush=True)
    finally:
        stream.close()


def main() -> None:
    replies = (
        {"text": "A short answer that arrives in time.", "delay": 0.01},
        {"text": "A long answer that stops coming after a few words", "stall_after": 3},
    )
    with _setup.backend(*replies) as backend:
        target = backend.target()
        stream_with_timeout("Say something short.", 10.0, *target)
        stream_with_timeout("Write a very long story.", 0.5, *target)


if __name__ == "__main__":
    main()
