"""Stream an answer to the terminal, printing each piece as it arrives.

    python examples/streaming_cli.py "Explain machine learning"

The plain loop: iterate the stream, print what ``extract_content`` gives
(``None`` for metadata chunks such as the role or the finish reason), and
flush so the text shows up at once.
"""

from __future__ import annotations

import sys

import _setup

import litestream as ls


def ask_streaming(question: str, provider: str, model: str, config: dict) -> str:
    """Print the answer to ``question`` as it streams in; return the whole text."""
    stream = ls.completion(provider, model,
                           {"messages": [{"role": "user", "content": question}], "stream": True},
                           config)
    print("Assistant:")
    pieces = []
    with stream:  # closes the stream (and its connection) however the loop ends
        for chunk in stream:
            content = ls.extract_content(chunk)
            if content:
                print(content, end="", flush=True)
                pieces.append(content)
    print()
    return "".join(pieces)


def main() -> None:
    question = " ".join(sys.argv[1:]) or "Explain machine learning in two sentences."
    reply = {"text": "Machine learning finds patterns in data and uses them to make "
                     "predictions.", "delay": 0.01}
    with _setup.backend(reply) as backend:
        ask_streaming(question, *backend.target())


if __name__ == "__main__":
    main()
