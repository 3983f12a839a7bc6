"""Mistral: OpenAI's wire format with Mistral's stricter request schema."""

from __future__ import annotations

import json

import pytest

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import get_provider
from litestream.providers.openai import OpenAIProvider

PROVIDER = "mistral"
mistral = get_provider("mistral")

MESSAGES = [{"role": "user", "content": "Bonjour"}]


def test_recorded_transcript_gives_expected_outcome(stream_case, check_transcript):
    check_transcript(stream_case)


def test_mistral_shares_the_openai_implementation():
    assert isinstance(mistral, OpenAIProvider)


def test_request_posts_to_mistral_chat_completions_with_bearer_key():
    request = mistral.build_request(
        "mistral-small-latest", {"messages": MESSAGES, "stream": True},
        CallOptions(api_key="mk-123456789")
    )
    assert request.url == "https://api.mistral.ai/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer mk-123456789"
    assert request.json["stream"] is True


def test_streaming_request_sends_no_stream_options_because_mistral_rejects_them():
    request = mistral.build_request(
        "m", {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}},
        CallOptions()
    )
    assert "stream_options" not in request.json


def test_openai_keys_are_renamed_to_mistral_ones():
    body = mistral.build_request(
        "m", {"messages": MESSAGES, "max_completion_tokens": 30, "seed": 7, "stop": ["\n"]},
        CallOptions()
    ).json
    assert body["max_tokens"] == 30
    assert "max_completion_tokens" not in body
    assert body["random_seed"] == 7
    assert "seed" not in body
    assert body["stop"] == ["\n"]


def test_messages_lose_none_values_names_and_reasoning_but_tool_messages_keep_name():
    messages = [
        {"role": "user", "content": "Hi", "name": "alice"},
        {
            "role": "assistant",
            "content": None,
            "reasoning_content": "thinking",
            "tool_calls": [
                {
                    "id": "D681PevKs",
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "D681PevKs", "name": "f", "content": "ok"},
    ]
    sent = mistral.build_request("m", {"messages": messages}, CallOptions()).json["messages"]
    assert sent[0] == {"role": "user", "content": "Hi"}
    assert sent[1] == {
        "role": "assistant",
        "tool_calls": [
            {"id": "D681PevKs", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    assert sent[2]["name"] == "f"


def test_model_length_finish_reason_reads_as_length(replay):
    from litestream.wire import Event

    payload = {
        "id": "x",
        "model": "mistral-small-latest",
        "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "model_length"}],
    }
    result = replay(PROVIDER, [Event(json.dumps(payload)), Event("[DONE]")])
    assert result.finish_reason == "length"


def test_thinking_content_parts_go_to_reasoning(replay):
    from litestream.wire import Event

    content = [
        {"type": "thinking", "thinking": [{"type": "text", "text": "Let me think."}]},
        {"type": "text", "text": "42"},
    ]
    payload = {
        "id": "x",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": "stop"}],
    }
    result = replay(PROVIDER, [Event(json.dumps(payload))])
    assert result.reasoning == "Let me think."
    assert result.content == "42"


def test_parser_survives_arbitrary_events(fuzz_parser):
    fuzz_parser(PROVIDER)


def test_422_validation_error_message_lists_the_details():
    body = json.dumps(
        {
            "object": "error",
            "message": {
                "detail": [
                    {
                        "type": "extra_forbidden",
                        "loc": ["body", "stream_options", "include_usage"],
                        "msg": "Extra inputs are not permitted",
                        "input": True,
                    }
                ]
            },
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    )
    error = mistral.parse_error(422, body, {}, "m")
    assert isinstance(error, errors.InvalidRequestError)
    assert error.message == "body.stream_options.include_usage: Extra inputs are not permitted"
    assert error.provider_code == "invalid_request_error"


@pytest.mark.parametrize(
    "body",
    [
        {"message": "Unauthorized", "request_id": "abc"},
        {"object": "error", "message": "Unauthorized", "type": "unauthorized", "code": "1000"},
        {"error": {"message": "Unauthorized", "type": "invalid_request_error"}},
    ],
)
def test_401_in_every_mistral_body_shape_is_authentication_error(body):
    error = mistral.parse_error(401, json.dumps(body), {}, "m")
    assert isinstance(error, errors.AuthenticationError)
    assert error.message == "Unauthorized"


def test_429_with_retry_after_is_rate_limit():
    body = json.dumps(
        {"object": "error", "message": "Requests rate limit exceeded", "type": "rate_limited"}
    )
    error = mistral.parse_error(429, body, {"Retry-After": "3"}, "m")
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == 3.0
