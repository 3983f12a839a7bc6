"""Gemini ``streamGenerateContent?alt=sse``: CRLF-framed events, no terminator."""

from __future__ import annotations

from typing import Any

from litestream.testing.encoders.base import (
    CONTENT,
    TAIL,
    Event,
    ReplySpec,
    RequestContext,
    Wire,
    sse,
    status_info,
)

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
        _, _, _, google_status, message = status_info(status)
        return {"error": {"code": status, "message": message, "status": google_status}}

    def inband_error(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return self._sse({"error": {"code": 500, "message": "An internal error has occurred.",
                                    "status": "INTERNAL"}})

    def malformed(self) -> bytes:  # noqa: D102
        return b'data: {"candidates": [{"content": \r\n\r\n'

    def extra_event(self, ctx: RequestContext) -> bytes:  # noqa: D102
        spec = ReplySpec(chunks=("AFTER-DONE",))
        return self._sse(self._response(spec, ctx, [{"text": "AFTER-DONE"}], False, 1))
