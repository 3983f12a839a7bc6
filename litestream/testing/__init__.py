"""Test doubles: a fake of six LLM providers on loopback, and a real small model.

:class:`FakeLLMServer` is a loopback HTTP server that speaks every
provider's wire format. Point litestream (or an official SDK, or a program
in any language) at it instead of the real API and script what it answers,
including the faults real providers produce: HTTP errors with
``Retry-After``, in-band error events, stalls with or without keepalives,
connections cut mid-event, malformed frames, replies that never come. It is
a real HTTP/1.1 server on ``127.0.0.1`` with an ephemeral port, one daemon
thread per connection (threads are named ``fakellm-...``).

Each provider is served at its real path, so the usual ``api_base`` works
(OpenAI-style paths only under ``/v1``, as the real APIs answer them):

=====================================  ===========================================
provider                               ``api_base``
=====================================  ===========================================
openai, mistral, openai_compatible     ``server.url + "/v1"``
openrouter                             ``server.url + "/api/v1"``
anthropic, gemini, ollama              ``server.url``
=====================================  ===========================================

Replies are taken in order from one FIFO queue, and encoded in the format of
whichever provider the request's path identifies; when the queue is empty the
server answers with a short default text. Every request is recorded.

From a shell, ``python -m litestream.testing`` starts one, prints each
provider's base URL and serves the default answer until Ctrl-C.

:class:`~litestream.testing.local.LocalModelServer` runs a real model
instead (llama.cpp serving SmolLM2, the ``real`` extra).

Example::

    import litestream
    from litestream.testing import FakeLLMServer

    with FakeLLMServer() as server:
        server.script(text="Hello there", chunks=2,
                      usage={"prompt_tokens": 5, "completion_tokens": 2})
        server.script(error_status=429, retry_after=3)
        stream = litestream.completion(
            "anthropic", "claude-3-5-haiku-latest",
            messages=[{"role": "user", "content": "Hi"}], stream=True,
            api_key="test", api_base=server.api_base("anthropic"))
        assert "".join(chunk.content or "" for chunk in stream) == "Hello there"
        assert server.last_request.json["model"] == "claude-3-5-haiku-latest"
        # The next request gets the queued 429, with its Retry-After header.

The package's modules, one job each: :mod:`~litestream.testing.server` (the
handle), :mod:`~litestream.testing.state` (what its threads share),
:mod:`~litestream.testing.handler` (HTTP), :mod:`~litestream.testing.replies`
(scripted and recorded replies), :mod:`~litestream.testing.encoders` (each
provider's wire format), :mod:`~litestream.testing.local` (the real model).
"""

from __future__ import annotations

from litestream.testing.local import LocalModelServer
from litestream.testing.replies import DEFAULT_TEXT
from litestream.testing.server import FakeLLMServer
from litestream.testing.state import RecordedRequest

__all__ = ["DEFAULT_TEXT", "FakeLLMServer", "LocalModelServer", "RecordedRequest"]
