"""OpenAI: request building, stream parsing, whole responses and error bodies."""

from __future__ import annotations

import json

import pytest

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import get_provider
from litestream.wire import Event

PROVIDER = "openai"
openai = get_provider("openai")

MESSAGES = [{"role": "user", "content": "Hi"}]


def chunk(delta=None, finish_reason=None, index=0, **extra):
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": index, "delta": delta or {}, "finish_reason": finish_reason}],
        **extra,
    }


def events(*payloads):
    return [Event(p if isinstance(p, str) else json.dumps(p)) for p in payloads]


# --- transcripts ------------------------------------------------------------


def test_recorded_transcript_gives_expected_outcome(stream_case, check_transcript):
    check_transcript(stream_case)


# --- request building --------------------------------------------------------


def test_streaming_request_posts_to_chat_completions_with_bearer_key_and_usage():
    request = openai.build_request(
        "gpt-4o-mini",
        {"messages": MESSAGES, "stream": True, "temperature": 0.2},
        CallOptions(api_key="sk-test-123456789", api_base="http://127.0.0.1:8080/v1"),
    )
    assert request.method == "POST"
    assert request.url == "http://127.0.0.1:8080/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test-123456789"
    assert request.framing == "sse"
    assert request.json == {
        "model": "gpt-4o-mini",
        "messages": MESSAGES,
        "stream": True,
        "temperature": 0.2,
        "stream_options": {"include_usage": True},
    }


def test_default_base_url_is_openai_and_trailing_slash_is_tolerated():
    assert openai.build_request("m", {"messages": MESSAGES}, CallOptions()).url == (
        "https://api.openai.com/v1/chat/completions"
    )
    request = openai.build_request("m", {"messages": MESSAGES}, CallOptions(api_base="http://h/v1/"))
    assert request.url == "http://h/v1/chat/completions"


def test_query_string_on_api_base_is_kept_after_the_path():
    request = openai.build_request(
        "m",
        {"messages": MESSAGES},
        CallOptions(api_base="https://x.azure.com/openai/deployments/d?api-version=1"),
    )
    assert request.url == "https://x.azure.com/openai/deployments/d/chat/completions?api-version=1"


def test_caller_stream_options_win_and_none_sends_none():
    custom = openai.build_request(
        "m", {"messages": MESSAGES, "stream": True, "stream_options": {"include_usage": False}},
        CallOptions()
    )
    assert custom.json["stream_options"] == {"include_usage": False}
    opted_out = openai.build_request(
        "m", {"messages": MESSAGES, "stream": True, "stream_options": None}, CallOptions()
    )
    assert "stream_options" not in opted_out.json


def test_non_streaming_request_has_json_framing_and_no_stream_options():
    request = openai.build_request(
        "m", {"messages": MESSAGES, "stream_options": {"include_usage": True}}, CallOptions()
    )
    assert request.framing == "json"
    assert request.json["stream"] is False
    assert "stream_options" not in request.json


def test_extra_headers_are_merged_and_no_key_means_no_authorization():
    request = openai.build_request(
        "m", {"messages": MESSAGES}, CallOptions(headers={"X-Trace": "1"}))
    assert request.headers["X-Trace"] == "1"
    assert "Authorization" not in request.headers


def test_tools_tool_choice_stop_and_tool_history_pass_through_unchanged():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    body = openai.build_request(
        "m",
        {
            "messages": messages,
            "tools": tools,
            "tool_choice": "required",
            "stop": "END",
            "max_completion_tokens": 50,
        },
        CallOptions(),
    ).json
    assert body["messages"] == messages
    assert body["tools"] == tools
    assert body["tool_choice"] == "required"
    assert body["stop"] == "END"
    assert body["max_completion_tokens"] == 50


@pytest.mark.parametrize(
    "messages, problem",
    [
        ([{"content": "no role"}], "no 'role'"),
        ([{"role": "wizard", "content": "x"}], "unknown role"),
        ([{"role": "user", "content": 42}], "must be a string or a list"),
        (["just a string"], "not a dict"),
        ([], "non-empty"),
    ],
)
def test_malformed_messages_raise_configuration_error_naming_the_problem(messages, problem):
    with pytest.raises(errors.ConfigurationError, match=problem):
        openai.build_request("m", {"messages": messages}, CallOptions())


def test_malformed_stop_and_tool_choice_raise_configuration_error():
    with pytest.raises(errors.ConfigurationError, match="stop"):
        openai.build_request("m", {"messages": MESSAGES, "stop": 5}, CallOptions())
    with pytest.raises(errors.ConfigurationError, match="tool_choice"):
        openai.build_request("m", {"messages": MESSAGES, "tool_choice": "sometimes"}, CallOptions())


# --- stream parsing ----------------------------------------------------------


def test_chunks_carry_wire_id_model_created_and_provider(replay):
    result = replay(
        PROVIDER, events(chunk({"role": "assistant", "content": "Hi"}, "stop"), "[DONE]")
    )
    first = result.chunks[0]
    assert (first.id, first.model, first.created, first.provider) == (
        "chatcmpl-1",
        "gpt-4o-mini-2024-07-18",
        1700000000,
        "openai",
    )


def test_done_sentinel_sets_done():
    parser = openai.stream_parser("m")
    parser.feed(Event(json.dumps(chunk({"content": "x"}))))
    assert not parser.done
    assert parser.feed(Event("[DONE]")) == []
    assert parser.done


def test_stream_with_finish_reason_but_no_done_sentinel_finishes_cleanly(replay):
    result = replay(PROVIDER, events(chunk({"content": "Hi"}), chunk({}, "stop")))
    assert result.error is None
    assert result.content == "Hi"
    assert result.finish_reason == "stop"


def test_stream_cut_before_any_finish_raises_stream_connection_error(replay):
    result = replay(PROVIDER, events(chunk({"content": "Hi"})))
    assert isinstance(result.error, errors.StreamConnectionError)
    assert result.content == "Hi"


def test_usage_chunk_with_empty_choices_becomes_usage_only_chunk(replay):
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    result = replay(
        PROVIDER, events(chunk({}, "stop"), {**chunk(), "choices": [], "usage": usage}, "[DONE]")
    )
    last = result.chunks[-1]
    assert last.choices == ()
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (
        3,
        4,
        7,
    )


def test_tool_call_fragments_without_index_continue_the_latest_call(replay):
    result = replay(
        PROVIDER,
        events(
            chunk({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x"'}}]}),
            chunk({"tool_calls": [{"function": {"arguments": ": 1}"}}]}),
            chunk({"tool_calls": [{"id": "b", "function": {"name": "g", "arguments": "{}"}}]}),
            chunk({}, "tool_calls"),
        ),
    )
    assert result.tool_calls == [
        {"id": "a", "name": "f", "arguments": '{"x": 1}'},
        {"id": "b", "name": "g", "arguments": "{}"},
    ]


def test_whole_tool_calls_without_index_in_one_delta_take_their_positions(replay):
    calls = [
        {"id": "a", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "function": {"name": "g", "arguments": "{}"}},
    ]
    result = replay(PROVIDER, events(chunk({"tool_calls": calls}, "tool_calls")))
    assert [call["id"] for call in result.tool_calls] == ["a", "b"]


def test_legacy_function_call_becomes_tool_call_and_finish_tool_calls(replay):
    result = replay(
        PROVIDER,
        events(
            chunk({"function_call": {"name": "f", "arguments": "{}"}}), chunk({}, "function_call")
        ),
    )
    assert result.tool_calls == [{"id": None, "name": "f", "arguments": "{}"}]
    assert result.finish_reason == "tool_calls"


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_fields_go_to_reasoning_never_content(replay, field):
    result = replay(
        PROVIDER, events(chunk({field: "thinking..."}), chunk({"content": "42"}, "stop"))
    )
    assert result.reasoning == "thinking..."
    assert result.content == "42"


def test_repeated_finish_reason_for_a_choice_is_delivered_once(replay):
    result = replay(
        PROVIDER, events(chunk({"content": "a"}, "stop"), chunk({"content": ""}, "stop"), "[DONE]")
    )
    assert result.finish_reasons == ["stop"]
    assert result.content == "a"


def test_in_band_error_with_http_like_code_uses_that_status():
    parser = openai.stream_parser("m")
    with pytest.raises(errors.RateLimitError) as caught:
        parser.feed(Event(json.dumps({"error": {"message": "slow down", "code": 429}})))
    assert caught.value.message == "slow down"
    assert caught.value.provider == "openai"


def test_in_band_error_without_code_is_provider_error_with_type():
    parser = openai.stream_parser("m")
    with pytest.raises(errors.ProviderError) as caught:
        parser.feed(Event(json.dumps({"error": {"message": "boom", "type": "server_error"}})))
    assert caught.value.provider_code == "server_error"
    assert caught.value.retryable


def test_sse_error_event_raises_typed_error_even_when_data_is_not_json():
    parser = openai.stream_parser("m")
    with pytest.raises(errors.ProviderError, match="upstream went away"):
        parser.feed(Event("upstream went away", "error"))


def test_malformed_json_raises_protocol_error():
    parser = openai.stream_parser("m")
    with pytest.raises(errors.ProtocolError, match="malformed JSON"):
        parser.feed(Event("{not json"))


@pytest.mark.parametrize(
    "payload",
    [
        [1, 2],
        {"choices": "nope"},
        {"choices": [{"delta": []}]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": "x"}]}}]},
        {"usage": {"prompt_tokens": "many"}},
    ],
)
def test_json_of_the_wrong_shape_raises_protocol_error(payload):
    parser = openai.stream_parser("m")
    with pytest.raises(errors.ProtocolError) as caught:
        parser.feed(Event(json.dumps(payload)))
    assert caught.value.provider == "openai"


def test_parser_survives_arbitrary_events(fuzz_parser):
    fuzz_parser(PROVIDER)


# --- whole responses ---------------------------------------------------------


def test_parse_response_reads_message_tool_calls_finish_and_usage():
    body = {
        "id": "chatcmpl-9",
        "object": "chat.completion",
        "created": 1700000001,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }
    response = openai.parse_response(body, "gpt-4o-mini")
    assert response.id == "chatcmpl-9"
    assert response.provider == "openai"
    assert response.finish_reason == "tool_calls"
    assert response.tool_calls[0].name == "f"
    assert response.tool_calls[0].arguments == '{"a":1}'
    assert response.usage.total_tokens == 15


def test_parse_response_of_wrong_shape_raises_protocol_error():
    with pytest.raises(errors.ProtocolError):
        openai.parse_response({"choices": {"0": {}}}, "m")


# --- error bodies --------------------------------------------------------------


def openai_error(message, type_, code=None):
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


def test_401_body_becomes_authentication_error_with_provider_message():
    error = openai.parse_error(
        401,
        openai_error("Incorrect API key provided", "invalid_request_error", "invalid_api_key"),
        {},
        "m",
    )
    assert isinstance(error, errors.AuthenticationError)
    assert error.message == "Incorrect API key provided"
    assert error.provider_code == "invalid_api_key"
    assert error.status_code == 401


def test_429_insufficient_quota_is_quota_exceeded_not_retryable():
    body = openai_error(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )
    error = openai.parse_error(429, body, {}, "m")
    assert isinstance(error, errors.QuotaExceededError)
    assert error.provider_code == "insufficient_quota"
    assert not error.retryable


@pytest.mark.parametrize(
    "headers, wait", [({"Retry-After": "7"}, 7.0), ({"retry-after-ms": "1500"}, 1.5)]
)
def test_429_rate_limit_reads_retry_after(headers, wait):
    body = openai_error("Rate limit reached for gpt-4o-mini", "requests", "rate_limit_exceeded")
    error = openai.parse_error(429, body, headers, "m")
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == wait


def test_context_length_error_is_context_window_exceeded():
    body = openai_error(
        "This model's maximum context length is 128000 tokens. "
        "However, your messages resulted in 130000 tokens.",
        "invalid_request_error",
        "context_length_exceeded",
    )
    assert isinstance(openai.parse_error(400, body, {}, "m"), errors.ContextWindowExceededError)


def test_html_error_page_becomes_short_text_message():
    body = (
        "<html><head><title>502 Bad Gateway</title></head>"
        "<body><h1>502 Bad Gateway</h1></body></html>"
    )
    error = openai.parse_error(502, body, {}, "m")
    assert isinstance(error, errors.ProviderError)
    assert "502 Bad Gateway" in error.message
    assert "<" not in error.message


# --- peers' streaming cases: models, custom tools, split usage --------------


def sse_body(*payloads) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads) + \
        b"data: [DONE]\n\n"


def test_latest_model_named_wins_per_chunk_and_in_the_collected_response(stream_http):
    # Azure's model router names itself first, the model that served later.
    import litestream
    from litestream.streaming import ResponseBuilder

    body = sse_body(
        {"id": "c1", "model": "azure-model-router", "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": "Hi"}}]},
        {"id": "c1", "model": "gpt-4.1-nano", "choices": []},
        {"id": "c1", "model": "gpt-4.1-nano", "choices": [
            {"index": 0, "delta": {}, "finish_reason": "stop"}]},
    )
    result = stream_http(PROVIDER, body)
    assert result.error is None
    assert [chunk.model for chunk in result.chunks] == [
        "azure-model-router", "gpt-4.1-nano", "gpt-4.1-nano"]
    builder = ResponseBuilder()
    for chunk in result.chunks:
        builder.add(chunk)
    assert builder.build().model == "gpt-4.1-nano"
    assert litestream.extract_content(result.chunks[1]) is None


def test_custom_tool_call_fragments_give_name_and_input_as_arguments(replay):
    events = [Event(json.dumps({"id": "c", "model": "m", "choices": [
        {"index": 0, "delta": {"tool_calls": [call]}}]})) for call in (
        {"index": 0, "id": "call_1", "type": "custom",
         "custom": {"name": "ApplyPatch", "input": "*** Begin"}},
        {"index": 0, "custom": {"input": " Patch"}},
    )] + [Event("[DONE]")]
    result = replay(PROVIDER, events)
    assert result.tool_calls == [
        {"id": "call_1", "name": "ApplyPatch", "arguments": "*** Begin Patch"}]


def test_custom_tool_call_in_a_whole_response():
    body = {"id": "c", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "tool_calls": [
                {"id": "call_1", "type": "custom",
                 "custom": {"name": "ApplyPatch", "input": "*** End Patch"}}]}}]}
    call = openai.parse_response(body, "m").choices[0].message.tool_calls[0]
    assert (call.id, call.name, call.arguments) == ("call_1", "ApplyPatch", "*** End Patch")


def test_usage_split_across_chunks_keeps_the_prompt_count(replay):
    events = [Event(json.dumps(p)) for p in (
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": ""}}],
         "usage": {"prompt_tokens": 50, "completion_tokens": 0, "total_tokens": 50}},
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 0, "completion_tokens": 27, "total_tokens": 27}},
    )] + [Event("[DONE]")]
    assert replay(PROVIDER, events).usage == {"prompt_tokens": 50, "completion_tokens": 27}


def test_cumulative_usage_takes_the_latest_counts(replay):
    events = [Event(json.dumps(p)) for p in (
        {"id": "c", "model": "m", "choices": [],
         "usage": {"prompt_tokens": 10, "completion_tokens": 1}},
        {"id": "c", "model": "m", "choices": [],
         "usage": {"prompt_tokens": 10, "completion_tokens": 5}},
    )] + [Event("[DONE]")]
    assert replay(PROVIDER, events).usage == {"prompt_tokens": 10, "completion_tokens": 5}


def test_unframed_json_line_is_ignored_by_the_openai_parser(replay):
    result = replay(PROVIDER, [Event('{"error": {"code": 500}}', unframed=True), Event("[DONE]")])
    assert result.error is None and result.chunks == []


def test_body_cut_mid_event_before_any_finish_is_a_truncation(stream_http):
    event = b'data: {"id": "c", "model": "m", "choices": ' \
        b'[{"index": 0, "delta": {"content": "Hi"}}]}'
    result = stream_http(PROVIDER, event + b"\n\n" + event + b"\n")
    assert result.content == "Hi"
    assert isinstance(result.error, errors.StreamConnectionError)
    assert "ended before" in str(result.error)


def test_body_cut_in_done_after_the_finish_reason_ends_cleanly(stream_http):
    finish = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "Hi"},
                                                     "finish_reason": "stop"}]}
    result = stream_http(PROVIDER, sse_body(finish)[:-2])  # "data: [DONE]" without its blank line
    assert result.error is None
    assert result.content == "Hi" and result.finish_reason == "stop"


def test_chat_annotations_are_collected_in_openai_shape():
    import litestream as ls
    from litestream.testing import FakeLLMServer

    citation = {"type": "url_citation", "url_citation": {
        "url": "https://example.com/rivers", "title": "Rivers", "start_index": 0,
        "end_index": 6}}
    body = b"".join(b"data: " + json.dumps(payload).encode() + b"\n\n" for payload in [
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-search",
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Rivers"},
                      "finish_reason": None}]},
        {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-search",
         "choices": [{"index": 0, "delta": {"annotations": [citation]},
                      "finish_reason": "stop"}]},
    ]) + b"data: [DONE]\n\n"
    with FakeLLMServer() as server:
        server.replay(body)
        response = ls.collect_stream(ls.completion(
            "openai", "gpt-4o-search", messages=[{"role": "user", "content": "Hi"}],
            stream=True, api_key="sk-test-0000", api_base=server.api_base("openai")))
    assert response.content == "Rivers"
    assert list(response.choices[0].message.annotations) == [citation]
    assert response.choices[0].message.to_dict()["annotations"] == [citation]


def test_whole_response_annotations_and_reasoning_details_are_kept():
    citation = {"type": "url_citation", "url_citation": {"url": "https://example.com"}}
    response = openai.parse_response({
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "x", "annotations": [citation],
            "reasoning_details": [{"type": "reasoning.encrypted", "data": "opaque"}]}}],
    }, "m")
    message = response.choices[0].message
    assert list(message.annotations) == [citation]
    assert message.reasoning_details[0]["data"] == "opaque"


def test_a_text_event_read_in_a_batch_keeps_its_json_text_for_provider_event():
    from litestream.types import Chunk

    first = chunk({"role": "assistant", "content": ""})
    text = chunk({"content": "caf\u00e9 \"quoted\""})
    batch: list = []
    parser = openai.stream_parser("m")
    parser.feed_many(events(first, text), batch)
    one_by_one = openai.stream_parser("m")
    fed = [piece for event in events(first, text) for piece in one_by_one.feed(event)]
    assert batch == fed
    token = batch[-1]
    stored = Chunk.provider_event.slot.__get__(token)
    assert isinstance(stored, str) and json.loads(stored) == text  # kept as text, not decoded
    assert token.provider_event == text == fed[-1].provider_event
