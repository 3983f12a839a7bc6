"""Wire encoders for :class:`litestream.testing.FakeLLMServer` (private).

Each provider's real shapes, written out as bytes: streamed events (SSE or
NDJSON), whole-body JSON for non-streaming calls, HTTP error bodies and
in-band error events. The shapes follow recorded transcripts (see
``fixtures/streams``) and what the official SDKs parse: ``openai``,
``anthropic``, ``google-genai`` and ``ollama``.

Nothing here touches a socket: :func:`stream_events` returns a list of
:class:`Event` (with fault markers already placed) that the server writes.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Optional, Tuple
from urllib.parse import unquote

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


def _ndjson(data: Any) -> bytes:
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


def _status_info(status: int) -> tuple[str, Optional[str], str, str, str]:
    if status in _STATUS_INFO:
        return _STATUS_INFO[status]
    return _STATUS_INFO[500] if status >= 500 else _STATUS_INFO[400]


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------
# Dialects
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


class OpenAIWire(Wire):
    """OpenAI ``chat.completion.chunk`` SSE, ending with ``data: [DONE]``."""

    def _id(self, ctx: RequestContext) -> str:
        return f"chatcmpl-{ctx.id}"

    def _chunk(self, ctx: RequestContext, delta: dict[str, Any],
               finish_reason: Optional[str] = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self._id(ctx),
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": ctx.model,
            "system_fingerprint": "fp_fakellm",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish_reason}],
        }
        if ctx.include_usage:
            data["usage"] = None
        return data

    def _usage(self, spec: ReplySpec) -> dict[str, int]:
        return {
            "prompt_tokens": spec.prompt_tokens,
            "completion_tokens": spec.completion_tokens,
            "total_tokens": spec.prompt_tokens + spec.completion_tokens,
        }

    def _reasoning_delta(self, piece: str) -> dict[str, Any]:
        return {"reasoning_content": piece}

    def _tool_deltas(self, index: int, call: ToolSpec) -> list[dict[str, Any]]:
        first = {"index": index, "id": call.id or f"call_fake{index}", "type": "function",
                 "function": {"name": call.name, "arguments": ""}}
        deltas = [{"tool_calls": [first]}]
        for fragment in split_evenly(call.arguments, 3):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
        return deltas

    def _content_events(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:
        events = []
        for piece in spec.reasoning_chunks:
            events.append(Event(sse(self._chunk(ctx, self._reasoning_delta(piece))), CONTENT))
        for piece in spec.chunks:
            events.append(Event(sse(self._chunk(ctx, {"content": piece})), CONTENT))
        for index, call in enumerate(spec.tool_calls):
            for delta in self._tool_deltas(index, call):
                events.append(Event(sse(self._chunk(ctx, delta)), CONTENT))
        return events

    def _tail(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:
        events = [Event(sse(self._chunk(ctx, {}, spec.finish_reason)), TAIL)]
        if ctx.include_usage:
            usage_chunk = self._chunk(ctx, {})
            usage_chunk["choices"] = []
            usage_chunk["usage"] = self._usage(spec)
            events.append(Event(sse(usage_chunk), TAIL))
        return events

    def stream(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:  # noqa: D102
        head = self._chunk(ctx, {"role": "assistant", "content": "", "refusal": None})
        return [
            Event(sse(head), HEAD),
            *self._content_events(spec, ctx),
            *self._tail(spec, ctx),
            Event(b"data: [DONE]\n\n", DONE),
        ]

    def _message(self, spec: ReplySpec) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": spec.text or None,
                                   "refusal": None}
        if spec.tool_calls:
            message["tool_calls"] = [
                {"id": call.id or f"call_fake{i}", "type": "function",
                 "function": {"name": call.name, "arguments": call.arguments}}
                for i, call in enumerate(spec.tool_calls)
            ]
        if spec.reasoning_chunks:
            message["reasoning_content"] = spec.reasoning
        return message

    def body(self, spec: ReplySpec, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        return {
            "id": self._id(ctx),
            "object": "chat.completion",
            "created": ctx.created,
            "model": ctx.model,
            "system_fingerprint": "fp_fakellm",
            "choices": [{"index": 0, "message": self._message(spec), "logprobs": None,
                         "finish_reason": spec.finish_reason}],
            "usage": self._usage(spec),
        }

    def error_body(self, status: int, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        error_type, code, _, _, message = _status_info(status)
        return {"error": {"message": message, "type": error_type, "param": None, "code": code}}

    def inband_error(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return sse({"error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error"}}, compact=False)

    def extra_event(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return sse(self._chunk(ctx, {"content": "AFTER-DONE"}))


class MistralWire(OpenAIWire):
    """Mistral: OpenAI-shaped, but usage always rides on the finish chunk; tool calls whole."""

    def _id(self, ctx: RequestContext) -> str:
        return (ctx.id + "0" * 32)[:32]

    def _chunk(self, ctx: RequestContext, delta: dict[str, Any],
               finish_reason: Optional[str] = None) -> dict[str, Any]:
        return {
            "id": self._id(ctx),
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "model": ctx.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        }

    def _tool_deltas(self, index: int, call: ToolSpec) -> list[dict[str, Any]]:
        return [{"content": "", "tool_calls": [{
            "id": call.id or f"fake{index:05d}", "index": index,
            "function": {"name": call.name, "arguments": call.arguments}}]}]

    def _tail(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:
        finish = self._chunk(ctx, {"content": ""}, spec.finish_reason)
        finish["usage"] = {"prompt_tokens": spec.prompt_tokens,
                           "total_tokens": spec.prompt_tokens + spec.completion_tokens,
                           "completion_tokens": spec.completion_tokens}
        return [Event(sse(finish), TAIL)]

    def body(self, spec: ReplySpec, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        data = super().body(spec, ctx)
        del data["system_fingerprint"]
        message = data["choices"][0]["message"]
        message.pop("refusal", None)
        data["choices"][0].pop("logprobs", None)
        return data

    def error_body(self, status: int, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        error_type, _, _, _, message = _status_info(status)
        return {"object": "error", "message": message, "type": error_type, "param": None,
                "code": str(status)}


class OpenRouterWire(OpenAIWire):
    """OpenRouter: OpenAI-shaped with ``provider``/``native_finish_reason``; usage always sent."""

    keepalive_comment = b": OPENROUTER PROCESSING\n\n"
    content_type = "text/event-stream"

    def _id(self, ctx: RequestContext) -> str:
        return f"gen-{ctx.created}-{ctx.id}"

    def _chunk(self, ctx: RequestContext, delta: dict[str, Any],
               finish_reason: Optional[str] = None) -> dict[str, Any]:
        return {
            "id": self._id(ctx),
            "provider": "FakeLLM",
            "model": ctx.model,
            "object": "chat.completion.chunk",
            "created": ctx.created,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason,
                         "native_finish_reason": finish_reason, "logprobs": None}],
        }

    def _reasoning_delta(self, piece: str) -> dict[str, Any]:
        return {"role": "assistant", "content": "", "reasoning": piece}

    def _tail(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:
        delta = {"role": "assistant", "content": ""}
        with_usage = self._chunk(ctx, delta, spec.finish_reason)
        with_usage["usage"] = self._usage(spec)
        return [Event(sse(self._chunk(ctx, delta, spec.finish_reason)), TAIL),
                Event(sse(with_usage), TAIL)]

    def body(self, spec: ReplySpec, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        data = super().body(spec, ctx)
        data["provider"] = "FakeLLM"
        data["choices"][0]["native_finish_reason"] = spec.finish_reason
        return data

    def error_body(self, status: int, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        return {"error": {"code": status, "message": _status_info(status)[4], "metadata": {}}}

    def inband_error(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return sse({
            "id": self._id(ctx), "object": "chat.completion.chunk", "created": ctx.created,
            "model": ctx.model, "provider": "FakeLLM",
            "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        })


_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                   "content_filter": "refusal"}


class AnthropicWire(Wire):
    """Anthropic Messages SSE: message_start ... content blocks ... message_stop."""

    def _id(self, ctx: RequestContext) -> str:
        return f"msg_fake{ctx.id}"

    def _usage(self, spec: ReplySpec, output_tokens: int) -> dict[str, Any]:
        return {"input_tokens": spec.prompt_tokens, "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0, "output_tokens": output_tokens,
                "service_tier": "standard"}

    def _message(self, spec: ReplySpec, ctx: RequestContext, content: list[Any],
                 stop_reason: Optional[str], output_tokens: int) -> dict[str, Any]:
        return {"id": self._id(ctx), "type": "message", "role": "assistant",
                "model": ctx.model, "content": content, "stop_reason": stop_reason,
                "stop_sequence": None, "usage": self._usage(spec, output_tokens)}

    @staticmethod
    def _event(name: str, data: dict[str, Any], kind: str = OTHER) -> Event:
        return Event(sse(data, event=name), kind)

    def _block(self, index: int, block: dict[str, Any], deltas: list[dict[str, Any]],
               start_kind: str = OTHER) -> list[Event]:
        events = [self._event("content_block_start", {
            "type": "content_block_start", "index": index, "content_block": block}, start_kind)]
        for delta in deltas:
            kind = OTHER if delta.get("partial_json") == "" or "signature" in delta else CONTENT
            events.append(self._event("content_block_delta", {
                "type": "content_block_delta", "index": index, "delta": delta}, kind))
        events.append(self._event("content_block_stop",
                                  {"type": "content_block_stop", "index": index}))
        return events

    def stream(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:  # noqa: D102
        blocks: list[list[Event]] = []
        if spec.reasoning_chunks:
            deltas = [{"type": "thinking_delta", "thinking": p} for p in spec.reasoning_chunks]
            deltas.append({"type": "signature_delta", "signature": "ZmFrZWxsbS1zaWduYXR1cmU="})
            blocks.append(self._block(len(blocks),
                                      {"type": "thinking", "thinking": "", "signature": ""},
                                      deltas))
        if spec.chunks or not spec.tool_calls:
            deltas = [{"type": "text_delta", "text": p} for p in spec.chunks]
            blocks.append(self._block(len(blocks), {"type": "text", "text": ""}, deltas))
        for i, call in enumerate(spec.tool_calls):
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": fragment}
                       for fragment in split_evenly(call.arguments, 3)]
            block = {"type": "tool_use", "id": call.id or f"toolu_fake{i}", "name": call.name,
                     "input": {}}
            blocks.append(self._block(len(blocks), block, deltas, start_kind=CONTENT))
        start = self._message(spec, ctx, [], None, 1)
        events = [self._event("message_start", {"type": "message_start", "message": start}, HEAD)]
        for number, block_events in enumerate(blocks):
            events.extend(block_events[:1])
            if number == 0:
                events.append(Event(b'event: ping\ndata: {"type": "ping"}\n\n', HEAD))
            events.extend(block_events[1:])
        events.append(self._event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": _ANTHROPIC_STOP.get(spec.finish_reason, "end_turn"),
                      "stop_sequence": None},
            "usage": {"output_tokens": spec.completion_tokens}}, TAIL))
        events.append(self._event("message_stop", {"type": "message_stop"}, DONE))
        return events

    def body(self, spec: ReplySpec, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        content: list[dict[str, Any]] = []
        if spec.reasoning_chunks:
            content.append({"type": "thinking", "thinking": spec.reasoning,
                            "signature": "ZmFrZWxsbS1zaWduYXR1cmU="})
        if spec.chunks or not spec.tool_calls:
            content.append({"type": "text", "text": spec.text})
        for i, call in enumerate(spec.tool_calls):
            content.append({"type": "tool_use", "id": call.id or f"toolu_fake{i}",
                            "name": call.name, "input": call.arguments_object})
        stop = _ANTHROPIC_STOP.get(spec.finish_reason, "end_turn")
        return self._message(spec, ctx, content, stop, spec.completion_tokens)

    def error_body(self, status: int, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        _, _, error_type, _, message = _status_info(status)
        return {"type": "error", "error": {"type": error_type, "message": message},
                "request_id": f"req_fake{ctx.id}"}

    def inband_error(self, ctx: RequestContext) -> bytes:  # noqa: D102
        error = {"type": "overloaded_error", "message": "Overloaded"}
        return sse({"type": "error", "error": error}, event="error", compact=False)

    def malformed(self) -> bytes:  # noqa: D102
        return b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0,\n\n'

    def stall_keepalive(self) -> bytes:  # noqa: D102
        return b'event: ping\ndata: {"type": "ping"}\n\n'

    def extra_event(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return sse({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": "AFTER-DONE"}},
                   event="content_block_delta")


_GEMINI_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP",
                  "content_filter": "SAFETY"}


class GeminiWire(Wire):
    """Gemini ``streamGenerateContent?alt=sse``: CRLF-framed events, no terminator."""

    content_type = "text/event-stream"
    keepalive_comment = b": keepalive\r\n\r\n"

    def _usage(self, spec: ReplySpec, completion: int) -> dict[str, Any]:
        return {"promptTokenCount": spec.prompt_tokens, "candidatesTokenCount": completion,
                "totalTokenCount": spec.prompt_tokens + completion,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": spec.prompt_tokens}]}

    def _parts(self, spec: ReplySpec, whole: bool) -> list[dict[str, Any]]:
        reasoning = [spec.reasoning] if whole and spec.reasoning else spec.reasoning_chunks
        text = [spec.text] if whole and spec.text else spec.chunks
        parts: list[dict[str, Any]] = [{"text": piece, "thought": True} for piece in reasoning]
        parts += [{"text": piece} for piece in text]
        for call in spec.tool_calls:
            function_call: dict[str, Any] = {"name": call.name, "args": call.arguments_object}
            if call.id:
                function_call["id"] = call.id
            parts.append({"functionCall": function_call})
        return parts

    def _response(self, spec: ReplySpec, ctx: RequestContext, parts: list[dict[str, Any]],
                  finish: bool, completion: int) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            candidate["finishReason"] = _GEMINI_FINISH.get(spec.finish_reason, "STOP")
        candidate["index"] = 0
        return {"candidates": [candidate], "usageMetadata": self._usage(spec, completion),
                "modelVersion": ctx.model, "responseId": ctx.id}

    def _sse(self, data: dict[str, Any]) -> bytes:
        return sse(data, crlf=True, compact=False)

    def stream(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:  # noqa: D102
        parts = self._parts(spec, whole=False)
        if not parts:
            return [Event(self._sse(self._response(spec, ctx, [{"text": ""}], True,
                                                   spec.completion_tokens)), TAIL)]
        events = []
        for i, part in enumerate(parts):
            completion = spec.completion_tokens * (i + 1) // len(parts)
            response = self._response(spec, ctx, [part], i == len(parts) - 1, completion)
            events.append(Event(self._sse(response), CONTENT))
        return events

    def body(self, spec: ReplySpec, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        return self._response(spec, ctx, self._parts(spec, whole=True), True,
                              spec.completion_tokens)

    def error_body(self, status: int, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        _, _, _, google_status, message = _status_info(status)
        return {"error": {"code": status, "message": message, "status": google_status}}

    def inband_error(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return self._sse({"error": {"code": 500, "message": "An internal error has occurred.",
                                    "status": "INTERNAL"}})

    def malformed(self) -> bytes:  # noqa: D102
        return b'data: {"candidates": [{"content": \r\n\r\n'

    def extra_event(self, ctx: RequestContext) -> bytes:  # noqa: D102
        spec = ReplySpec(chunks=("AFTER-DONE",))
        return self._sse(self._response(spec, ctx, [{"text": "AFTER-DONE"}], False, 1))


class OllamaWire(Wire):
    """Ollama ``/api/chat`` NDJSON: one message object per line, then a ``done`` line."""

    content_type = "application/x-ndjson"
    keepalive_comment = b""

    def _line(self, ctx: RequestContext, message: dict[str, Any]) -> dict[str, Any]:
        return {"model": ctx.model, "created_at": _now_iso(),
                "message": {"role": "assistant", "content": "", **message}, "done": False}

    def _tool_call(self, index: int, call: ToolSpec) -> dict[str, Any]:
        data: dict[str, Any] = {"function": {"index": index, "name": call.name,
                                             "arguments": call.arguments_object}}
        if call.id:
            data["id"] = call.id
        return data

    def _done(self, spec: ReplySpec, ctx: RequestContext,
              message: dict[str, Any]) -> dict[str, Any]:
        data = self._line(ctx, message)
        data.update(done=True,
                    done_reason="length" if spec.finish_reason == "length" else "stop",
                    total_duration=1_000_000, load_duration=1_000,
                    prompt_eval_count=spec.prompt_tokens, prompt_eval_duration=100_000,
                    eval_count=spec.completion_tokens, eval_duration=800_000)
        return data

    def stream(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:  # noqa: D102
        events = [Event(_ndjson(self._line(ctx, {"thinking": p})), CONTENT)
                  for p in spec.reasoning_chunks]
        events += [Event(_ndjson(self._line(ctx, {"content": p})), CONTENT) for p in spec.chunks]
        events += [Event(_ndjson(self._line(ctx, {"tool_calls": [self._tool_call(i, call)]})),
                         CONTENT)
                   for i, call in enumerate(spec.tool_calls)]
        events.append(Event(_ndjson(self._done(spec, ctx, {})), DONE))
        return events

    def body(self, spec: ReplySpec, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        message: dict[str, Any] = {"content": spec.text}
        if spec.reasoning_chunks:
            message["thinking"] = spec.reasoning
        if spec.tool_calls:
            message["tool_calls"] = [self._tool_call(i, c) for i, c in enumerate(spec.tool_calls)]
        return self._done(spec, ctx, message)

    def error_body(self, status: int, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        if status == 404:
            return {"error": f'model "{ctx.model}" not found, try pulling it first'}
        return {"error": _status_info(status)[4]}

    def inband_error(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return _ndjson({"error": "an error was encountered while running the model"})

    def malformed(self) -> bytes:  # noqa: D102
        return b'{"model": "broken", "message": \n'

    def extra_event(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return _ndjson(self._line(ctx, {"content": "AFTER-DONE"}))


WIRES: dict[str, Wire] = {
    "openai": OpenAIWire(),
    "mistral": MistralWire(),
    "openrouter": OpenRouterWire(),
    "anthropic": AnthropicWire(),
    "gemini": GeminiWire(),
    "ollama": OllamaWire(),
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
    of Mistral's, OpenAI's otherwise.
    """
    if method != "POST":
        return None
    body = body if isinstance(body, dict) else {}
    model = str(body.get("model") or "")
    stream = bool(body.get("stream"))
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    if path == "/v1/chat/completions" or path == "/chat/completions":
        provider = "mistral" if _MISTRAL_MODEL.match(model) else "openai"
        return RequestContext(provider, model, stream, include_usage)
    if path in ("/v1/responses", "/responses"):
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
    if path in ("/v1/models", "/api/v1/models", "/models"):
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
