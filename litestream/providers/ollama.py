"""Ollama's native chat API (``POST {api_base}/api/chat``).

Requests keep OpenAI's message roles, but sampling options go in
``options`` (``num_predict`` for the output limit), images are base64
strings in ``images``, tool-call arguments are objects rather than JSON
text, and tool results name their function with ``tool_name``.

Streams are NDJSON: one JSON object per line, each with a ``message``
fragment, the last with ``done: true``, ``done_reason`` and token counts.
Tool calls arrive whole. A failure mid-stream is a line ``{"error": "..."}``.
"""

from __future__ import annotations

import datetime
import json
import re
import uuid
from typing import Any, Mapping, Optional

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import _messages
from litestream.providers._wire import (
    as_dict,
    as_int,
    as_list,
    as_str,
    attribute_errors,
    error_from_body,
)
from litestream.providers.base import Provider, StreamParser
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

__all__ = ["OllamaProvider", "OllamaStreamParser"]

# OpenAI request keys and their names in Ollama's ``options``.
_OPTION_KEYS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}

# Ollama-native top-level request keys passed through unchanged.
_NATIVE_KEYS = ("format", "keep_alive", "think")

_TIMESTAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?")


class OllamaProvider(Provider):
    """A local or remote Ollama server; no API key needed (one is sent as Bearer if given)."""

    name = "ollama"
    default_api_base = "http://localhost:11434"
    env_var = None
    base_url_env_var = "OLLAMA_HOST"
    default_model = "llama3.2"
    requires_api_key = False
    framing = "ndjson"

    def build_request(
        self, model: str, request: Mapping[str, Any], options: CallOptions
    ) -> HTTPRequest:
        """Return the POST to ``/api/chat``; see :class:`Provider`."""
        return self._request(
            "/api/chat", build_body(model, request), bool(request.get("stream")), options
        )

    def stream_parser(self, model: str) -> OllamaStreamParser:
        """Return a parser for one NDJSON ``/api/chat`` stream."""
        return OllamaStreamParser(self.name, model)

    def parse_response(self, body: Mapping[str, Any], model: str) -> Response:
        """Return the Response of a ``stream: false`` ``/api/chat`` body."""
        with attribute_errors(self.name, model):
            data = as_dict(body, "response body")
            if data.get("error") is not None:
                raise _stream_error(data)
            message = as_dict(data.get("message"), "message")
            calls = [
                ToolCall(id=call_id, name=name or "", arguments=arguments)
                for call_id, name, arguments in _tool_calls(message)
            ]
            return Response(
                id=f"chatcmpl-{uuid.uuid4().hex}",
                model=as_str(data.get("model"), "model") or model,
                provider=self.name,
                created=_timestamp(data.get("created_at")),
                choices=[
                    ResponseChoice(
                        message=Message(
                            content=as_str(message.get("content"), "content"),
                            tool_calls=calls,
                            reasoning=as_str(message.get("thinking"), "thinking") or None,
                        ),
                        finish_reason=_finish_reason(data, bool(calls)),
                    )
                ],
                usage=_usage(data),
            )

    def parse_error(
        self, status_code: int, body: str, headers: Mapping[str, str], model: str
    ) -> errors.LitestreamError:
        """Return the typed error for ``{"error": "..."}`` (404 means the model is not pulled)."""
        return error_from_body(status_code, body, headers, provider=self.name, model=model)


# ---------------------------------------------------------------------------
# Request building
# ---------------------------------------------------------------------------


def build_body(model: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``/api/chat`` body for an OpenAI-style chat request.

    Raises:
        ConfigurationError: a message Ollama cannot express (an image given by http URL).
    """
    messages = _messages.read_messages(request)
    names_by_id = _messages.tool_names_by_id(messages)
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            _convert_message(message, position, names_by_id)
            for position, message in enumerate(messages)
        ],
        "stream": bool(request.get("stream")),
    }
    options = _messages.sampling_options(request, _OPTION_KEYS, limit="num_predict", stop="stop")
    native_options = request.get("options")
    if isinstance(native_options, Mapping):
        options.update(native_options)
    if options:
        body["options"] = options
    _messages.function_tools(request)
    if request.get("tools"):
        body["tools"] = list(request["tools"])  # Ollama takes OpenAI's function tools
    response_format = request.get("response_format")
    if isinstance(response_format, Mapping):
        schema = response_format.get("json_schema")
        if isinstance(schema, Mapping) and isinstance(schema.get("schema"), Mapping):
            body["format"] = schema["schema"]
        elif response_format.get("type") == "json_object":
            body["format"] = "json"
    body.update(_messages.native_keys(request, _NATIVE_KEYS))
    return body


def _convert_message(
    message: Mapping[str, Any], position: int, names_by_id: Mapping[str, str]
) -> dict[str, Any]:
    role = message["role"]
    converted: dict[str, Any] = {"role": "system" if role == "developer" else role}
    texts = []
    images = []
    for part in _messages.content_parts(message.get("content"), position):
        if part["type"] in ("text", "input_text"):
            texts.append(_messages.part_text(part, position))
        elif part["type"] == "image_url":
            data_url = _messages.split_data_url(_messages.image_url_of(part, position))
            if data_url is None:
                raise errors.ConfigurationError(
                    f"messages[{position}]: Ollama takes images only as base64 data: URLs"
                )
            images.append(data_url[1])
        else:
            raise errors.ConfigurationError(
                f"messages[{position}] has a {part['type']!r} part, which Ollama cannot take"
            )
    converted["content"] = "".join(texts)
    if images:
        converted["images"] = images
    if role in ("tool", "function"):
        converted["role"] = "tool"
        name = message.get("name") or names_by_id.get(str(message.get("tool_call_id")))
        if name:
            converted["tool_name"] = name
    calls = _messages.assistant_tool_calls(message, position) if role == "assistant" else []
    if calls:
        converted["tool_calls"] = [
            {"function": {"name": call.name, "arguments": dict(call.arguments)}}
            for call in calls
        ]
    return converted


# ---------------------------------------------------------------------------
# Responses and streams
# ---------------------------------------------------------------------------


def _tool_calls(message: Mapping[str, Any]) -> list[tuple[Optional[str], Optional[str], str]]:
    """Return ``(id, name, arguments_json)`` of each whole tool call of a message."""
    calls = []
    for raw_call in as_list(message.get("tool_calls"), "tool_calls"):
        call = as_dict(raw_call, "tool call")
        function = as_dict(call.get("function"), "tool call function")
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            text = arguments
        else:
            text = json.dumps(as_dict(arguments, "tool arguments"))
        calls.append(
            (
                as_str(call.get("id"), "tool id") or None,
                as_str(function.get("name"), "tool name"),
                text,
            )
        )
    return calls


def _finish_reason(data: Mapping[str, Any], called_tools: bool) -> Optional[str]:
    if data.get("done") is not True:
        return None
    reason = as_str(data.get("done_reason"), "done_reason")
    if reason == "length":
        return "length"
    return "tool_calls" if called_tools else "stop"


def _usage(data: Mapping[str, Any]) -> Optional[Usage]:
    prompt = as_int(data.get("prompt_eval_count"), "prompt_eval_count")
    completion = as_int(data.get("eval_count"), "eval_count")
    if prompt is None and completion is None:
        return None
    return Usage(prompt or 0, completion or 0)


def _timestamp(value: Any) -> Optional[int]:
    """Return the Unix time of Ollama's ``created_at`` (RFC 3339, nanosecond fractions)."""
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        return None
    zone = match.group(2) or "Z"
    text = match.group(1) + ("+00:00" if zone == "Z" else zone)
    try:
        return int(datetime.datetime.fromisoformat(text).timestamp())
    except (ValueError, OverflowError, OSError):
        return None  # an impossible date: the time is cosmetic, so do without


def _stream_error(data: Mapping[str, Any]) -> errors.LitestreamError:
    error = data.get("error")
    message = error if isinstance(error, str) else json.dumps(error, default=str)
    return errors.ProviderError(message, provider_code="error")


class OllamaStreamParser(StreamParser):
    """Turns ``/api/chat`` NDJSON lines into chunks.

    Tool calls arrive whole, with arguments as an object (sent on as JSON
    text); a turn that called tools finishes with ``tool_calls`` although
    Ollama reports ``done_reason: "stop"``. ``done`` becomes True at the
    ``done: true`` line, which also carries the token counts.
    """

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, model)
        self.response_id = f"chatcmpl-{uuid.uuid4().hex}"
        self._tool_calls_seen = 0
        self._role_sent = False
        #: The last ``created_at`` read, to the second and with its zone, and its Unix time.
        self._created_key: Optional[tuple[str, str]] = None

    def feed(self, event: Event) -> list[Chunk]:
        """Return the chunks of one line; raise ProviderError for an ``{"error": ...}`` line."""
        with attribute_errors(self.provider, self.model):
            if not event.data.strip():
                return []
            data = as_dict(self.load_json(event.data), "stream line")
            if data.get("error") is not None:
                raise _stream_error(data)
            self.response_model = as_str(data.get("model"), "model") or self.response_model
            self.created = self._timestamp(data.get("created_at")) or self.created
            return self._translate(data)

    def _timestamp(self, value: Any) -> Optional[int]:
        """:func:`_timestamp`, parsed once per second of the stream.

        Every line carries its own ``created_at``; they differ in the
        fraction of a second only, which the Unix time leaves out.
        """
        if not isinstance(value, str):
            return None
        head, dot, tail = value.strip().rpartition(".")
        key = (head, tail.lstrip("0123456789")) if dot and tail[:1].isdigit() else None
        if key is not None and key == self._created_key:
            return self.created
        created = _timestamp(value)
        self._created_key = key if created is not None else None
        return created

    def _translate(self, data: Mapping[str, Any]) -> list[Chunk]:
        message = as_dict(data.get("message"), "message")
        content = as_str(message.get("content"), "content")
        thinking = as_str(message.get("thinking"), "thinking")
        calls = []
        for call_id, name, arguments in _tool_calls(message):
            # Calls arrive whole; Ollama's own function.index restarts on every
            # line (and older versions omit it), so number them across the stream.
            calls.append(
                ToolCallDelta(
                    index=self._tool_calls_seen, id=call_id, name=name, arguments=arguments
                )
            )
            self._tool_calls_seen += 1
        finish_reason = _finish_reason(data, self._tool_calls_seen > 0)
        chunks = []
        if content and self._role_sent and not (thinking or calls or finish_reason):
            chunks.append(self.make_text_chunk(content))
        elif content or thinking or calls or finish_reason or not self._role_sent:
            role = None if self._role_sent else "assistant"
            self._role_sent = True
            delta = Delta(role=role, content=content, tool_calls=calls, reasoning=thinking or None)
            chunks.append(self.make_chunk(delta, finish_reason))
        if data.get("done") is True:
            self.done = True
            usage = _usage(data)
            if usage is not None:
                chunks.append(self.make_chunk(usage=usage))
        return chunks
