"""OpenAI-compatible servers: OpenAI's format at a base URL the caller must give."""

from __future__ import annotations

import json

import pytest

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import get_provider
from litestream.providers.openai import OpenAIProvider
from litestream.wire import Event

PROVIDER = "openai_compatible"
compatible = get_provider("openai_compatible")

MESSAGES = [{"role": "user", "content": "Hi"}]


def test_openai_compatible_shares_the_openai_implementation():
    assert isinstance(compatible, OpenAIProvider)
    assert compatible.requires_api_key is False


def test_missing_api_base_raises_configuration_error():
    with pytest.raises(errors.ConfigurationError, match="api_base"):
        compatible.build_request("m", {"messages": MESSAGES}, CallOptions())


def test_request_without_key_has_no_authorization_header():
    request = compatible.build_request(
        "qwen2.5", {"messages": MESSAGES, "stream": True}, CallOptions(api_base="http://127.0.0.1:8000/v1")
    )
    assert request.url == "http://127.0.0.1:8000/v1/chat/completions"
    assert "Authorization" not in request.headers
    assert request.json["stream_options"] == {"include_usage": True}


def test_llama_cpp_style_stream_without_done_sentinel_finishes(replay):
    payloads = [
        {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1},
        },
    ]
    result = replay(PROVIDER, [Event(json.dumps(p)) for p in payloads])
    assert result.error is None
    assert result.finish_reason == "stop"
    assert result.usage == {"prompt_tokens": 2, "completion_tokens": 1}
    assert all(chunk.model == "test-model" for chunk in result.chunks)


def test_deepseek_reasoning_content_goes_to_reasoning(replay):
    payloads = [
        {
            "id": "d",
            "choices": [
                {"index": 0, "delta": {"reasoning_content": "First,"}, "finish_reason": None}
            ],
        },
        {"id": "d", "choices": [{"index": 0, "delta": {"content": "4"}, "finish_reason": "stop"}]},
    ]
    result = replay(PROVIDER, [Event(json.dumps(p)) for p in payloads] + [Event("[DONE]")])
    assert (result.reasoning, result.content) == ("First,", "4")


def test_tool_arguments_sent_as_object_are_turned_into_json_text(replay):
    call = {"id": "c", "function": {"name": "f", "arguments": {"x": 1}}}
    payload = {
        "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}]
    }
    result = replay(PROVIDER, [Event(json.dumps(payload))])
    assert json.loads(result.tool_calls[0]["arguments"]) == {"x": 1}
