"""Anthropic's Messages API (``POST {api_base}/v1/messages``).

Requests: system messages move to the top-level ``system``; every other
message becomes a user or assistant turn of content blocks (tool calls are
``tool_use`` blocks, tool results ``tool_result`` blocks in a user turn) and
consecutive turns of the same role are merged, as the API requires.
``max_tokens`` is mandatory, so it defaults to 4096.

Streams are SSE with named events: ``message_start`` (id, model, input
tokens), ``content_block_start`` / ``content_block_delta`` /
``content_block_stop`` for text, tool use and thinking blocks,
``message_delta`` (stop reason, output tokens), ``message_stop``, plus
``ping`` and ``error``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

from litestream import errors
from litestream._construct import make_delta
from litestream.options import CallOptions
from litestream.providers import _messages
from litestream.providers._anthropic_request import DEFAULT_MAX_TOKENS as DEFAULT_MAX_TOKENS
from litestream.providers._anthropic_request import build_body
from litestream.providers._wire import (
    as_dict,
    as_int,
    as_list,
    as_str,
    attribute_errors,
    error_from_body,
    in_band_error,
    load_error_json,
    retype_error,
)
from litestream.providers.base import Provider, StreamParser, whole_json_object
from litestream.types import (
    Chunk,
    Delta,
    Message,
    Response,
    ResponseChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from litestream.wire import Event, HTTPRequest

__all__ = ["AnthropicProvider", "AnthropicStreamParser", "normalize_stop_reason"]

#: The ``anthropic-version`` header sent with every request.
API_VERSION = "2023-06-01"

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}



def normalize_stop_reason(reason: Optional[str]) -> Optional[str]:
    """Return the normalized finish reason of an Anthropic ``stop_reason`` (unknown -> stop)."""
    if not reason:
        return None
    return _STOP_REASONS.get(reason, "stop")


class AnthropicProvider(Provider):
    """Anthropic Claude models through the Messages API."""

    name = "anthropic"
    default_api_base = "https://api.anthropic.com"
    env_var = "ANTHROPIC_API_KEY"
    base_url_env_var = "ANTHROPIC_BASE_URL"
    default_model = "claude-sonnet-4-20250514"

    def build_request(
        self, model: str, request: Mapping[str, Any], options: CallOptions
    ) -> HTTPRequest:
        """Return the POST to ``/v1/messages``; see :class:`Provider`."""
        return self._request(
            "/v1/messages", build_body(model, request), bool(request.get("stream")), options,
            {"anthropic-version": API_VERSION},
        )

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """Return ``x-api-key``: Anthropic's key header."""
        return {"x-api-key": api_key}

    def stream_parser(self, model: str) -> AnthropicStreamParser:
        """Return a parser for one Messages SSE stream."""
        return AnthropicStreamParser(self.name, model)

    def parse_response(self, body: Mapping[str, Any], model: str) -> Response:
        """Return the Response of a whole ``message`` object."""
        with attribute_errors(self.name, model):
            data = as_dict(body, "response body")
            if data.get("type") == "error":
                raise in_band_error(data, provider=self.name, model=model)
            texts: list[str] = []
            thoughts: list[str] = []
            calls = []
            served_by = as_str(data.get("model"), "model") or model
            details: list[Mapping[str, Any]] = []
            annotations: list[Mapping[str, Any]] = []
            for raw_block in as_list(data.get("content"), "content"):
                block = as_dict(raw_block, "content block")
                kind = block.get("type")
                detail = reasoning_detail(block, len(details))
                if detail is not None:
                    details.append(detail)
                annotations.extend(citation_annotation(citation) for citation in
                                   as_list(block.get("citations"), "citations"))
                if kind == "fallback":  # a refusal fallback: the ``to`` model answered
                    target = as_dict(block.get("to"), "fallback target")
                    served_by = as_str(target.get("model"), "model") or served_by
                elif kind == "text":
                    texts.append(as_str(block.get("text"), "text") or "")
                elif kind == "thinking":
                    thoughts.append(as_str(block.get("thinking"), "thinking") or "")
                elif kind == "tool_use":
                    calls.append(
                        ToolCall(
                            id=as_str(block.get("id"), "tool id"),
                            name=as_str(block.get("name"), "tool name") or "",
                            arguments=json.dumps(as_dict(block.get("input"), "tool input")),
                        )
                    )
            usage = as_dict(data.get("usage"), "usage")
            return Response(
                id=as_str(data.get("id"), "id"),
                model=served_by,
                provider=self.name,
                choices=[
                    ResponseChoice(
                        message=Message(
                            content="".join(texts) if texts else None,
                            tool_calls=calls,
                            reasoning="".join(thoughts) if thoughts else None,
                            reasoning_details=details,
                            annotations=annotations,
                        ),
                        finish_reason=normalize_stop_reason(
                            as_str(data.get("stop_reason"), "stop_reason")
                        ),
                    )
                ],
                usage=Usage(
                    as_int(usage.get("input_tokens"), "input_tokens") or 0,
                    as_int(usage.get("output_tokens"), "output_tokens") or 0,
                ) if usage else None,
            )

    def parse_error(
        self, status_code: int, body: str, headers: Mapping[str, str], model: str
    ) -> errors.LitestreamError:
        """Return the typed error for ``{"type": "error", "error": {"type", "message"}}``.

        A 529 is Anthropic's "overloaded": a retryable ProviderError whose
        ``provider_code`` is ``overloaded_error`` even when the body is not JSON.
        """
        error = error_from_body(status_code, body, headers, provider=self.name, model=model)
        if status_code == 529 and not error.provider_code:
            error.provider_code = "overloaded_error"
        if error.provider_code == "billing_error":
            error = retype_error(error, errors.QuotaExceededError)
        return error


def citation_annotation(raw: Any) -> dict[str, Any]:
    """Return an Anthropic citation in OpenAI's ``annotations`` shape.

    A web search result becomes a ``url_citation``; a document location
    keeps its own type as the annotation's type (``char_location``...).
    """
    citation = dict(as_dict(raw, "citation"))
    kind = as_str(citation.pop("type", None), "citation type") or "citation"
    if kind == "web_search_result_location":
        return {"type": "url_citation", "url_citation": citation}
    return {"type": kind, kind: citation}


def reasoning_detail(block: Mapping[str, Any], index: int) -> Optional[dict[str, Any]]:
    """Return the reasoning part of a ``thinking`` or ``redacted_thinking`` block (else None)."""
    kind = block.get("type")
    if kind == "thinking":
        return {"type": "reasoning.text", "text": as_str(block.get("thinking"), "thinking") or "",
                "signature": as_str(block.get("signature"), "signature") or None,
                "format": _messages.ANTHROPIC_REASONING, "index": index}
    if kind == "redacted_thinking":
        return {"type": "reasoning.encrypted", "data": as_str(block.get("data"), "data"),
                "format": _messages.ANTHROPIC_REASONING, "index": index}
    return None


# ---------------------------------------------------------------------------
# Stream parsing
# ---------------------------------------------------------------------------


class AnthropicStreamParser(StreamParser):
    """Turns Messages API events into chunks.

    Tool-call deltas are numbered by tool block (0 for the first ``tool_use``
    block, 1 for the next), not by Anthropic's content block index, which
    also counts text and thinking blocks. Usage is emitted once
    ``message_delta`` arrives: prompt tokens from ``message_start``,
    completion tokens from ``message_delta`` (its count is cumulative).
    ``done`` becomes True at ``message_stop``.
    """

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, model)
        self.prompt_tokens = 0
        self._tool_index_by_block: dict[int, int] = {}
        self._text_blocks: set[int] = set()
        self._reasoning_by_block: dict[int, int] = {}  # block index -> reasoning part index

    def feed(self, event: Event) -> list[Chunk]:
        """Return the chunks of one event; raise a typed error for an ``error`` event."""
        with attribute_errors(self.provider, self.model):
            if not event.data.strip() or event.unframed:
                return []  # lines outside SSE fields are ignored, as the SSE spec says
            if event.event == "error":
                raise in_band_error(
                    load_error_json(event.data), provider=self.provider, model=self.model
                )
            payload = as_dict(self.load_json(event.data), "stream event")
            kind = as_str(payload.get("type"), "event type") or event.event
            handler = self._handlers.get(kind or "")
            return handler(self, payload) if handler else []

    def feed_many(self, events: Sequence[Event], chunks: list[Chunk]) -> None:
        """Append the chunks of ``events`` to ``chunks``, up to the final event.

        As :meth:`StreamParser.feed_many`, with the most common event, a
        ``content_block_delta`` of ``text_delta``, taken the short way: it
        gives what :meth:`feed` gives for it (one token chunk, none for
        empty text); any other event goes through :meth:`feed`.
        """
        for event in events:
            if self.done:
                return
            data = event.data
            if event.event == "content_block_delta" and data[:1] == "{" \
                    and data[-1:] == "}" and not event.unframed:
                payload = whole_json_object(data)
                if payload is not None and payload.get("type") == "content_block_delta":
                    delta = payload.get("delta")
                    if type(delta) is dict and delta.get("type") == "text_delta":
                        text = delta.get("text")
                        if type(text) is str:
                            self.provider_event = self._decoded = payload
                            self._decoded_from = data
                            if text:
                                chunks.append(self.make_text_chunk(text))
                            continue
            chunks.extend(self.feed(event))

    def _message_start(self, payload: Mapping[str, Any]) -> list[Chunk]:
        message = as_dict(payload.get("message"), "message")
        self.response_id = as_str(message.get("id"), "message id") or self.response_id
        self.response_model = as_str(message.get("model"), "model") or self.response_model
        usage = as_dict(message.get("usage"), "usage")
        self.prompt_tokens = as_int(usage.get("input_tokens"), "input_tokens") or 0
        return [self.make_chunk(Delta(role="assistant"))]

    def _content_block_start(self, payload: Mapping[str, Any]) -> list[Chunk]:
        block_index = as_int(payload.get("index"), "block index") or 0
        block = as_dict(payload.get("content_block"), "content block")
        kind = block.get("type")
        if kind == "tool_use":
            tool_index = len(self._tool_index_by_block)
            self._tool_index_by_block[block_index] = tool_index
            call = ToolCallDelta(
                index=tool_index,
                id=as_str(block.get("id"), "tool id"),
                name=as_str(block.get("name"), "tool name"),
                arguments="",
            )
            return [self.make_chunk(Delta(tool_calls=(call,)))]
        if kind == "fallback":
            # The refusal fallback: the model named in ``to`` wrote what follows.
            target = as_dict(block.get("to"), "fallback target")
            self.response_model = as_str(target.get("model"), "model") or self.response_model
            return []
        if kind == "text":
            self._text_blocks.add(block_index)
            if as_str(block.get("text"), "text"):
                return [self.make_chunk(Delta(content=block["text"]))]
        if kind == "thinking" and as_str(block.get("thinking"), "thinking"):
            return [self.make_chunk(Delta(reasoning=block["thinking"]))]
        return []

    def _content_block_delta(self, payload: Mapping[str, Any]) -> list[Chunk]:
        delta = as_dict(payload.get("delta"), "delta")
        kind = delta.get("type")
        if kind == "text_delta":
            text = as_str(delta.get("text"), "text")
            return [self.make_text_chunk(text)] if text else []
        if kind == "thinking_delta":
            if payload.get("index") in self._text_blocks:
                return []  # misplaced on a text block: not reasoning (LiteLLM drops it too)
            thinking = as_str(delta.get("thinking"), "thinking")
            return [self.make_chunk(make_delta(reasoning=thinking))] if thinking else []
        if kind == "input_json_delta":
            block_index = as_int(payload.get("index"), "block index") or 0
            fragment = as_str(delta.get("partial_json"), "partial_json")
            tool_index = self._tool_index_by_block.get(block_index)
            if tool_index is None or not fragment:
                return []  # server tool blocks stream input too; they are not our calls
            call = ToolCallDelta(index=tool_index, arguments=fragment)
            return [self.make_chunk(Delta(tool_calls=(call,)))]
        return []  # signature_delta, citations_delta: not text

    def _message_delta(self, payload: Mapping[str, Any]) -> list[Chunk]:
        delta = as_dict(payload.get("delta"), "delta")
        usage = as_dict(payload.get("usage"), "usage")
        # Newer API versions repeat the (cumulative) input count here.
        prompt = as_int(usage.get("input_tokens"), "input_tokens")
        if prompt is not None:
            self.prompt_tokens = prompt
        completion = as_int(usage.get("output_tokens"), "output_tokens") or 0
        chunks = []
        reason = normalize_stop_reason(as_str(delta.get("stop_reason"), "stop_reason"))
        if reason is not None:
            chunks.append(self.make_chunk(finish_reason=reason))
        chunks.append(self.make_chunk(usage=Usage(self.prompt_tokens, completion)))
        return chunks

    def _message_stop(self, payload: Mapping[str, Any]) -> list[Chunk]:
        self.done = True
        return []

    def _error(self, payload: Mapping[str, Any]) -> list[Chunk]:
        raise in_band_error(payload, provider=self.provider, model=self.model)

    def _block_start_with_reasoning(self, payload: Mapping[str, Any]) -> list[Chunk]:
        """Also emit the reasoning part a thinking or redacted_thinking block opens."""
        block = as_dict(payload.get("content_block"), "content block")
        detail = reasoning_detail(block, len(self._reasoning_by_block))
        if detail is None:
            return self._content_block_start(payload)
        self._reasoning_by_block[as_int(payload.get("index"), "block index") or 0] = detail["index"]
        thinking = detail.get("text") or None
        return [self.make_chunk(Delta(reasoning=thinking, reasoning_details=(detail,)))]

    def _block_delta_with_reasoning(self, payload: Mapping[str, Any]) -> list[Chunk]:
        """Also carry thinking text and signatures as reasoning parts, and citations."""
        delta = as_dict(payload.get("delta"), "delta")
        kind = delta.get("type")
        if kind == "citations_delta":
            annotation = citation_annotation(delta.get("citation"))
            return [self.make_chunk(Delta(annotations=(annotation,)))]
        index = self._reasoning_by_block.get(as_int(payload.get("index"), "block index") or 0)
        if index is None or kind not in ("thinking_delta", "signature_delta"):
            return self._content_block_delta(payload)
        part: dict[str, Any] = {"type": "reasoning.text",
                                "format": _messages.ANTHROPIC_REASONING, "index": index}
        if kind == "signature_delta":
            part["signature"] = as_str(delta.get("signature"), "signature")
            return [self.make_chunk(Delta(reasoning_details=(part,)))]
        thinking = as_str(delta.get("thinking"), "thinking")
        if not thinking:
            return []
        part["text"] = thinking
        return [self.make_chunk(Delta(reasoning=thinking, reasoning_details=(part,)))]

    _handlers = {
        "message_start": _message_start,
        "content_block_start": _block_start_with_reasoning,
        "content_block_delta": _block_delta_with_reasoning,
        "message_delta": _message_delta,
        "message_stop": _message_stop,
        "error": _error,
    }
