"""The seed's best practices, runnable: return streams, close them, bound them, handle errors.

    python examples/best_practices.py

1. The service layer returns the stream; the caller that consumes it owns it.
2. Always handle completion and errors (callbacks, or a loop in try/except).
3. Flush output for real-time display.
4. Close streams you stop reading: ``with stream:`` does it on any exit.
5. Bound every stream: ``first_chunk_timeout`` and ``idle_timeout`` in the
   config, or a ``timeout()`` channel with ``alts``.
6. A new stream per request: never share one between requests.
"""

from __future__ import annotations

import _setup

import litestream as ls


def generate_response(prompt: str, target: _setup.Target, **config: float) -> ls.Stream:
    """Service layer: start the request and return the stream, without consuming it."""
    provider, model, base_config = target
    return ls.completion(provider, model,
                         {"messages": [{"role": "user", "content": prompt}], "stream": True},
                         {**base_config, **config})


def print_answer(stream: ls.Stream) -> None:
    """Handler: consume the stream, print as it comes, and report the end or the error."""
    try:
        with stream:
            for chunk in stream:
                print(ls.extract_content(chunk) or "", end="", flush=True)
        print("\n[complete]")
    except ls.LitestreamError as error:
        print(f"\n[failed] {ls.error_summary(error)}")


def read_first_words(stream: ls.Stream, count: int) -> str:
    """Stop early: take ``count`` content chunks, then let ``with`` close the stream."""
    words = []
    with stream:
        for chunk in stream:
            content = ls.extract_content(chunk)
            if content:
                words.append(content)
            if len(words) == count:
                break
    return "".join(words)


def main() -> None:
    replies = (
        {"text": "Each request gets its own stream, consumed by the handler."},
        {"text": "Only the first few words of this answer are read, then it is closed."},
        {"text": "This provider goes quiet after two words", "stall_after": 2},
    )
    with _setup.backend(*replies) as backend:
        target = backend.target()
        print("--- 1-3. the service returns a stream, the handler consumes it")
        print_answer(generate_response("Explain channels in one sentence.", target))

        print("--- 4. stop early; the stream is closed")
        early = generate_response("Write a long essay.", target)
        print(repr(read_first_words(early, 3)))
        print(f"stream closed: {early.closed}")

        if backend.offline:
            print("--- 5. an idle_timeout ends a stream that goes quiet")
            print_answer(generate_response("Hello?", target, idle_timeout=0.3))


if __name__ == "__main__":
    main()
