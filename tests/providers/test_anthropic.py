"""Anthropic: Messages API request building, stream parsing, responses and error bodies."""

from __future__ import annotations

import json

import pytest

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import get_provider
from litestream.wire import Event

PROVIDER = "anthropic"
anthropic = get_provider("anthropic")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def body_for(**request):
    request.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return anthropic.build_request("claude-sonnet-4-20250514", request, CallOptions()).json


def sse(kind, **fields):
    return Event(json.dumps({"type": kind, **fields}), kind)


MESSAGE_START = sse(
    "message_start",
    message={"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 9, "output_tokens": 1}},
)


# --- transcripts ------------------------------------------------------------


def test_recorded_transcript_gives_expected_outcome(stream_case, check_transcript):
    check_transcript(stream_case)


# --- request building --------------------------------------------------------


def test_request_posts_to_v1_messages_with_api_key_and_version_headers():
    request = anthropic.build_request(
        "claude-sonnet-4-20250514",
        {"messages": [{"role": "user", "content": "Hi"}], "stream": True},
        CallOptions(api_key="sk-ant-test-1234567", api_base="http://127.0.0.1:9000/"),
    )
    assert request.url == "http://127.0.0.1:9000/v1/messages"
    assert request.headers["x-api-key"] == "sk-ant-test-1234567"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in request.headers
    assert request.framing == "sse"
    assert request.json["stream"] is True


def test_default_base_url_is_anthropic():
    request = anthropic.build_request(
        "m", {"messages": [{"role": "user", "content": "x"}]}, CallOptions())
    assert request.url == "https://api.anthropic.com/v1/messages"
    assert request.framing == "json"


def test_system_messages_move_to_top_level_system():
    body = body_for(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ]
    )
    assert body["system"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]


def test_max_tokens_defaults_to_4096_and_takes_either_openai_key():
    assert body_for()["max_tokens"] == 4096
    assert body_for(max_tokens=100)["max_tokens"] == 100
    assert body_for(max_completion_tokens=200)["max_tokens"] == 200


def test_sampling_and_stop_become_anthropic_fields():
    body = body_for(temperature=0.5, top_p=0.9, stop="END", top_k=5)
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.5, 0.9, 5)
    assert body["stop_sequences"] == ["END"]
    assert "stop" not in body


def test_openai_only_keys_are_not_sent():
    body = body_for(presence_penalty=0.1, n=1, stream_options={"include_usage": True})
    assert not {"presence_penalty", "n", "stream_options"} & set(body)


def test_function_tools_become_input_schema_tools():
    assert body_for(tools=TOOLS)["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice_maps_to_anthropic_types(choice, expected):
    assert body_for(tools=TOOLS, tool_choice=choice)["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_tool_use():
    body = body_for(tools=TOOLS, parallel_tool_calls=False)
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_tool_history_becomes_tool_use_and_merged_tool_result_turn():
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "25C"},
        {"role": "user", "content": "Thanks"},
    ]
    assert body_for(messages=messages, tools=TOOLS)["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "25C"},
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]


def test_image_parts_become_base64_or_url_image_blocks():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    blocks = body_for(messages=[{"role": "user", "content": content}])["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


@pytest.mark.parametrize(
    "messages, problem",
    [
        ([{"role": "tool", "content": "18C"}], "tool_call_id"),
        ([{"role": "user", "content": {"text": "hi"}}], "must be a string or a list"),
        ([{"role": "robot", "content": "x"}], "unknown role"),
        (
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{oops"}}],
                }
            ],
            "not valid JSON",
        ),
    ],
)
def test_inexpressible_messages_raise_configuration_error(messages, problem):
    with pytest.raises(errors.ConfigurationError, match=problem):
        body_for(messages=messages)


# --- stream parsing ----------------------------------------------------------


def test_message_start_gives_role_chunk_with_message_id_and_model(replay):
    result = replay(PROVIDER, [MESSAGE_START])
    first = result.chunks[0]
    assert (first.id, first.model, first.provider) == ("msg_1", "claude-x", "anthropic")
    assert first.choices[0].delta.role == "assistant"


def test_tool_index_counts_tool_blocks_not_content_blocks(replay):
    result = replay(
        PROVIDER,
        [
            MESSAGE_START,
            sse("content_block_start", index=0, content_block={"type": "thinking", "thinking": ""}),
            sse(
                "content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "hmm"}
            ),
            sse(
                "content_block_delta",
                index=0,
                delta={"type": "signature_delta", "signature": "sig"},
            ),
            sse("content_block_start", index=1, content_block={"type": "text", "text": ""}),
            sse("content_block_delta", index=1, delta={"type": "text_delta", "text": "Sure."}),
            sse(
                "content_block_start",
                index=2,
                content_block={"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}},
            ),
            sse(
                "content_block_delta",
                index=2,
                delta={"type": "input_json_delta", "partial_json": "{}"},
            ),
            sse(
                "content_block_start",
                index=3,
                content_block={"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}},
            ),
            sse(
                "content_block_delta",
                index=3,
                delta={"type": "input_json_delta", "partial_json": '{"x": 1}'},
            ),
            sse("message_delta", delta={"stop_reason": "tool_use"}, usage={"output_tokens": 30}),
            sse("message_stop"),
        ],
    )
    fragments = [
        call
        for chunk in result.chunks
        for choice in chunk.choices
        for call in choice.delta.tool_calls
    ]
    assert [fragment.index for fragment in fragments] == [0, 0, 1, 1]
    assert result.tool_calls == [
        {"id": "toolu_a", "name": "f", "arguments": "{}"},
        {"id": "toolu_b", "name": "g", "arguments": '{"x": 1}'},
    ]
    assert result.reasoning == "hmm"
    assert result.content == "Sure."
    assert result.finish_reason == "tool_calls"
    assert result.usage == {"prompt_tokens": 9, "completion_tokens": 30}


@pytest.mark.parametrize(
    "stop_reason, normalized",
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons_are_normalized(replay, stop_reason, normalized):
    result = replay(
        PROVIDER,
        [
            MESSAGE_START,
            sse("message_delta", delta={"stop_reason": stop_reason}, usage={"output_tokens": 2}),
        ],
    )
    assert result.finish_reason == normalized


def test_ping_events_produce_nothing():
    parser = anthropic.stream_parser("m")
    assert parser.feed(Event('{"type": "ping"}', "ping")) == []


def test_no_usage_without_message_delta(replay):
    result = replay(
        PROVIDER,
        [
            MESSAGE_START,
            sse("content_block_delta", index=0, delta={"type": "text_delta", "text": "a"}),
        ],
    )
    assert result.usage is None
    assert isinstance(result.error, errors.StreamConnectionError)


def test_message_stop_sets_done():
    parser = anthropic.stream_parser("m")
    parser.feed(sse("message_stop"))
    assert parser.done


@pytest.mark.parametrize(
    "error_type, error_class",
    [
        ("overloaded_error", errors.ProviderError),
        ("api_error", errors.ProviderError),
        ("rate_limit_error", errors.RateLimitError),
        ("invalid_request_error", errors.InvalidRequestError),
        ("authentication_error", errors.AuthenticationError),
        ("permission_error", errors.PermissionDeniedError),
        ("not_found_error", errors.NotFoundError),
        ("billing_error", errors.QuotaExceededError),
    ],
)
def test_error_events_raise_typed_errors(error_type, error_class):
    parser = anthropic.stream_parser("m")
    event = Event(
        json.dumps({"type": "error", "error": {"type": error_type, "message": "nope"}}), "error"
    )
    with pytest.raises(error_class) as caught:
        parser.feed(event)
    assert type(caught.value) is error_class
    assert caught.value.provider_code == error_type
    assert caught.value.message == "nope"


def test_overloaded_error_event_is_retryable():
    parser = anthropic.stream_parser("m")
    event = Event(
        '{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}', "error"
    )
    with pytest.raises(errors.ProviderError) as caught:
        parser.feed(event)
    assert caught.value.retryable


def test_wrong_shapes_raise_protocol_error():
    parser = anthropic.stream_parser("m")
    with pytest.raises(errors.ProtocolError):
        parser.feed(sse("content_block_delta", index=0, delta={"type": "text_delta", "text": 3}))
    with pytest.raises(errors.ProtocolError):
        parser.feed(Event("[1, 2]", "message_start"))


def test_parser_survives_arbitrary_events(fuzz_parser):
    fuzz_parser(PROVIDER)


# --- whole responses ---------------------------------------------------------


def test_parse_response_reads_text_tool_use_thinking_and_usage():
    body = {
        "id": "msg_2",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-20250514",
        "content": [
            {"type": "thinking", "thinking": "Let me see.", "signature": "x"},
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_1",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 20, "output_tokens": 10},
    }
    response = anthropic.parse_response(body, "m")
    assert response.id == "msg_2"
    assert response.content == "Checking."
    assert response.choices[0].message.reasoning == "Let me see."
    assert response.tool_calls[0].id == "toolu_1"
    assert json.loads(response.tool_calls[0].arguments) == {"city": "Paris"}
    assert response.finish_reason == "tool_calls"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (20, 10)


# --- error bodies --------------------------------------------------------------


def anthropic_error(error_type, message):
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message}})


def test_529_overloaded_is_retryable_provider_error():
    error = anthropic.parse_error(529, anthropic_error("overloaded_error", "Overloaded"), {}, "m")
    assert type(error) is errors.ProviderError
    assert error.provider_code == "overloaded_error"
    assert error.status_code == 529
    assert error.retryable


def test_529_with_non_json_body_still_says_overloaded():
    error = anthropic.parse_error(529, "<html>busy</html>", {}, "m")
    assert error.provider_code == "overloaded_error"


def test_429_rate_limit_reads_retry_after_header():
    error = anthropic.parse_error(
        429,
        anthropic_error(
            "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"
        ),
        {"retry-after": "12", "request-id": "req_1"},
        "m",
    )
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == 12.0
    assert error.request_id == "req_1"


def test_prompt_too_long_is_context_window_exceeded():
    error = anthropic.parse_error(
        400,
        anthropic_error(
            "invalid_request_error", "prompt is too long: 208315 tokens > 200000 maximum"
        ),
        {},
        "m",
    )
    assert isinstance(error, errors.ContextWindowExceededError)
    assert error.provider_code == "invalid_request_error"


def test_401_is_authentication_error_with_message():
    error = anthropic.parse_error(
        401, anthropic_error("authentication_error", "invalid x-api-key"), {}, "m"
    )
    assert isinstance(error, errors.AuthenticationError)
    assert error.message == "invalid x-api-key"


def test_stream_ending_after_stop_reason_without_message_stop_finishes_cleanly(replay):
    result = replay(
        PROVIDER,
        [
            MESSAGE_START,
            sse("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
            sse("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2}),
        ],
    )
    assert result.error is None
    assert result.finish_reason == "stop"


# --- peers' streaming cases: fallback model, misplaced deltas ---------------


def test_refusal_fallback_block_relabels_the_model_of_later_chunks(replay):
    result = replay(PROVIDER, [
        MESSAGE_START,
        sse("content_block_start", index=0, content_block={
            "type": "fallback", "from": {"model": "claude-x"}, "to": {"model": "claude-y"},
            "trigger": {"type": "refusal"}}),
        sse("content_block_stop", index=0),
        sse("content_block_start", index=1, content_block={"type": "text", "text": ""}),
        sse("content_block_delta", index=1, delta={"type": "text_delta", "text": "Hello"}),
        sse("message_stop"),
    ])
    assert [chunk.model for chunk in result.chunks] == ["claude-x", "claude-y"]
    assert result.content == "Hello"


def test_fallback_block_relabels_a_whole_response():
    body = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [{"type": "fallback", "from": {"model": "claude-x"},
                         "to": {"model": "claude-y"}}, {"type": "text", "text": "Hi"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}}
    assert anthropic.parse_response(body, "claude-x").model == "claude-y"


def test_thinking_delta_on_a_text_block_is_not_reasoning(replay):
    result = replay(PROVIDER, [
        MESSAGE_START,
        sse("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        sse("content_block_delta", index=0, delta={"type": "text_delta", "text": "Visible"}),
        sse("content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": "leak"}),
        sse("content_block_start", index=1, content_block={"type": "thinking", "thinking": ""}),
        sse("content_block_delta", index=1, delta={"type": "thinking_delta", "thinking": "real"}),
        sse("message_stop"),
    ])
    assert result.content == "Visible"
    assert result.reasoning == "real"


def test_body_cut_in_message_stop_after_the_stop_reason_ends_cleanly(stream_http):
    def wire(kind, **fields):
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()

    body = (wire("message_start", message={"id": "m", "model": "claude-x",
                                           "usage": {"input_tokens": 1, "output_tokens": 1}})
            + wire("content_block_start", index=0, content_block={"type": "text", "text": "Hi"})
            + wire("message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 2})
            + wire("message_stop")[:-1])
    result = stream_http(PROVIDER, body)
    assert result.error is None
    assert result.content == "Hi" and result.finish_reason == "stop"


# The short way for text deltas (AnthropicStreamParser.feed_many) against feed().
_OPENING = [
    Event(event="message_start", data=json.dumps({"type": "message_start", "message": {
        "id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 3}}})),
    Event(event="content_block_start", data=json.dumps({
        "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
]


@pytest.mark.parametrize("name, data", [
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": " there"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": ""}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": 7}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "thinking_delta", "thinking": "hm"}}),
    ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": " x"}}),
    ("content_block_delta", {"type": "message_stop"}),
    ("content_block_delta", {"type": "content_block_delta", "delta": ["text_delta"]}),
    ("content_block_delta", " {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": "
                            "{\"type\": \"text_delta\", \"text\": \" padded\"}} "),
    ("content_block_delta", "{\"type\": \"content_block_delta\"} trailing}"),
    ("content_block_delta", "{not json}"),
    ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
    (None, {"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": " unnamed"}}),
])
def test_the_short_way_for_text_deltas_gives_what_feed_gives(name, data):
    text = data if isinstance(data, str) else json.dumps(data)
    events = [*_OPENING, Event(event=name, data=text),
              Event(event="content_block_delta", data=json.dumps({
                  "type": "content_block_delta", "index": 0,
                  "delta": {"type": "text_delta", "text": " after"}}))]

    def outcome(batched: bool):
        parser = get_provider("anthropic").stream_parser("claude-x")
        chunks: list = []
        try:
            if batched:
                parser.feed_many(events, chunks)
            else:
                for event in events:  # what StreamParser.feed_many does
                    if parser.done:
                        break
                    chunks.extend(parser.feed(event))
        except errors.LitestreamError as error:
            return [chunk.to_dict() for chunk in chunks], repr(error), parser.provider_event
        return [chunk.to_dict() for chunk in chunks], None, parser.provider_event

    assert outcome(batched=True) == outcome(batched=False)


def test_a_text_delta_takes_the_short_way(monkeypatch):
    parser = get_provider("anthropic").stream_parser("claude-x")
    parser.feed_many(_OPENING, [])
    monkeypatch.setattr(parser, "feed", lambda event: pytest.fail("took the general way"))
    chunks: list = []
    parser.feed_many([Event(event="content_block_delta", data=json.dumps({
        "type": "content_block_delta", "index": 0,
        "delta": {"type": "text_delta", "text": " there"}}))], chunks)
    assert [chunk.content for chunk in chunks] == [" there"]
