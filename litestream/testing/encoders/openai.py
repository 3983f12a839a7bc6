"""OpenAI-shaped dialects: OpenAI ``chat.completion.chunk`` SSE, Mistral and OpenRouter."""

from __future__ import annotations

from typing import Any, Optional

from litestream.testing.encoders.base import (
    CONTENT,
    DONE,
    HEAD,
    TAIL,
    Event,
    ReplySpec,
    RequestContext,
    ToolSpec,
    Wire,
    split_evenly,
    sse,
    status_info,
)


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
        error_type, code, _, _, message = status_info(status)
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
        error_type, _, _, _, message = status_info(status)
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
        return {"error": {"code": status, "message": status_info(status)[4], "metadata": {}}}

    def inband_error(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return sse({
            "id": self._id(ctx), "object": "chat.completion.chunk", "created": ctx.created,
            "model": ctx.model, "provider": "FakeLLM",
            "error": {"code": "server_error", "message": "Provider disconnected unexpectedly"},
            "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
        })
