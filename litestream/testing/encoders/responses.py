"""FakeLLMServer's Responses API dialect (``POST /v1/responses``).

Encodes scripted answers as the Responses API streams them: typed SSE
events (``response.created`` ... ``response.output_text.delta`` ...
``response.completed``), each named by an ``event:`` line and numbered by
``sequence_number``. Reasoning is a ``reasoning`` item with a summary and
``encrypted_content``; function calls are ``function_call`` items whose
arguments stream in fragments; a refusal is a ``refusal`` content part; a
response can end ``completed``, ``incomplete`` or ``failed``, or be cut by an
``error`` event.

:class:`ResponsesWire` serves ``FakeLLMServer.script(...)``;
:func:`stream_body` serves ``FakeLLMServer.script_responses(...)``, which
scripts what the generic options cannot say.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Optional, Sequence

import attrs

from litestream.testing.encoders.base import (
    CONTENT,
    HEAD,
    OTHER,
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

__all__ = ["ResponsesScript", "ResponsesWire", "encrypted_reasoning", "stream_body"]


def encrypted_reasoning(reasoning: str) -> str:
    """Return the stand-in ``encrypted_content`` the fake sends for ``reasoning``."""
    return "gAAAAfake" + base64.b64encode(reasoning.encode("utf-8")).decode("ascii")


@attrs.frozen
class ResponsesScript:
    """One scripted Responses answer.

    ``status`` is ``completed``, ``incomplete`` (with ``incomplete_reason``)
    or ``failed`` (with ``error_code`` and ``error_message``);
    ``error_after`` cuts the stream after that many content events with an
    ``error`` event (then ``response.failed``).
    """

    model: str = "fake-model"
    text_pieces: Sequence[str] = ()
    reasoning_pieces: Sequence[str] = ()
    refusal_pieces: Sequence[str] = ()
    tool_calls: Sequence[ToolSpec] = ()
    encrypted_content: Optional[str] = None
    status: str = "completed"
    incomplete_reason: str = "max_output_tokens"
    error_code: str = "server_error"
    error_message: str = "The server had an error while processing your request."
    error_after: Optional[int] = None
    prompt_tokens: int = 10
    completion_tokens: Optional[int] = None
    reasoning_tokens: int = 0
    response_id: str = "resp_fake"
    created_at: int = attrs.field(factory=lambda: int(time.time()))


class _Encoder:
    """Numbers events and builds the response object of one script."""

    def __init__(self, script: ResponsesScript) -> None:
        self.script = script
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self.events: list[Event] = []

    def add(self, kind: str, data: dict[str, Any], event_kind: str = OTHER) -> None:
        payload = {"type": kind, **data, "sequence_number": self.sequence}
        self.sequence += 1
        self.events.append(Event(sse(payload, event=kind), event_kind))

    def response(self, status: str) -> dict[str, Any]:
        script = self.script
        usage = None
        if status in ("completed", "incomplete"):
            count = script.completion_tokens
            if count is None:
                count = sum(len(p) for p in (script.text_pieces, script.reasoning_pieces,
                                             script.refusal_pieces)) + len(script.tool_calls)
            usage = {"input_tokens": script.prompt_tokens,
                     "input_tokens_details": {"cached_tokens": 0},
                     "output_tokens": count,
                     "output_tokens_details": {"reasoning_tokens": script.reasoning_tokens},
                     "total_tokens": script.prompt_tokens + count}
        error = ({"code": script.error_code, "message": script.error_message}
                 if status == "failed" else None)
        incomplete = ({"reason": script.incomplete_reason} if status == "incomplete" else None)
        return {"id": script.response_id, "object": "response", "created_at": script.created_at,
                "status": status, "error": error, "incomplete_details": incomplete,
                "model": script.model, "output": list(self.output) if status != "in_progress"
                else [], "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
                "usage": usage}


def _events(script: ResponsesScript) -> list[Event]:
    encoder = _Encoder(script)
    add = encoder.add
    add("response.created", {"response": encoder.response("in_progress")}, HEAD)
    add("response.in_progress", {"response": encoder.response("in_progress")}, HEAD)
    _add_items(encoder)
    if script.error_after is not None:
        positions = [i for i, event in enumerate(encoder.events) if event.kind == CONTENT]
        cut = positions[script.error_after] if script.error_after < len(positions) else len(
            encoder.events)
        encoder.events = encoder.events[:cut]
        add("error", {"error": {"type": script.error_code, "code": script.error_code,
                                "message": script.error_message, "param": None}})
        add("response.failed", {"response": encoder.response("failed")}, TAIL)
        return encoder.events
    add(f"response.{script.status}", {"response": encoder.response(script.status)}, TAIL)
    return encoder.events


def _reasoning_item(encoder: _Encoder, index: int) -> None:
    script = encoder.script
    item_id = f"rs_fake{index}"
    summary_text = "".join(script.reasoning_pieces)
    encoder.add("response.output_item.added", {"output_index": index, "item": {
        "id": item_id, "type": "reasoning", "summary": []}})
    if script.reasoning_pieces:
        where = {"item_id": item_id, "output_index": index, "summary_index": 0}
        encoder.add("response.reasoning_summary_part.added",
                    {**where, "part": {"type": "summary_text", "text": ""}})
        for piece in script.reasoning_pieces:
            encoder.add("response.reasoning_summary_text.delta", {**where, "delta": piece},
                        CONTENT)
        encoder.add("response.reasoning_summary_text.done", {**where, "text": summary_text})
        encoder.add("response.reasoning_summary_part.done",
                    {**where, "part": {"type": "summary_text", "text": summary_text}})
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": (
        [{"type": "summary_text", "text": summary_text}] if script.reasoning_pieces else [])}
    encrypted = script.encrypted_content or encrypted_reasoning(summary_text)
    item["encrypted_content"] = encrypted
    encoder.add("response.output_item.done", {"output_index": index, "item": item})
    encoder.output.append(item)


def _message_item(encoder: _Encoder, index: int) -> None:
    script = encoder.script
    item_id = f"msg_fake{index}"
    encoder.add("response.output_item.added", {"output_index": index, "item": {
        "id": item_id, "type": "message", "status": "in_progress", "content": [],
        "role": "assistant"}})
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    if script.refusal_pieces:
        refusal = "".join(script.refusal_pieces)
        encoder.add("response.content_part.added",
                    {**where, "part": {"type": "refusal", "refusal": ""}})
        for piece in script.refusal_pieces:
            encoder.add("response.refusal.delta", {**where, "delta": piece}, CONTENT)
        encoder.add("response.refusal.done", {**where, "refusal": refusal})
        part: dict[str, Any] = {"type": "refusal", "refusal": refusal}
    else:
        text = "".join(script.text_pieces)
        encoder.add("response.content_part.added", {**where, "part": {
            "type": "output_text", "annotations": [], "logprobs": [], "text": ""}})
        for piece in script.text_pieces:
            encoder.add("response.output_text.delta", {**where, "delta": piece, "logprobs": []},
                        CONTENT)
        encoder.add("response.output_text.done", {**where, "text": text, "logprobs": []})
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    encoder.add("response.content_part.done", {**where, "part": part})
    status = "incomplete" if script.status == "incomplete" else "completed"
    item = {"id": item_id, "type": "message", "status": status, "content": [part],
            "role": "assistant"}
    encoder.add("response.output_item.done", {"output_index": index, "item": item})
    encoder.output.append(item)


def _function_call_item(encoder: _Encoder, index: int, number: int, call: ToolSpec) -> None:
    item_id = f"fc_fake{index}"
    call_id = call.id or f"call_fake{number}"
    head = {"id": item_id, "type": "function_call", "status": "in_progress", "arguments": "",
            "call_id": call_id, "name": call.name}
    encoder.add("response.output_item.added", {"output_index": index, "item": head}, CONTENT)
    for fragment in split_evenly(call.arguments, 3):
        encoder.add("response.function_call_arguments.delta",
                    {"item_id": item_id, "output_index": index, "delta": fragment}, CONTENT)
    encoder.add("response.function_call_arguments.done",
                {"item_id": item_id, "output_index": index, "arguments": call.arguments})
    item = {**head, "status": "completed", "arguments": call.arguments}
    encoder.add("response.output_item.done", {"output_index": index, "item": item})
    encoder.output.append(item)


def stream_body(script: ResponsesScript) -> bytes:
    """Return the whole SSE body of a scripted Responses stream."""
    return b"".join(event.data for event in _events(script))


def _script_of(spec: ReplySpec, ctx: RequestContext) -> ResponsesScript:
    status = {"length": "incomplete", "content_filter": "incomplete"}.get(spec.finish_reason,
                                                                          "completed")
    reason = "content_filter" if spec.finish_reason == "content_filter" else "max_output_tokens"
    return ResponsesScript(
        model=ctx.model, text_pieces=spec.chunks, reasoning_pieces=spec.reasoning_chunks,
        tool_calls=spec.tool_calls, status=status, incomplete_reason=reason,
        prompt_tokens=spec.prompt_tokens, completion_tokens=spec.completion_tokens,
        response_id=f"resp_{ctx.id}", created_at=ctx.created,
    )


class ResponsesWire(Wire):
    """The Responses API: typed SSE events, no ``[DONE]``."""

    def stream(self, spec: ReplySpec, ctx: RequestContext) -> list[Event]:  # noqa: D102
        return _events(_script_of(spec, ctx))

    def body(self, spec: ReplySpec, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        return _whole_response(_script_of(spec, ctx))

    def error_body(self, status: int, ctx: RequestContext) -> dict[str, Any]:  # noqa: D102
        error_type, code, _, _, message = status_info(status)
        return {"error": {"message": message, "type": error_type, "param": None, "code": code}}

    def inband_error(self, ctx: RequestContext) -> bytes:  # noqa: D102
        error = {"type": "server_error", "code": "server_error", "param": None,
                 "message": "The server had an error while processing your request."}
        return sse({"type": "error", "sequence_number": 999, "error": error}, event="error")

    def malformed(self) -> bytes:  # noqa: D102
        return b'event: response.output_text.delta\ndata: {"type": "response.output_text\n\n'

    def extra_event(self, ctx: RequestContext) -> bytes:  # noqa: D102
        return sse({"type": "response.output_text.delta", "item_id": "msg_fake_after",
                    "output_index": 9, "content_index": 0, "delta": "AFTER-DONE",
                    "sequence_number": 1000}, event="response.output_text.delta")


def _whole_response(script: ResponsesScript) -> dict[str, Any]:
    encoder = _Encoder(script)
    _add_items(encoder)
    return encoder.response(script.status)


def _add_items(encoder: _Encoder) -> None:
    """Stream the output items: reasoning, then the message, then the function calls."""
    script = encoder.script
    if script.reasoning_pieces or script.encrypted_content:
        _reasoning_item(encoder, len(encoder.output))
    if script.text_pieces or script.refusal_pieces or not script.tool_calls:
        _message_item(encoder, len(encoder.output))
    for number, call in enumerate(script.tool_calls):
        _function_call_item(encoder, len(encoder.output), number, call)


# FakeLLMServer speaks this dialect at /v1/responses (see encoders.route).
