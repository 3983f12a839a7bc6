"""Register named configurations with the router and stream from each by name.

    python examples/multiple_configs.py

``router.register(name, provider=, model=, config=)`` stores a deployment;
``router.completion(name, request)`` calls it, retrying transient failures
before the first chunk. Offline, "fast" speaks OpenAI's wire format and
"smart" Anthropic's: the chunks come out the same.
"""

from __future__ import annotations

import _setup

import litestream as ls
from litestream import router


def register_configs(backend: _setup.Backend) -> list[str]:
    """Register the "fast" and "smart" deployments; return their names."""
    fast = backend.target("openai", "gpt-4o-mini")
    smart = backend.target("anthropic", "claude-3-5-haiku-latest")
    router.register("fast", provider=fast.provider, model=fast.model, config=fast.config)
    router.register("smart", provider=smart.provider, model=smart.model, config=smart.config)
    return ["fast", "smart"]


def stream_from_multiple(question: str, names: list[str]) -> None:
    """Stream the answer of each named deployment in turn."""
    for name in names:
        print(f"=== {name} ===")
        stream = router.completion(name, {"messages": [{"role": "user", "content": question}],
                                          "stream": True})
        future = ls.consume_stream_with_callbacks(
            stream,
            lambda chunk: print(ls.extract_content(chunk) or "", end="", flush=True),
            lambda response: print(f"\n({response.provider}/{response.model})"),
            lambda error: print(f"\nError: {ls.error_summary(error)}"),
        )
        try:
            future.result(timeout=120)
        except ls.LitestreamError:
            pass  # reported by the error callback


def main() -> None:
    replies = (
        {"text": "Fast: a quick, short answer."},
        {"text": "Smart: a considered answer, from another wire format."},
    )
    with _setup.backend(*replies) as backend:
        stream_from_multiple("What is a channel?", register_configs(backend))


if __name__ == "__main__":
    main()
