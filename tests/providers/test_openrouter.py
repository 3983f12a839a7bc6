"""OpenRouter: OpenAI's wire format with keepalives, reasoning and error chunks."""

from __future__ import annotations

import json

import pytest

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import get_provider
from litestream.providers.openai import OpenAIProvider
from litestream.wire import Event

PROVIDER = "openrouter"
openrouter = get_provider("openrouter")

MESSAGES = [{"role": "user", "content": "Hi"}]


def chunk(delta, finish_reason=None, **extra):
    return Event(
        json.dumps(
            {
                "id": "gen-1",
                "model": "anthropic/claude-3.5-sonnet",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                **extra,
            }
        )
    )


def test_recorded_transcript_gives_expected_outcome(stream_case, check_transcript):
    check_transcript(stream_case)


def test_openrouter_shares_the_openai_implementation():
    assert isinstance(openrouter, OpenAIProvider)


def test_request_posts_under_api_v1_with_usage_requested():
    request = openrouter.build_request(
        "openai/gpt-4o-mini",
        {"messages": MESSAGES, "stream": True, "reasoning": {"effort": "low"}},
        CallOptions(api_key="sk-or-v1-abcdefgh", headers={"X-Title": "litestream tests"}),
    )
    assert request.url == "https://openrouter.ai/api/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-or-v1-abcdefgh"
    assert request.headers["X-Title"] == "litestream tests"
    assert request.json["stream_options"] == {"include_usage": True}
    assert request.json["reasoning"] == {"effort": "low"}


def test_api_base_override_keeps_the_given_prefix():
    request = openrouter.build_request(
        "m", {"messages": MESSAGES}, CallOptions(api_base="http://127.0.0.1:5/api/v1")
    )
    assert request.url == "http://127.0.0.1:5/api/v1/chat/completions"


def test_reasoning_delta_field_goes_to_reasoning(replay):
    result = replay(
        PROVIDER,
        [
            chunk({"role": "assistant", "content": "", "reasoning": "Hmm."}),
            chunk({"role": "assistant", "content": "Yes"}, "stop"),
            Event("[DONE]"),
        ],
    )
    assert result.reasoning == "Hmm."
    assert result.content == "Yes"


def test_role_repeated_in_every_delta_is_delivered_once(replay):
    result = replay(
        PROVIDER,
        [
            chunk({"role": "assistant", "content": "a"}),
            chunk({"role": "assistant", "content": "b"}, "stop"),
        ],
    )
    roles = [choice.delta.role for c in result.chunks for choice in c.choices if choice.delta.role]
    assert roles == ["assistant"]


def test_error_finish_without_error_object_raises_provider_error(replay):
    result = replay(PROVIDER, [chunk({"content": "partial"}), chunk({"content": ""}, "error")])
    assert isinstance(result.error, errors.ProviderError)
    assert result.content == "partial"
    assert result.finish_reason is None


def test_numeric_error_code_in_stream_maps_like_an_http_status(replay):
    error_chunk = chunk({"content": ""}, "error", error={"code": 502, "message": "Upstream error"})
    result = replay(PROVIDER, [error_chunk])
    assert isinstance(result.error, errors.ProviderError)
    assert result.error.status_code == 502
    assert result.error.message == "Upstream error"


def test_parser_survives_arbitrary_events(fuzz_parser):
    fuzz_parser(PROVIDER)


@pytest.mark.parametrize(
    "status, code, message, error_class",
    [
        (402, 402, "Insufficient credits", errors.QuotaExceededError),
        (429, 429, "Rate limit exceeded: free-models-per-min", errors.RateLimitError),
        (401, 401, "No auth credentials found", errors.AuthenticationError),
        (502, 502, "Provider returned error", errors.ProviderError),
    ],
)
def test_error_bodies_keep_openrouter_message(status, code, message, error_class):
    body = json.dumps({"error": {"code": code, "message": message, "metadata": {}}})
    error = openrouter.parse_error(status, body, {}, "m")
    assert isinstance(error, error_class)
    assert error.message == message
    assert error.status_code == status


def test_reasoning_details_stream_into_the_message_and_go_back_on_the_next_turn():
    import litestream as ls
    from litestream.testing import FakeLLMServer

    signature = "EqQBCkYIBRgCKkD-opaque-signature"
    events = [
        {"type": "reasoning.text", "text": "Think ", "format": "anthropic-claude-v1",
         "index": 0},
        {"type": "reasoning.text", "text": "hard.", "signature": signature,
         "format": "anthropic-claude-v1", "index": 0},
    ]
    body = b"".join(
        b"data: " + json.dumps({"id": "gen-1", "model": "m", "choices": [
            {"index": 0, "delta": {"reasoning_details": [detail]}, "finish_reason": None}]},
        ).encode() + b"\n\n" for detail in events)
    body += b"data: " + json.dumps({"id": "gen-1", "model": "m", "choices": [
        {"index": 0, "delta": {"content": "Answer."}, "finish_reason": "stop"}]}).encode()
    body += b"\n\ndata: [DONE]\n\n"
    with FakeLLMServer() as server:
        server.replay(body)
        first = ls.collect_stream(ls.completion(
            "openrouter", "anthropic/claude-sonnet-4", messages=MESSAGES, stream=True,
            api_key="sk-or-test-0000", api_base=server.api_base("openrouter")))
        details = first.choices[0].message.reasoning_details
        assert [(d["type"], d["text"], d.get("signature")) for d in details] == [
            ("reasoning.text", "Think hard.", signature)]
        server.script(text="second")
        messages = [*MESSAGES, first.choices[0].message.to_dict(),
                    {"role": "user", "content": "And?"}]
        ls.completion("openrouter", "anthropic/claude-sonnet-4", messages=messages,
                      api_key="sk-or-test-0000", api_base=server.api_base("openrouter"))
        sent = server.last_request.json["messages"][1]
    assert sent["reasoning_details"][0]["signature"] == signature
    assert sent["reasoning_details"][0]["text"] == "Think hard."
