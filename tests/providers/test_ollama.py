"""Ollama: /api/chat request building, NDJSON stream parsing, responses and error bodies."""

from __future__ import annotations

import json

import pytest

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import get_provider
from litestream.wire import Event

PROVIDER = "ollama"
ollama = get_provider("ollama")

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]


def body_for(**request):
    request.setdefault("messages", MESSAGES)
    return ollama.build_request("llama3.2", request, CallOptions()).json


def line(content="", done=False, **extra):
    payload = {
        "model": "llama3.2",
        "created_at": "2025-10-26T17:15:24.097767123Z",
        "message": {"role": "assistant", "content": content, **extra.pop("message", {})},
        "done": done,
        **extra,
    }
    return Event(json.dumps(payload))


# --- transcripts ------------------------------------------------------------


def test_recorded_transcript_gives_expected_outcome(stream_case, check_transcript):
    check_transcript(stream_case)


# --- request building --------------------------------------------------------


def test_streaming_request_posts_to_api_chat_with_ndjson_framing_and_no_auth():
    request = ollama.build_request(
        "llama3.2", {"messages": MESSAGES, "stream": True}, CallOptions(api_base="http://127.0.0.1:11434/")
    )
    assert request.url == "http://127.0.0.1:11434/api/chat"
    assert request.framing == "ndjson"
    assert "Authorization" not in request.headers
    assert request.json == {"model": "llama3.2", "messages": MESSAGES, "stream": True}


def test_non_streaming_request_says_stream_false_on_default_host():
    request = ollama.build_request("llama3.2", {"messages": MESSAGES}, CallOptions())
    assert request.url == "http://localhost:11434/api/chat"
    assert request.json["stream"] is False
    assert request.framing == "json"


def test_sampling_limits_and_stop_go_to_options():
    body = body_for(temperature=0.1, top_p=0.5, max_tokens=10, stop="\n", seed=3)
    assert body["options"] == {
        "temperature": 0.1,
        "top_p": 0.5,
        "num_predict": 10,
        "stop": ["\n"],
        "seed": 3,
    }


def test_tools_pass_in_openai_form():
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    assert body_for(tools=tools)["tools"] == tools


def test_tool_history_has_object_arguments_and_named_tool_results():
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Tokyo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Tokyo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "22C"},
    ]
    assert body_for(messages=messages)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Tokyo?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}],
        },
        {"role": "tool", "content": "22C", "tool_name": "get_weather"},
    ]


def test_data_url_images_become_base64_images_and_http_urls_are_refused():
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
    ]
    message = body_for(messages=[{"role": "user", "content": content}])["messages"][0]
    assert message == {"role": "user", "content": "What is this?", "images": ["iVBOR"]}
    remote = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    with pytest.raises(errors.ConfigurationError, match="data: URLs"):
        body_for(messages=[{"role": "user", "content": remote}])


def test_json_response_format_becomes_format_json():
    assert body_for(response_format={"type": "json_object"})["format"] == "json"


# --- stream parsing ----------------------------------------------------------


def test_lines_carry_model_created_time_and_a_synthesized_id(replay):
    result = replay(PROVIDER, [line("Hi"), line("", done=True, done_reason="stop")])
    ids = {chunk.id for chunk in result.chunks}
    assert len(ids) == 1 and ids.pop().startswith("chatcmpl-")
    assert {chunk.model for chunk in result.chunks} == {"llama3.2"}
    assert {chunk.created for chunk in result.chunks} == {1761498924}


def test_done_line_sets_done_and_gives_usage():
    parser = ollama.stream_parser("llama3.2")
    chunks = parser.feed(line("", done=True, done_reason="stop", prompt_eval_count=5, eval_count=6))
    assert parser.done
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 6)


def test_thinking_goes_to_reasoning(replay):
    result = replay(
        PROVIDER, [line("", message={"thinking": "Let me think"}), line("Blue", done=True)]
    )
    assert result.reasoning == "Let me think"
    assert result.content == "Blue"


def test_tool_calls_on_separate_lines_get_separate_indexes(replay):
    def call(name, index):
        return {"function": {"index": index, "name": name, "arguments": {"q": name}}}

    result = replay(
        PROVIDER,
        [
            line(message={"tool_calls": [call("a", 0)]}),
            line(message={"tool_calls": [call("b", 0)]}),
            line(done=True, done_reason="stop"),
        ],
    )
    assert [(c["name"], json.loads(c["arguments"])) for c in result.tool_calls] == [
        ("a", {"q": "a"}),
        ("b", {"q": "b"}),
    ]
    assert result.finish_reason == "tool_calls"


def test_error_line_raises_provider_error_with_its_message(replay):
    result = replay(
        PROVIDER, [line("Hi"), Event('{"error":"model runner has unexpectedly stopped"}')]
    )
    assert isinstance(result.error, errors.ProviderError)
    assert result.error.message == "model runner has unexpectedly stopped"
    assert result.content == "Hi"


def test_stream_cut_before_done_raises_stream_connection_error(replay):
    assert isinstance(replay(PROVIDER, [line("Hi")]).error, errors.StreamConnectionError)


def test_wrong_shapes_raise_protocol_error():
    parser = ollama.stream_parser("m")
    with pytest.raises(errors.ProtocolError):
        parser.feed(Event('{"message": {"content": ["x"]}}'))
    with pytest.raises(errors.ProtocolError):
        parser.feed(Event('"just a string"'))


def test_parser_survives_arbitrary_events(fuzz_parser):
    fuzz_parser(PROVIDER)


# --- whole responses and errors ----------------------------------------------


def test_parse_response_reads_message_tool_calls_and_counts():
    body = {
        "model": "llama3.2",
        "created_at": "2025-07-07T20:22:19.184789Z",
        "message": {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}],
        },
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": 169,
        "eval_count": 15,
    }
    response = ollama.parse_response(body, "llama3.2")
    assert response.finish_reason == "tool_calls"
    assert json.loads(response.tool_calls[0].arguments) == {"city": "Tokyo"}
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (169, 15)


def test_404_model_not_pulled_is_model_not_found():
    body = '{"error":"model \\"llama9\\" not found, try pulling it first"}'
    error = ollama.parse_error(404, body, {}, "llama9")
    assert isinstance(error, errors.ModelNotFoundError)
    assert error.message == 'model "llama9" not found, try pulling it first'


def test_500_plain_text_body_is_provider_error():
    error = ollama.parse_error(500, "Internal Server Error", {}, "m")
    assert isinstance(error, errors.ProviderError)
    assert error.message == "Internal Server Error"


def test_created_at_is_parsed_once_per_second_with_the_same_result():
    from litestream.providers import ollama

    values = [
        "2025-10-26T17:15:24.097767Z", "2025-10-26T17:15:24.1Z", "2025-10-26T17:15:24.999999999Z",
        "2025-10-26T17:15:25.000001Z", "2025-10-26T17:15:25.5+02:00", "2025-10-26T17:15:25.6+02:00",
        "2025-10-26T17:15:25.6-05:30", "2025-10-26T17:15:25Z", "2025-10-26T17:15:25.09x7Z",
        "2025-10-26T17:15:25.1Z", " 2025-10-26T17:15:25.2Z ", "2025-13-40T17:15:25.2Z",
        "2025-10-26T17:15:26.123", "2025-10-26T17:15:26.456", 7, None,
    ]
    parser = get_provider("ollama").stream_parser("llama")
    for value in values:
        expected = ollama._timestamp(value) or parser.created
        parser.created = parser._timestamp(value) or parser.created
        assert parser.created == expected, value
