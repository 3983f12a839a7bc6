"""Ollama ``/api/chat`` NDJSON: one message object per line, then a ``done`` line."""

from __future__ import annotations

from typing import Any

from litestream.testing.encoders.base import (
    CONTENT,
    DONE,
    Event,
    ReplySpec,
    RequestContext,
    ToolSpec,
    Wire,
    ndjson,
    now_iso,
    status_info,
)


class OllamaWire(Wire):
    """Ollama ``/api/chat`` NDJSON: one message object per line, then a ``done`` line."""

    content_type = "application/x-ndjson"
    keepalive_comment = b""

    def _line(self, ctx: RequestContext, message: dict[str, Any]) -> dict[str, Any]:
        return {"model": ctx.model, "created_at": now_iso(),
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
        events = [Event(ndjson(self._line(ctx, {"thinking": p})), CONTENT)
                  for p in spec.reasoning_chunks]
        events += [Event(ndjson(self._line(ctx, {"content": p})), CONTENT) for p in spec.chunks]
        events += [Event(ndjson(self._line(ctx, {"tool_calls": [self._tool_call(i, call)]})),
                         CONTENT)
                   for i, call in enumerate(spec.tool_calls)]
        events.append(Event(ndjson(self._done(spec, ctx, {})), DONE))
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
        return {"error": status_info(status)[4]}

    def inband_error(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return ndjson({"error": "an error was encountered while running the model"})

    def malformed(self) -> bytes:  # noqa: D102
        return b'{"model": "broken", "message": \n'

    def extra_event(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return ndjson(self._line(ctx, {"content": "AFTER-DONE"}))

