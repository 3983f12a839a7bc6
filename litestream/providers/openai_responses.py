"""OpenAI's Responses API (``POST {api_base}/responses``), also served as Open Responses.

The request is built from the same OpenAI chat request as every other
provider: messages become ``input`` items (tool calls ``function_call``
items, tool results ``function_call_output`` items, the reasoning parts of
an earlier answer ``reasoning`` items placed before them), tools are
flattened to ``{"type": "function", "name", ...}``, ``max_tokens`` becomes
``max_output_tokens``, ``response_format`` becomes ``text.format`` and
``reasoning_effort`` becomes ``reasoning.effort`` (with an automatic
summary). When reasoning is asked for, the request also asks for the
reasoning's ``encrypted_content`` and, unless the caller set ``store``,
stores nothing: the reasoning then travels with the conversation, the way
stateless callers (and ``store: false``, as Zero Data Retention requires)
need it.

The stream's typed events are read by
:class:`~litestream.providers._responses_events.ResponsesStreamParser`; a
whole (non-streamed) response object is read here with the same item rules.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Mapping, Optional, Sequence, Union

from litestream import errors
from litestream.providers import _messages
from litestream.providers._responses_events import (
    ResponsesStreamParser,
    annotation_of,
    error_of_response,
    finish_reason_of,
    parse_usage,
    reasoning_parts_of,
)
from litestream.providers._wire import (
    as_dict,
    as_int,
    as_list,
    as_str,
    attribute_errors,
    error_from_body,
    in_band_error,
)
from litestream.providers.base import Provider
from litestream.types import Message, Response, ResponseChoice, ToolCall
from litestream.wire import HTTPRequest

__all__ = ["OpenAIResponsesProvider", "ResponsesStreamParser", "build_body"]

_log = logging.getLogger("litestream.providers")

#: Request keys the Responses API takes as they are.
_NATIVE_KEYS = (
    "temperature",
    "top_p",
    "top_logprobs",
    "parallel_tool_calls",
    "metadata",
    "store",
    "include",
    "instructions",
    "previous_response_id",
    "conversation",
    "service_tier",
    "truncation",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "max_tool_calls",
    "background",
    "prompt",
    "user",
)

#: Chat-completions keys with no Responses equivalent: left out, with a debug log.
_CHAT_ONLY_KEYS = (
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "stream_options",
    "modalities",
    "audio",
    "prediction",
    "web_search_options",
)

#: What the request asks for when the reasoning must come back on the next turn.
ENCRYPTED_REASONING = "reasoning.encrypted_content"


class OpenAIResponsesProvider(Provider):
    """OpenAI's Responses API, or any Open Responses server given as ``api_base``.

    Keys come from ``OPENAI_API_KEY`` and the base URL from
    ``OPENAI_BASE_URL``, as for ``openai``.
    """

    name = "openai_responses"
    default_api_base = "https://api.openai.com/v1"
    env_var = "OPENAI_API_KEY"
    base_url_env_var = "OPENAI_BASE_URL"
    default_model = "gpt-5-mini"

    def build_request(
        self, model: str, request: Mapping[str, Any], config: Mapping[str, Any]
    ) -> HTTPRequest:
        """Return the POST to ``/responses``; see :class:`Provider` and :func:`build_body`."""
        return self._request("/responses", build_body(model, request),
                             bool(request.get("stream")), config)

    def stream_parser(self, model: str) -> ResponsesStreamParser:
        """Return a parser for one Responses SSE stream."""
        return ResponsesStreamParser(self.name, model)

    def parse_response(self, body: Mapping[str, Any], model: str) -> Response:
        """Return the Response of a whole ``response`` object.

        Raises:
            LitestreamError: the response failed, or is incomplete for another
                reason than its output-token limit.
            ProtocolError: the body does not have the shape of a response.
        """
        with attribute_errors(self.name, model):
            data = as_dict(body, "response body")
            if data.get("object") != "response" and data.get("error") is not None:
                raise in_band_error(data, provider=self.name, model=model)
            error = error_of_response(data, provider=self.name, model=model)
            if error is not None:
                raise error
            message, called = _message_of(as_list(data.get("output"), "output"))
            return Response(
                id=as_str(data.get("id"), "id"),
                model=as_str(data.get("model"), "model") or model,
                provider=self.name,
                created=as_int(data.get("created_at"), "created_at"),
                choices=[ResponseChoice(message=message,
                                        finish_reason=finish_reason_of(data, called))],
                usage=parse_usage(data.get("usage")),
            )

    def parse_error(
        self, status_code: int, body: str, headers: Mapping[str, str], model: str
    ) -> errors.LitestreamError:
        """Return the typed error for OpenAI's ``{"error": {...}}`` or any body."""
        return error_from_body(status_code, body, headers, provider=self.name, model=model)


def _message_of(output: Sequence[Any]) -> tuple[Message, bool]:
    """Return the message of a response's ``output`` items, and whether it called tools."""
    texts: list[str] = []
    refusals: list[str] = []
    thoughts: list[str] = []
    annotations: list[Mapping[str, Any]] = []
    details: list[Mapping[str, Any]] = []
    calls: list[ToolCall] = []
    for raw_item in output:
        item = as_dict(raw_item, "output item")
        kind = item.get("type")
        if kind == "message":
            for raw_part in as_list(item.get("content"), "message content"):
                part = as_dict(raw_part, "content part")
                if part.get("type") == "output_text":
                    texts.append(as_str(part.get("text"), "text") or "")
                    annotations.extend(annotation_of(annotation) for annotation in
                                       as_list(part.get("annotations"), "annotations"))
                elif part.get("type") == "refusal":
                    refusals.append(as_str(part.get("refusal"), "refusal") or "")
        elif kind == "function_call":
            calls.append(ToolCall(
                id=as_str(item.get("call_id"), "call_id"),
                name=as_str(item.get("name"), "name") or "",
                arguments=as_str(item.get("arguments"), "arguments") or "",
            ))
        elif kind == "reasoning":
            parts = reasoning_parts_of(item, len(details))
            details.extend(parts)
            thoughts.extend(part.get("summary") or part.get("text") or "" for part in parts
                            if part["type"] != "reasoning.encrypted")
    message = Message(
        content="".join(texts) if texts else None,
        tool_calls=calls,
        reasoning="\n\n".join(thoughts) if thoughts else None,
        refusal="".join(refusals) if refusals else None,
        reasoning_details=details,
        annotations=annotations,
    )
    return message, bool(calls)


# ---------------------------------------------------------------------------
# Request building
# ---------------------------------------------------------------------------


def build_body(model: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """Return the Responses API body for an OpenAI-style chat request.

    Raises:
        ConfigurationError: a message, tool or option the Responses API cannot express
            (``stop``, ``n`` above 1).
    """
    messages = _messages.read_messages(request)
    if _messages.stop_sequences(request):
        raise errors.ConfigurationError("'stop' is not supported by the Responses API")
    if request.get("n") not in (None, 1):
        raise errors.ConfigurationError("the Responses API gives one answer: 'n' must be 1")
    body: dict[str, Any] = {"model": model, "input": _input_items(messages)}
    if request.get("stream"):
        body["stream"] = True
    body.update(_messages.native_keys(request, _NATIVE_KEYS))
    limit = _messages.max_output_tokens(request)
    if limit is not None:
        body["max_output_tokens"] = limit
    tools = [_convert_tool(tool) for tool in _messages.function_tools(request)]
    if tools:
        body["tools"] = tools
    choice = _convert_tool_choice(_messages.tool_choice(request))
    if choice is not None:
        body["tool_choice"] = choice
    text_format = _text_format(request.get("response_format"))
    if text_format is not None:
        body["text"] = {**as_dict(request.get("text"), "text"), "format": text_format}
    reasoning = _reasoning(request)
    if reasoning is not None:
        body["reasoning"] = reasoning
    if reasoning is not None or _has_reasoning_items(body["input"]):
        body.setdefault("store", False)
        include = list(body.get("include") or ())
        if ENCRYPTED_REASONING not in include:
            include.append(ENCRYPTED_REASONING)
        body["include"] = include
    dropped = [key for key in _CHAT_ONLY_KEYS if request.get(key) is not None]
    if dropped:
        _log.debug("the Responses API has no %s: left out", ", ".join(dropped))
    return body


def _reasoning(request: Mapping[str, Any]) -> Optional[Mapping[str, Any]]:
    native = request.get("reasoning")
    if isinstance(native, Mapping):
        return native
    effort = request.get("reasoning_effort")
    if effort is None:
        return None
    if not isinstance(effort, str):
        raise errors.ConfigurationError("'reasoning_effort' must be a string")
    return {"effort": effort, "summary": "auto"}


def _has_reasoning_items(items: Sequence[Mapping[str, Any]]) -> bool:
    return any(item.get("type") == "reasoning" for item in items)


def _input_items(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    items: list[Mapping[str, Any]] = []
    for position, message in enumerate(messages):
        role = message["role"]
        if role == "assistant":
            items.extend(_assistant_items(message, position))
        elif role in ("tool", "function"):
            items.append(_tool_output(message, position))
        elif role in ("system", "developer"):
            items.append({"role": role, "content": _messages.text_of(message)})
        else:
            content = message.get("content")
            if isinstance(content, str):
                items.append({"role": "user", "content": content})
            else:
                items.append({"role": "user", "content": _user_parts(message, position)})
    return items


def _user_parts(message: Mapping[str, Any], position: int) -> list[Mapping[str, Any]]:
    return _messages.convert_parts(
        message, position,
        text=lambda text: {"type": "input_text", "text": text},
        image=lambda url: {"type": "input_image", "image_url": url},
        other=lambda part, position: part,  # input_file, input_audio... as given
    )


def _assistant_items(message: Mapping[str, Any], position: int) -> list[Mapping[str, Any]]:
    """Return reasoning items, then the text, then the function calls of one assistant turn.

    A reasoning item must come right before the output it led to, so the
    reasoning parts go first, in their order.
    """
    items = reasoning_items(
        _messages.reasoning_parts(message, position, _messages.RESPONSES_REASONING)
    )
    text = _messages.text_of(message)
    if text:
        items.append({"role": "assistant", "content": text})
    _messages.assistant_tool_calls(message, position)  # checks their shape
    for number, call in enumerate(message.get("tool_calls") or ()):
        function = call["function"]
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise errors.ConfigurationError(
                f"messages[{position}]['tool_calls'][{number}] has no 'id'; "
                "the Responses API needs one"
            )
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments if arguments is not None else {})
        items.append({"type": "function_call", "call_id": call_id,
                      "name": function["name"], "arguments": arguments})
    return items


def reasoning_items(parts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return ``reasoning`` input items rebuilt from ``openai-responses-v1`` reasoning parts.

    Parts with the same ``id`` form one item: summaries in ``summary``,
    reasoning text in ``content``, the encrypted part in ``encrypted_content``,
    each exactly as received.
    """
    items: dict[Any, dict[str, Any]] = {}
    for part in parts:
        key = part.get("id")
        item = items.get(key)
        if item is None:
            item = items[key] = {"type": "reasoning", "summary": []}
            if key is not None:
                item["id"] = key
        kind = part["type"]
        if kind == "reasoning.summary":
            item["summary"].append({"type": "summary_text", "text": part.get("summary") or ""})
        elif kind == "reasoning.text":
            item.setdefault("content", []).append(
                {"type": "reasoning_text", "text": part.get("text") or ""})
        elif kind == "reasoning.encrypted":
            item["encrypted_content"] = part.get("data")
    return list(items.values())


def _tool_output(message: Mapping[str, Any], position: int) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise errors.ConfigurationError(
            f"messages[{position}] is a tool result without a 'tool_call_id'"
        )
    _messages.content_parts(message.get("content"), position)
    return {"type": "function_call_output", "call_id": call_id,
            "output": _messages.text_of(message)}


def _convert_tool(tool: Union[_messages.FunctionTool, Mapping[str, Any]]) -> Mapping[str, Any]:
    if not isinstance(tool, _messages.FunctionTool):
        return tool  # web_search, file_search, code_interpreter, mcp...: as given
    converted: dict[str, Any] = {
        "type": "function",
        "name": tool.name,
        "parameters": tool.parameters or {"type": "object", "properties": {}},
    }
    if tool.description:
        converted["description"] = tool.description
    return converted


def _convert_tool_choice(
    choice: Union[_messages.ToolChoice, Mapping[str, Any], None],
) -> Union[str, Mapping[str, Any], None]:
    if choice is None:
        return None
    if not isinstance(choice, _messages.ToolChoice):
        return choice  # already a Responses tool choice ({"type": "web_search"}...)
    if choice.mode == "function":
        return {"type": "function", "name": choice.name}
    return choice.mode


def _text_format(response_format: Any) -> Optional[Mapping[str, Any]]:
    """Return ``text.format`` for a chat ``response_format`` (None when there is none)."""
    if response_format is None:
        return None
    if not isinstance(response_format, Mapping):
        raise errors.ConfigurationError("'response_format' must be an object")
    kind = response_format.get("type")
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        schema = response_format.get("json_schema")
        if not isinstance(schema, Mapping) or not isinstance(schema.get("name"), str):
            raise errors.ConfigurationError("'response_format' json_schema needs a 'name'")
        return {"type": "json_schema", **schema}
    raise errors.ConfigurationError(f"unknown 'response_format' type {kind!r}")
