"""Building Gemini requests from OpenAI-style chat requests.

System messages become ``systemInstruction``; turns become ``contents`` with
roles ``user`` and ``model``; tool calls are ``functionCall`` parts (with
their ``thoughtSignature`` when the history carries one) and tool results
``functionResponse`` parts; sampling options go in ``generationConfig``.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from typing import Any, Mapping, Optional, Sequence, Union

from litestream import errors
from litestream.providers import _messages

__all__ = ["build_body"]

_log = logging.getLogger("litestream.providers")

# OpenAI request keys and where they go in generationConfig.
_GENERATION_KEYS = {
    "temperature": "temperature",
    "top_p": "topP",
    "top_k": "topK",
    "n": "candidateCount",
    "seed": "seed",
    "presence_penalty": "presencePenalty",
    "frequency_penalty": "frequencyPenalty",
}

# Gemini-native top-level request keys passed through unchanged.
_NATIVE_KEYS = ("safetySettings", "cachedContent", "labels")

# JSON-schema keywords Gemini's OpenAPI-subset ``parameters`` rejects.
_UNSUPPORTED_SCHEMA_KEYS = frozenset({"$schema", "additionalProperties", "strict", "$id"})


# ---------------------------------------------------------------------------
# Request building
# ---------------------------------------------------------------------------


def build_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """Return the ``GenerateContentRequest`` body for an OpenAI-style chat request.

    Raises:
        ConfigurationError: a message, tool or tool choice Gemini cannot express.
    """
    messages = _messages.read_messages(request)
    body: dict[str, Any] = {"contents": _convert_messages(messages)}
    system = _messages.system_text(messages)
    if system is not None:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    generation = _generation_config(request)
    if generation:
        body["generationConfig"] = generation
    tools = _convert_tools(_messages.function_tools(request))
    if tools:
        body["tools"] = tools
    tool_config = _tool_config(_messages.tool_choice(request))
    if tool_config is not None:
        body["toolConfig"] = tool_config
    body.update(_messages.native_keys(request, _NATIVE_KEYS))
    return body


def _generation_config(request: Mapping[str, Any]) -> dict[str, Any]:
    config = _messages.sampling_options(
        request, _GENERATION_KEYS, limit="maxOutputTokens", stop="stopSequences")
    response_format = request.get("response_format")
    if isinstance(response_format, Mapping):
        if response_format.get("type") in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
        schema = response_format.get("json_schema")
        if isinstance(schema, Mapping) and isinstance(schema.get("schema"), Mapping):
            config["responseJsonSchema"] = schema["schema"]
    native = request.get("generationConfig")
    if isinstance(native, Mapping):
        config.update(native)
    return config


def _convert_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return ``contents``: user/model turns of parts, consecutive same-role turns merged."""
    names_by_id = _messages.tool_names_by_id(messages)
    contents: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        role = message["role"]
        if role in ("system", "developer"):
            continue
        if role == "assistant":
            role, parts = "model", _model_parts(message, position)
        elif role in ("tool", "function"):
            role, parts = "user", [_function_response(message, position, names_by_id)]
        else:
            parts = _user_parts(message, position)
        _messages.merge_turn(contents, role, parts, "parts")
    return contents


def _user_parts(message: Mapping[str, Any], position: int) -> list[Mapping[str, Any]]:
    return _messages.convert_parts(
        message, position, text=lambda text: {"text": text}, image=_image_part, other=_refuse_part
    )


def _refuse_part(part: Mapping[str, Any], position: int) -> Mapping[str, Any]:
    raise errors.ConfigurationError(
        f"messages[{position}] has a {part['type']!r} part, which Gemini cannot take"
    )


def _image_part(url: str) -> dict[str, Any]:
    data_url = _messages.split_data_url(url)
    if data_url is not None:
        media_type, data = data_url
        return {"inlineData": {"mimeType": media_type, "data": data}}
    media_type = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/jpeg"
    return {"fileData": {"mimeType": media_type, "fileUri": url}}


def _model_parts(message: Mapping[str, Any], position: int) -> list[Mapping[str, Any]]:
    parts = _user_parts(message, position)
    for call in _messages.assistant_tool_calls(message, position):
        parts.append({"functionCall": {"name": call.name, "args": dict(call.arguments)}})
    return _with_thought_signatures(parts, message, position)


def _with_thought_signatures(
    parts: list[Mapping[str, Any]], message: Mapping[str, Any], position: int
) -> list[Mapping[str, Any]]:
    """Put each ``thoughtSignature`` of an earlier answer back on the part it came with.

    A signature that came with a function call goes on that call's part
    (found by ``tool_call_index``); Gemini rejects a function call of a
    thinking model without it. One that came with text goes on the first
    text part, or is dropped (debug log) when the turn has no text.
    """
    signatures = _messages.reasoning_parts(message, position, _messages.GEMINI_REASONING)
    if not signatures:
        return parts
    calls = [number for number, part in enumerate(parts) if "functionCall" in part]
    texts = [number for number, part in enumerate(parts) if "text" in part]
    placed = [dict(part) for part in parts]
    for detail in signatures:
        call_number = detail.get("tool_call_index")
        if isinstance(call_number, int) and 0 <= call_number < len(calls):
            placed[calls[call_number]]["thoughtSignature"] = detail.get("data")
        elif call_number is None and texts:
            placed[texts[0]].setdefault("thoughtSignature", detail.get("data"))
        else:
            _log.debug("dropping a thoughtSignature of messages[%d]: no part to carry it",
                       position)
    return placed


def _function_response(
    message: Mapping[str, Any], position: int, names_by_id: Mapping[str, str]
) -> dict[str, Any]:
    name = _messages.tool_result_name(message, position, names_by_id)
    _messages.content_parts(message.get("content"), position)
    text = _messages.text_of(message)
    # The response must be an object: a JSON object result is sent as is,
    # anything else is wrapped.
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    response = value if isinstance(value, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _convert_tools(
    tools: Sequence[Union[_messages.FunctionTool, Mapping[str, Any]]],
) -> list[Mapping[str, Any]]:
    declarations = []
    native = []
    for tool in tools:
        if not isinstance(tool, _messages.FunctionTool):
            native.append(tool)  # googleSearch, codeExecution, functionDeclarations...
            continue
        declaration: dict[str, Any] = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        parameters = _gemini_schema(tool.parameters) if tool.parameters else None
        if parameters and (parameters.get("properties") or parameters.get("type") != "object"):
            declaration["parameters"] = parameters
        declarations.append(declaration)
    converted: list[Mapping[str, Any]] = []
    if declarations:
        converted.append({"functionDeclarations": declarations})
    return converted + native


def _gemini_schema(schema: Any) -> Any:
    """Return a JSON schema without the keywords Gemini's schema subset rejects."""
    if isinstance(schema, list):
        return [_gemini_schema(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    cleaned: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _UNSUPPORTED_SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, Mapping):
            # Property names are the user's, never keywords: keep them all.
            cleaned[key] = {name: _gemini_schema(sub) for name, sub in value.items()}
        else:
            cleaned[key] = _gemini_schema(value)
    return cleaned


def _tool_config(
    choice: Union[_messages.ToolChoice, Mapping[str, Any], None],
) -> Optional[Mapping[str, Any]]:
    if choice is None:
        return None
    if not isinstance(choice, _messages.ToolChoice):
        return choice  # already Gemini's {"functionCallingConfig": ...}
    if choice.mode == "function":
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [choice.name]}}
    mode = {"auto": "AUTO", "required": "ANY", "none": "NONE"}[choice.mode]
    return {"functionCallingConfig": {"mode": mode}}

