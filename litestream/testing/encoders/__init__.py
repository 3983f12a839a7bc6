"""Wire encoders for :class:`~litestream.testing.FakeLLMServer`: each provider's real shapes.

Streamed events (SSE or NDJSON), whole-body JSON for non-streaming calls,
HTTP error bodies and in-band error events, one module per dialect. The
shapes follow recorded transcripts (``tests/fixtures/streams``) and what the
official SDKs parse: ``openai``, ``anthropic``, ``google-genai`` and ``ollama``.

This package also decides which dialect a request speaks (:func:`route`)
and places faults among a stream's events (:func:`stream_events`). Nothing
here touches a socket: the server writes the :class:`Event` list it gets.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import unquote

from litestream.testing.encoders.anthropic import AnthropicWire
from litestream.testing.encoders.base import (
    CONTENT,
    DONE,
    HEAD,
    OTHER,
    STALL,
    TAIL,
    Event,
    ReplySpec,
    RequestContext,
    StreamFaults,
    ToolSpec,
    Wire,
    split_evenly,
    split_words,
)
from litestream.testing.encoders.gemini import GeminiWire
from litestream.testing.encoders.ollama import OllamaWire
from litestream.testing.encoders.openai import MistralWire, OpenAIWire, OpenRouterWire
from litestream.testing.encoders.responses import ResponsesWire

__all__ = [
    "CONTENT", "DONE", "HEAD", "OTHER", "STALL", "TAIL", "WIRES", "Event", "ReplySpec",
    "RequestContext", "StreamFaults", "ToolSpec", "Wire", "content_type_for", "model_list",
    "route", "split_evenly", "split_words", "stream_events",
]

#: Every dialect by the provider name the server reports in ``RecordedRequest.provider``.
WIRES: dict[str, Wire] = {
    "openai": OpenAIWire(),
    "mistral": MistralWire(),
    "openrouter": OpenRouterWire(),
    "anthropic": AnthropicWire(),
    "gemini": GeminiWire(),
    "ollama": OllamaWire(),
    "openai_responses": ResponsesWire(),
}

# ---------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------

_MISTRAL_MODEL = re.compile(
    r"^(?:mistral|open-mistral|open-mixtral|codestral|ministral|pixtral|magistral|devstral)")
_GEMINI_PATH = re.compile(r"^/v1(?:beta|alpha)?/models/(?P<model>[^/:]+):(?P<method>\w+)$")


def route(method: str, path: str, body: Any) -> Optional[RequestContext]:
    """Identify a chat request by its path; ``None`` when the path is not one.

    ``/v1/chat/completions`` speaks Mistral's dialect when the model is one
    of Mistral's, OpenAI's otherwise. OpenAI-style paths are served only
    under ``/v1``, as the real APIs do: a client whose base URL lacks the
    ``/v1`` gets a 404 here too, not an answer it would not get in production.
    """
    if method != "POST":
        return None
    body = body if isinstance(body, dict) else {}
    model = str(body.get("model") or "")
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    if path == "/v1/chat/completions":
        provider = "mistral" if _MISTRAL_MODEL.match(model) else "openai"
        return RequestContext(provider, model, stream, include_usage)
    if path == "/v1/responses":
        return RequestContext("openai_responses", model, stream)
    if path == "/api/v1/chat/completions":
        return RequestContext("openrouter", model, stream, include_usage)
    if path == "/v1/messages":
        return RequestContext("anthropic", model, stream)
    if path == "/api/chat":
        return RequestContext("ollama", model, body.get("stream", True) is not False)
    match = _GEMINI_PATH.match(path)
    if match and match["method"] in ("streamGenerateContent", "generateContent"):
        return RequestContext("gemini", unquote(match["model"]),
                              match["method"] == "streamGenerateContent")
    return None


def model_list(path: str) -> Optional[dict[str, Any]]:
    """Return the JSON answer to a GET model-list path, or ``None`` for another path."""
    names = ["fake-model"]
    if path in ("/v1/models", "/api/v1/models"):
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                            "owned_by": "fakellm"} for name in names]}
    if path == "/api/tags":
        return {"models": [{"name": name, "model": name, "size": 0} for name in names]}
    if path in ("/v1beta/models", "/v1/models/"):
        return {"models": [{"name": f"models/{name}", "displayName": name} for name in names]}
    return None


def content_type_for(provider: Optional[str]) -> str:
    """Return the content type a provider streams with (SSE unless Ollama)."""
    return WIRES[provider].content_type if provider in WIRES else "text/event-stream"


# ---------------------------------------------------------------------------
# Assembling a stream with its faults
# ---------------------------------------------------------------------------


def _fault_index(events: list[Event], after: int) -> int:
    """Index at which something placed "after ``after`` content chunks" goes."""
    positions = [i for i, event in enumerate(events) if event.kind == CONTENT]
    if after < len(positions):
        return positions[after]
    if positions:
        return positions[-1] + 1
    for i, event in enumerate(events):
        if event.kind in (TAIL, DONE):
            return i
    return len(events)


def stream_events(wire: Wire, spec: ReplySpec, ctx: RequestContext,
                  faults: StreamFaults) -> list[Event]:
    """Return the events of a streamed answer with ``faults`` applied, in order."""
    events = wire.stream(spec, ctx)
    if faults.omit_done:
        events = [event for event in events if event.kind != DONE]
    if faults.events_after_done:
        events.append(Event(wire.extra_event(ctx), OTHER))
    if faults.malformed_after is not None:
        index = _fault_index(events, faults.malformed_after)
        events.insert(index, Event(wire.malformed(), OTHER))
    if faults.inband_error_after is not None:
        index = _fault_index(events, faults.inband_error_after)
        events = events[:index] + [Event(wire.inband_error(ctx), OTHER)]
    if faults.stall_after is not None:
        index = _fault_index(events, faults.stall_after)
        events = events[:index] + [Event(b"", STALL)]
    if faults.keepalives and wire.keepalive_comment:
        events = [Event(wire.keepalive_comment, OTHER)] * faults.keepalives + events
    return events
