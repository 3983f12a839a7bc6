"""Handle each kind of failure: setup errors, HTTP errors, and failures in mid-stream.

    python examples/error_handling.py

Errors raised before any I/O (unknown provider, missing key, malformed
request) are ``ConfigurationError``s from ``completion`` itself. Everything
the provider or the network does wrong arrives in order through the stream:
the chunks that came first, then the typed error, here given to ``on_error``.
Every error has ``category``, ``retryable``, ``retry_after`` and a one-line
``error_summary``.
"""

from __future__ import annotations

import _setup

import litestream as ls


def safe_stream(question: str, provider: str, model: str, config: dict) -> None:
    """Stream an answer, reporting any failure instead of raising it."""
    try:
        stream = ls.completion(provider, model,
                               {"messages": [{"role": "user", "content": question}],
                                "stream": True},
                               config)
    except ls.errors.ConfigurationError as error:
        print(f"Setup error: {error}")
        return

    def on_error(error: BaseException) -> None:
        if ls.is_litestream_error(error):
            print(f"\nLitestream error: {ls.error_summary(error)}")
            print(f"  category={error.category} retryable={ls.is_retryable(error)} "
                  f"partial_content={error.partial_content!r}")
        else:
            print(f"\nUnknown error: {error!r}")

    future = ls.consume_stream_with_callbacks(
        stream,
        lambda chunk: print(ls.extract_content(chunk) or "", end="", flush=True),
        lambda response: print("\nSuccess!"),
        on_error,
    )
    try:
        future.result(timeout=120)
    except ls.LitestreamError:
        pass  # on_error reported it


def main() -> None:
    replies = (
        {"error_status": 429, "retry_after": 2},
        {"error_status": 401},
        {"text": "This answer breaks off in the middle", "inband_error_after": 3},
        {"text": "And this one works."},
    )
    with _setup.backend(*replies) as backend:
        provider, model, config = backend.target()
        # completion() retries a 429 or a 5xx twice by default (max_retries=2);
        # no retries here, so that each failure is shown as it happens.
        config = {**config, "max_retries": 0}
        if backend.offline:
            print("--- a rate limit (HTTP 429 with Retry-After)")
            safe_stream("Hi", provider, model, config)
            print("--- a rejected key (HTTP 401)")
            safe_stream("Hi", provider, model, config)
            print("--- an error event in the middle of the stream")
            safe_stream("Hi", provider, model, config)
        else:
            print("--- a rejected key")
            safe_stream("Hi", provider, model, {**config, "api_key": "sk-not-a-real-key"})
        print("--- a setup error: an unknown provider, raised before any I/O")
        safe_stream("Hi", "no-such-provider", model, config)
        print("--- a malformed request: no messages")
        try:
            ls.completion(provider, model, {"messages": [], "stream": True}, config)
        except ls.errors.ConfigurationError as error:
            print(f"Setup error: {error}")
        print("--- and a stream that works")
        safe_stream("Hi", provider, model, config)


if __name__ == "__main__":
    main()
