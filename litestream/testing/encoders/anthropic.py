"""Anthropic Messages SSE: ``message_start``, content blocks, ``message_stop``."""

from __future__ import annotations

from typing import Any, Optional

from litestream.testing.encoders.base import (
    CONTENT,
    DONE,
    HEAD,
    OTHER,
    TAIL,
    Event,
    ReplySpec,
    RequestContext,
    Wire,
    split_evenly,
    sse,
    status_info,
)

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
        _, _, error_type, _, message = status_info(status)
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
