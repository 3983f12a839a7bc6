"""Building Anthropic Messages API requests from OpenAI-style chat requests.

System messages become ``system``; tool calls become ``tool_use`` blocks,
preceded by the ``thinking`` (or ``redacted_thinking``) blocks, with their
signatures, that the history carries for them; tool results become
``tool_result`` blocks in a user turn; ``max_tokens`` is required.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence, Union

from litestream import errors
from litestream.providers import _messages

__all__ = ["DEFAULT_MAX_TOKENS", "build_body"]

#: ``max_tokens`` when the request sets none: Anthropic requires the field.
DEFAULT_MAX_TOKENS = 4096

# Request keys Anthropic accepts as they are; OpenAI-only keys are not sent
# because the API rejects unknown ones.
_NATIVE_KEYS = (
    "top_k",
    "metadata",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
)


def build_body(model: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """Return the Messages API body for an OpenAI-style chat request.

    Raises:
        ConfigurationError: a message, tool or tool choice Anthropic cannot express.
    """
    messages = _messages.read_messages(request)
    system = _messages.system_text(messages)
    body: dict[str, Any] = {
        "model": model,
        "messages": _convert_messages(messages),
        "max_tokens": _messages.max_output_tokens(request) or DEFAULT_MAX_TOKENS,
    }
    if system is not None:
        body["system"] = system
    if request.get("stream"):
        body["stream"] = True
    body.update(_messages.native_keys(request, ("temperature", "top_p")))
    stop = _messages.stop_sequences(request)
    if stop:
        body["stop_sequences"] = stop
    tools = [_convert_tool(tool) for tool in _messages.function_tools(request)]
    if tools:
        body["tools"] = tools
    choice = _convert_tool_choice(
        _messages.tool_choice(request), request.get("parallel_tool_calls")
    )
    if choice is not None:
        body["tool_choice"] = choice
    user = request.get("user")
    if isinstance(user, str) and "metadata" not in request:
        body["metadata"] = {"user_id": user}
    body.update(_messages.native_keys(request, _NATIVE_KEYS))
    return body


def _convert_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Return user/assistant turns of content blocks, consecutive same-role turns merged."""
    turns: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        role = message["role"]
        if role in ("system", "developer"):
            continue
        if role == "assistant":
            blocks = _assistant_blocks(message, position)
        elif role in ("tool", "function"):
            blocks = [_tool_result_block(message, position)]
            role = "user"
        else:
            blocks = _user_blocks(message, position)
        _messages.merge_turn(turns, role, blocks, "content")
    return turns


def _user_blocks(message: Mapping[str, Any], position: int) -> list[Mapping[str, Any]]:
    return _messages.convert_parts(
        message, position,
        text=lambda text: {"type": "text", "text": text},
        image=_image_block,
        other=lambda part, position: part,  # Anthropic-native blocks (image, document...)
    )


def _image_block(url: str) -> dict[str, Any]:
    data_url = _messages.split_data_url(url)
    if data_url is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = data_url
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _assistant_blocks(message: Mapping[str, Any], position: int) -> list[Mapping[str, Any]]:
    blocks = _thinking_blocks(message, position) + _user_blocks(message, position)
    for call in _messages.assistant_tool_calls(message, position):
        if not call.id:
            raise errors.ConfigurationError(
                f"messages[{position}] has a tool call without an 'id'; Anthropic needs one"
            )
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        )
    return blocks


def _thinking_blocks(message: Mapping[str, Any], position: int) -> list[Mapping[str, Any]]:
    """Return the thinking blocks of an earlier answer, first, exactly as Anthropic sent them.

    With extended thinking, a tool_use must be preceded by the thinking that
    led to it, signature included, or the API rejects the turn.
    """
    blocks: list[Mapping[str, Any]] = []
    for part in _messages.reasoning_parts(message, position, _messages.ANTHROPIC_REASONING):
        if part["type"] == "reasoning.text":
            block = {"type": "thinking", "thinking": part.get("text") or ""}
            if part.get("signature") is not None:
                block["signature"] = part["signature"]
            blocks.append(block)
        elif part["type"] == "reasoning.encrypted":
            blocks.append({"type": "redacted_thinking", "data": part.get("data") or ""})
    return blocks


def _tool_result_block(message: Mapping[str, Any], position: int) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise errors.ConfigurationError(
            f"messages[{position}] is a tool result without a 'tool_call_id'"
        )
    _messages.content_parts(message.get("content"), position)
    return {"type": "tool_result", "tool_use_id": call_id, "content": _messages.text_of(message)}


def _convert_tool(tool: Union[_messages.FunctionTool, Mapping[str, Any]]) -> Mapping[str, Any]:
    if not isinstance(tool, _messages.FunctionTool):
        return tool  # an Anthropic-native tool, such as web search
    converted: dict[str, Any] = {
        "name": tool.name,
        "input_schema": tool.parameters or {"type": "object", "properties": {}},
    }
    if tool.description:
        converted["description"] = tool.description
    return converted


def _convert_tool_choice(
    choice: Union[_messages.ToolChoice, Mapping[str, Any], None], parallel: Any
) -> Optional[Mapping[str, Any]]:
    if choice is None:
        converted: Optional[dict[str, Any]] = {"type": "auto"} if parallel is False else None
    elif isinstance(choice, _messages.ToolChoice):
        if choice.mode == "function":
            converted = {"type": "tool", "name": choice.name}
        else:
            converted = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice.mode]}
    else:
        return choice  # already Anthropic's {"type": "auto" | "any" | "tool" | "none"}
    if converted is not None and parallel is False and converted["type"] != "none":
        converted["disable_parallel_tool_use"] = True
    return converted

