"""The provider-neutral half of FakeLLMServer's wire encoders.

What to say (:class:`ReplySpec`, :class:`ToolSpec`), which faults to inject
(:class:`StreamFaults`), what the request asked for (:class:`RequestContext`),
the :class:`Event` a dialect produces, and :class:`Wire`, the base every
provider's dialect derives from. Nothing here touches a socket.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Optional, Tuple

import attrs

# ---------------------------------------------------------------------------
# What to say and which faults to inject
# ---------------------------------------------------------------------------


@attrs.frozen
class ToolSpec:
    """One whole tool call to send: id, function name and JSON arguments text."""

    id: Optional[str]
    name: str
    arguments: str

    @property
    def arguments_object(self) -> Any:
        """The arguments parsed as JSON (``{}`` when they are not valid JSON)."""
        try:
            return json.loads(self.arguments) if self.arguments else {}
        except ValueError:
            return {}


@attrs.frozen
class ReplySpec:
    """The content of one scripted answer, provider-neutral."""

    chunks: Tuple[str, ...] = ()
    tool_calls: Tuple[ToolSpec, ...] = ()
    reasoning_chunks: Tuple[str, ...] = ()
    prompt_tokens: int = 10
    completion_tokens: int = 0
    finish_reason: str = "stop"

    @property
    def text(self) -> str:
        """The whole answer text."""
        return "".join(self.chunks)

    @property
    def reasoning(self) -> str:
        """The whole reasoning text."""
        return "".join(self.reasoning_chunks)


@attrs.frozen
class StreamFaults:
    """Faults placed among the events of a stream (counts are content chunks)."""

    stall_after: Optional[int] = None
    inband_error_after: Optional[int] = None
    malformed_after: Optional[int] = None
    keepalives: int = 0
    omit_done: bool = False
    events_after_done: bool = False


@attrs.frozen
class RequestContext:
    """What the request told us: which dialect to speak, the model, the stream options."""

    provider: str
    model: str
    stream: bool
    include_usage: bool = False
    id: str = attrs.field(factory=lambda: uuid.uuid4().hex[:24])
    created: int = attrs.field(factory=lambda: int(time.time()))


#: Event kinds. ``content`` events carry a piece of the answer and are what
#: fault counts (``stall_after=N``...) count; ``stall`` marks where to stop.
HEAD, CONTENT, OTHER, TAIL, DONE, STALL = "head", "content", "other", "tail", "done", "stall"


@attrs.frozen
class Event:
    """One wire event, ready to write."""

    data: bytes
    kind: str = OTHER


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def split_words(text: str) -> list[str]:
    """Split ``text`` into word pieces that keep their leading whitespace."""
    pieces = re.findall(r"\s*\S+", text)
    if not pieces:
        return [text] if text else []
    tail = text[len("".join(pieces)):]
    pieces[-1] += tail
    return pieces


def split_evenly(text: str, count: int) -> list[str]:
    """Split ``text`` into ``count`` contiguous, non-empty pieces (fewer if it is short)."""
    if not text:
        return []
    count = max(1, min(count, len(text)))
    size, extra = divmod(len(text), count)
    pieces, start = [], 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def _json(data: Any, compact: bool = True) -> str:
    if compact:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(data, ensure_ascii=False)


def sse(data: Any, event: Optional[str] = None, crlf: bool = False, compact: bool = True) -> bytes:
    """Encode one SSE event: optional ``event:`` line, one ``data:`` line, a blank line."""
    payload = data if isinstance(data, str) else _json(data, compact)
    end = "\r\n" if crlf else "\n"
    text = (f"event: {event}{end}" if event else "") + f"data: {payload}{end}{end}"
    return text.encode("utf-8")


def ndjson(data: Any) -> bytes:
    """Encode one NDJSON line (compact JSON and a newline)."""
    return (_json(data) + "\n").encode("utf-8")


# Per HTTP status: OpenAI type/code, Anthropic type, Google status, message.
_STATUS_INFO: dict[int, tuple[str, Optional[str], str, str, str]] = {
    400: ("invalid_request_error", None, "invalid_request_error", "INVALID_ARGUMENT",
          "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "authentication_error", "UNAUTHENTICATED",
          "Incorrect API key provided."),
    403: ("permission_denied", None, "permission_error", "PERMISSION_DENIED",
          "You do not have access to this model."),
    404: ("invalid_request_error", "model_not_found", "not_found_error", "NOT_FOUND",
          "The model does not exist or you do not have access to it."),
    413: ("invalid_request_error", None, "request_too_large", "INVALID_ARGUMENT",
          "Request exceeds the maximum allowed size."),
    422: ("invalid_request_error", None, "invalid_request_error", "INVALID_ARGUMENT",
          "Unprocessable request."),
    429: ("requests", "rate_limit_exceeded", "rate_limit_error", "RESOURCE_EXHAUSTED",
          "Rate limit reached. Please try again later."),
    500: ("server_error", None, "api_error", "INTERNAL",
          "The server had an error while processing your request."),
    502: ("server_error", None, "api_error", "UNAVAILABLE", "Bad gateway."),
    503: ("server_error", None, "overloaded_error", "UNAVAILABLE",
          "The service is temporarily overloaded."),
    504: ("server_error", None, "api_error", "DEADLINE_EXCEEDED", "Gateway timeout."),
    529: ("server_error", None, "overloaded_error", "UNAVAILABLE", "Overloaded"),
}


def status_info(status: int) -> tuple[str, Optional[str], str, str, str]:
    """Return (OpenAI type, OpenAI code, Anthropic type, Google status, message) for ``status``."""
    if status in _STATUS_INFO:
        return _STATUS_INFO[status]
    return _STATUS_INFO[500] if status >= 500 else _STATUS_INFO[400]


def now_iso() -> str:
    """Return the current UTC time as Ollama writes it (``2025-01-01T12:00:00.000000Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------
# The base of every dialect
# ---------------------------------------------------------------------------


class Wire:
    """Base of the dialects: SSE framing, comment keepalives."""

    content_type = "text/event-stream; charset=utf-8"
    keepalive_comment = b": keepalive\n\n"

    def stream(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:
        """Return every event of a complete, fault-free streamed answer."""
        raise NotImplementedError

    def body(self, spec: ReplySpec, ctx: RequestContext) -> dict[str, Any]:
        """Return the whole-body JSON of a non-streamed answer."""
        raise NotImplementedError

    def error_body(self, status: int, ctx: RequestContext) -> dict[str, Any]:
        """Return the provider's JSON body for an HTTP error ``status``."""
        raise NotImplementedError

    def inband_error(self, ctx: RequestContext) -> bytes:
        """Return the provider's in-band error event (sent inside a 200 stream)."""
        raise NotImplementedError

    def malformed(self) -> bytes:
        """Return an event whose data is not valid JSON."""
        return b'data: {"id": "broken", "choices": [\n\n'

    def stall_keepalive(self) -> bytes:
        """Return what the provider sends to keep an idle stream open."""
        return self.keepalive_comment

    def extra_event(self, ctx: RequestContext) -> bytes:
        """Return a content event to send after the terminator (a protocol violation)."""
        raise NotImplementedError


