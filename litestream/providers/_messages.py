"""Reading OpenAI-style chat requests: the pieces every provider translates.

Each provider turns the same OpenAI request keys (messages, stop, tools,
tool_choice, tool-call arguments, image parts) into its own wire format.
The reading and checking of those keys lives here once, so a malformed
request fails the same way whatever the provider: a
:class:`~litestream.errors.ConfigurationError` naming the problem.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import attrs

from litestream import errors
from litestream.providers.base import join_text

_log = logging.getLogger("litestream.providers")

#: ``format`` of the reasoning parts each provider hands back (OpenRouter's names).
ANTHROPIC_REASONING = "anthropic-claude-v1"
GEMINI_REASONING = "google-gemini-v1"
RESPONSES_REASONING = "openai-responses-v1"

#: Roles an OpenAI chat request may use (``function`` is the legacy tool role).
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


@attrs.frozen
class FunctionTool:
    """An OpenAI function tool: its name, description and JSON-schema parameters."""

    name: str
    description: Optional[str] = None
    parameters: Optional[Mapping[str, Any]] = None


@attrs.frozen
class ToolChoice:
    """An OpenAI ``tool_choice``: ``mode`` is auto, none, required or function (with ``name``)."""

    mode: str
    name: Optional[str] = None


@attrs.frozen
class RequestedToolCall:
    """A tool call in an assistant message of the history, with arguments parsed to an object."""

    id: Optional[str]
    name: str
    arguments: Mapping[str, Any]


def message_problems(messages: Any) -> list[str]:
    """Return every problem of a chat request's ``messages`` (an empty list when they are fine).

    The one check of messages: :func:`read_messages` raises with it, and
    :func:`litestream.core.validate_request` reports it with the rest of
    the request's problems.
    """
    if not isinstance(messages, (list, tuple)) or not messages:
        return ["'messages' must be a non-empty list of {'role': ..., 'content': ...}"]
    problems = []
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping):
            problems.append(f"messages[{position}] is a {type(message).__name__}, not a dict")
            continue
        role = message.get("role")
        if role is None:
            problems.append(f"messages[{position}] has no 'role'")
        elif role not in ROLES:
            problems.append(f"messages[{position}] has an unknown role {role!r}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list, tuple)):
            problems.append(
                f"messages[{position}]['content'] must be a string or a list of parts, "
                f"not {type(content).__name__}"
            )
        if content is None and role in ("user", "system") and not message.get("tool_calls"):
            problems.append(f"messages[{position}] ({role}) has no 'content'")
    return problems


def read_messages(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Return the request's messages after checking them (see :func:`message_problems`).

    Raises:
        ConfigurationError: every problem :func:`message_problems` finds, in one message.
    """
    messages = request.get("messages")
    problems = message_problems(messages)
    if problems:
        raise errors.ConfigurationError("; ".join(problems))
    return list(messages)


def content_parts(content: Any, position: int) -> list[Mapping[str, Any]]:
    """Return message content as a list of OpenAI parts (a string becomes one text part).

    Raises:
        ConfigurationError: a part that is neither a string nor an object with a ``type``.
    """
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    parts = []
    for number, part in enumerate(content):
        if isinstance(part, str):
            parts.append({"type": "text", "text": part})
        elif isinstance(part, Mapping) and isinstance(part.get("type"), str):
            parts.append(part)
        else:
            raise errors.ConfigurationError(
                f"messages[{position}]['content'][{number}] must be a string or a part "
                "with a 'type'"
            )
    return parts


def convert_parts(
    message: Mapping[str, Any],
    position: int,
    text: Callable[[str], Mapping[str, Any]],
    image: Callable[[str], Mapping[str, Any]],
    other: Callable[[Mapping[str, Any], int], Mapping[str, Any]],
) -> list[Mapping[str, Any]]:
    """Return a message's content parts in a provider's shape; empty text parts are left out.

    ``text(string)`` converts a text part, ``image(url)`` an ``image_url``
    part, and ``other(part, position)`` any other part: it passes a native
    part through, or raises ConfigurationError for one the provider cannot take.
    """
    converted: list[Mapping[str, Any]] = []
    for part in content_parts(message.get("content"), position):
        kind = part["type"]
        if kind in ("text", "input_text"):
            string = part_text(part, position)
            if string:
                converted.append(text(string))
        elif kind == "image_url":
            converted.append(image(image_url_of(part, position)))
        else:
            converted.append(other(part, position))
    return converted


def merge_turn(turns: list[dict[str, Any]], role: str, items: list[Any], key: str) -> None:
    """Append ``items`` to ``turns`` as a ``role`` turn under ``key``; nothing when empty.

    When the last turn has the same role, ``items`` extend it instead:
    Anthropic and Gemini want user and assistant turns to alternate.
    """
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def part_text(part: Mapping[str, Any], position: int) -> str:
    """Return the text of a text part.

    Raises:
        ConfigurationError: the part's ``text`` is not a string.
    """
    text = part.get("text")
    if not isinstance(text, str):
        raise errors.ConfigurationError(f"messages[{position}] has a text part without text")
    return text


def text_of(message: Mapping[str, Any]) -> str:
    """Return the text of a message's content, joining text parts ("" when there is none)."""
    content = message.get("content")
    if content is None:
        return ""
    return join_text(content)


def system_text(messages: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """Return the text of the system and developer messages, joined by blank lines.

    None when there are none: Anthropic and Gemini take the system prompt
    outside the turns.
    """
    texts = [text_of(message) for message in messages if message["role"] in ("system", "developer")]
    return "\n\n".join(texts) if texts else None


def native_keys(request: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """Return the request's ``keys`` that are set (not None), to send unchanged."""
    return {key: request[key] for key in keys if request.get(key) is not None}


def sampling_options(
    request: Mapping[str, Any], names: Mapping[str, str], *, limit: str, stop: str
) -> dict[str, Any]:
    """Return the request's sampling options under a provider's own names.

    Each OpenAI key of ``names`` that is set goes under its native name; the
    output limit (:func:`max_output_tokens`) goes under ``limit`` and the
    stop sequences (:func:`stop_sequences`) under ``stop``. The one
    translation Gemini's ``generationConfig`` and Ollama's ``options`` share.
    """
    options = {native: request[key] for key, native in names.items()
               if request.get(key) is not None}
    output_limit = max_output_tokens(request)
    if output_limit is not None:
        options[limit] = output_limit
    sequences = stop_sequences(request)
    if sequences:
        options[stop] = sequences
    return options


def stop_sequences(request: Mapping[str, Any]) -> Optional[list[str]]:
    """Return ``stop`` as a list of strings (a single string becomes a list of one), or None.

    Raises:
        ConfigurationError: ``stop`` is neither a string nor a list of strings.
    """
    stop = request.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, (list, tuple)) and all(isinstance(item, str) for item in stop):
        return list(stop)
    raise errors.ConfigurationError("'stop' must be a string or a list of strings")


def max_output_tokens(request: Mapping[str, Any]) -> Optional[int]:
    """Return the output-token limit: ``max_completion_tokens``, else ``max_tokens``, else None."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise errors.ConfigurationError(f"{key!r} must be a positive integer")
            return value
    return None


def function_tools(request: Mapping[str, Any]) -> list[Union[FunctionTool, Mapping[str, Any]]]:
    """Return the request's tools: OpenAI function tools parsed, other objects as given.

    Objects that are not ``{"type": "function", "function": {...}}`` are
    returned unchanged so provider-native tools (Anthropic's web search,
    Gemini's ``googleSearch``) pass through.

    Raises:
        ConfigurationError: ``tools`` is not a list, an entry is not an
            object, or a function tool has no name.
    """
    tools = request.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, (list, tuple)):
        raise errors.ConfigurationError("'tools' must be a list of tool objects")
    parsed: list[Union[FunctionTool, Mapping[str, Any]]] = []
    for position, tool in enumerate(tools):
        if not isinstance(tool, Mapping):
            raise errors.ConfigurationError(f"tools[{position}] is not an object")
        if tool.get("type") != "function":
            parsed.append(tool)
            continue
        function = tool.get("function")
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise errors.ConfigurationError(f"tools[{position}] has no function name")
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise errors.ConfigurationError(f"tools[{position}] parameters must be an object")
        description = function.get("description")
        parsed.append(
            FunctionTool(
                name=function["name"],
                description=description if isinstance(description, str) else None,
                parameters=parameters,
            )
        )
    return parsed


def tool_choice(request: Mapping[str, Any]) -> Union[ToolChoice, Mapping[str, Any], None]:
    """Return the request's ``tool_choice`` parsed, or a provider-native object unchanged.

    Raises:
        ConfigurationError: an unknown string, or a function choice without a name.
    """
    choice = request.get("tool_choice")
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise errors.ConfigurationError(
                f"'tool_choice' must be 'auto', 'none', 'required' or a function, not {choice!r}"
            )
        return ToolChoice(choice)
    if isinstance(choice, Mapping):
        if choice.get("type") != "function":
            return choice
        function = choice.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return ToolChoice("function", function["name"])
        raise errors.ConfigurationError("'tool_choice' names no function")
    raise errors.ConfigurationError("'tool_choice' must be a string or an object")


def assistant_tool_calls(message: Mapping[str, Any], position: int) -> list[RequestedToolCall]:
    """Return the tool calls of an assistant message, arguments parsed to objects.

    Raises:
        ConfigurationError: ``tool_calls`` is not a list of function calls with
            a name, or arguments are not a JSON object.
    """
    calls = message.get("tool_calls")
    if not calls:
        return []
    if not isinstance(calls, (list, tuple)):
        raise errors.ConfigurationError(f"messages[{position}]['tool_calls'] must be a list")
    parsed = []
    for number, call in enumerate(calls):
        where = f"messages[{position}]['tool_calls'][{number}]"
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise errors.ConfigurationError(f"{where} has no function name")
        call_id = call.get("id")
        parsed.append(
            RequestedToolCall(
                id=call_id if isinstance(call_id, str) else None,
                name=function["name"],
                arguments=parse_arguments(function.get("arguments"), where),
            )
        )
    return parsed


def parse_arguments(arguments: Any, where: str) -> Mapping[str, Any]:
    """Return tool-call arguments as an object; JSON text is parsed, empty means ``{}``.

    Raises:
        ConfigurationError: the arguments are not a JSON object.
    """
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, Mapping):
        return arguments
    if isinstance(arguments, str):
        try:
            value = json.loads(arguments)
        except ValueError:
            raise errors.ConfigurationError(f"{where} arguments are not valid JSON") from None
        if isinstance(value, Mapping):
            return value
    raise errors.ConfigurationError(f"{where} arguments must be a JSON object")


def tool_names_by_id(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Map each tool-call id of the history's assistant messages to its function name.

    Gemini and Ollama name a tool result by function, where OpenAI names it by call id.
    """
    names = {}
    for position, message in enumerate(messages):
        if message.get("role") == "assistant":
            for call in assistant_tool_calls(message, position):
                if call.id:
                    names[call.id] = call.name
    return names


def tool_result_name(
    message: Mapping[str, Any], position: int, names_by_id: Mapping[str, str]
) -> str:
    """Return the function name a tool (or legacy function) message answers.

    Raises:
        ConfigurationError: neither ``name`` nor a known ``tool_call_id`` says.
    """
    name = message.get("name")
    if isinstance(name, str) and name:
        return name
    call_id = message.get("tool_call_id")
    if isinstance(call_id, str) and call_id in names_by_id:
        return names_by_id[call_id]
    raise errors.ConfigurationError(
        f"messages[{position}] is a tool result whose function is unknown: give 'name' or a "
        "'tool_call_id' of an earlier assistant tool call"
    )


def image_url_of(part: Mapping[str, Any], position: int) -> str:
    """Return the URL of an OpenAI ``image_url`` part (a data URL or http URL).

    Raises:
        ConfigurationError: the part has no URL.
    """
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    if not isinstance(url, str) or not url:
        raise errors.ConfigurationError(f"messages[{position}] has an image_url part without a URL")
    return url


def split_data_url(url: str) -> Optional[tuple[str, str]]:
    """Return ``(media_type, base64_data)`` of a base64 ``data:`` URL, or None for other URLs."""
    if not url.startswith("data:"):
        return None
    header, _, data = url[len("data:"):].partition(",")
    media_type, _, encoding = header.partition(";")
    if encoding != "base64":
        return None
    return media_type or "application/octet-stream", data


def reasoning_parts(
    message: Mapping[str, Any], position: int, reasoning_format: str
) -> list[Mapping[str, Any]]:
    """Return the ``reasoning_details`` of an assistant message that ``reasoning_format`` owns.

    Parts are kept in their order. Parts of another format (reasoning made
    by another provider) cannot be sent anywhere else, so they are dropped,
    with a debug log, never sent as garbage.

    Raises:
        ConfigurationError: ``reasoning_details`` is not a list of objects with a ``type``.
    """
    details = message.get("reasoning_details")
    if not details:
        return []
    if not isinstance(details, (list, tuple)):
        raise errors.ConfigurationError(
            f"messages[{position}]['reasoning_details'] must be a list"
        )
    kept = []
    for number, part in enumerate(details):
        if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
            raise errors.ConfigurationError(
                f"messages[{position}]['reasoning_details'][{number}] must be an object "
                "with a 'type'"
            )
        if part.get("format") == reasoning_format:
            kept.append(part)
        else:
            _log.debug(
                "dropping messages[%d]['reasoning_details'][%d]: format %r is not %r",
                position, number, part.get("format"), reasoning_format,
            )
    return kept


def without_reasoning_details(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return ``message`` without ``reasoning_details`` (logged at debug level when dropped).

    For providers that take OpenAI's message shape but have no use for
    another provider's opaque reasoning parts.
    """
    if "reasoning_details" not in message:
        return message
    _log.debug("dropping reasoning_details of an assistant message: not this provider's")
    return {key: value for key, value in message.items() if key != "reasoning_details"}
