"""Collect a whole stream into one Response: text, tool calls, usage, finish reason.

    python examples/collect.py

``collect_stream`` reads every chunk, joins the content, assembles tool-call
fragments into whole calls, keeps the usage and the finish reason, and
closes the stream.
"""

from __future__ import annotations

import _setup

import litestream as ls


def get_complete_streaming_response(question: str, provider: str, model: str,
                                    config: dict) -> ls.Response:
    """Stream the answer to ``question`` and return it whole."""
    stream = ls.completion(provider, model,
                           {"messages": [{"role": "user", "content": question}], "stream": True},
                           config)
    return ls.collect_stream(stream, timeout=60)


def main() -> None:
    reply = {"text": "AI is the study of machines that learn, reason and act.", "chunks": 6,
             "usage": {"prompt_tokens": 9, "completion_tokens": 12}}
    with _setup.backend(reply) as backend:
        response = get_complete_streaming_response("What is AI? One sentence.",
                                                   *backend.target())
    print(ls.extract_content(response))
    print(f"finish_reason: {response.finish_reason}")
    if response.usage is not None:
        print(f"total tokens: {response.usage.total_tokens}")


if __name__ == "__main__":
    main()
