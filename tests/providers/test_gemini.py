"""Gemini: generateContent request building, stream parsing, responses and error bodies."""

from __future__ import annotations

import json

import pytest

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import get_provider
from litestream.wire import Event

PROVIDER = "gemini"
gemini = get_provider("gemini")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {"city": {"type": "string"}, "strict": {"type": "boolean"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
]


def body_for(**request):
    request.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return gemini.build_request("gemini-2.5-flash", request, CallOptions()).json


def event(candidates=None, usage=None, **extra):
    payload = {"modelVersion": "gemini-2.5-flash", "responseId": "resp-1", **extra}
    if candidates is not None:
        payload["candidates"] = candidates
    if usage is not None:
        payload["usageMetadata"] = usage
    return Event(json.dumps(payload))


def text_candidate(text, finish=None, thought=False):
    part = {"text": text, "thought": True} if thought else {"text": text}
    candidate = {"content": {"role": "model", "parts": [part]}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return candidate


# --- transcripts ------------------------------------------------------------


def test_recorded_transcript_gives_expected_outcome(stream_case, check_transcript):
    check_transcript(stream_case)


# --- request building --------------------------------------------------------


def test_streaming_request_uses_sse_endpoint_and_key_header_never_url_key():
    request = gemini.build_request(
        "gemini-2.5-flash",
        {"messages": [{"role": "user", "content": "Hi"}], "stream": True},
        CallOptions(api_key="AIzaTestKey000000000000000", api_base="http://127.0.0.1:7000"),
    )
    assert request.url == (
        "http://127.0.0.1:7000/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert request.headers["x-goog-api-key"] == "AIzaTestKey000000000000000"
    assert "key=" not in request.url
    assert request.framing == "sse"


def test_non_streaming_request_uses_generate_content_on_default_base():
    request = gemini.build_request(
        "models/gemini-2.5-flash", {"messages": [{"role": "user", "content": "x"}]}, CallOptions()
    )
    assert request.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert request.framing == "json"


def test_system_messages_become_system_instruction_and_roles_user_model():
    body = body_for(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": [{"type": "text", "text": "Again"}]},
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello"}]},
        {"role": "user", "parts": [{"text": "Again"}]},
    ]


def test_sampling_limits_and_stop_go_to_generation_config():
    body = body_for(temperature=0.3, top_p=0.8, max_tokens=64, stop="END")
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "topP": 0.8,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
    }


def test_function_tools_become_declarations_without_unsupported_schema_keys():
    assert body_for(tools=TOOLS)["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Current weather",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}, "strict": {"type": "boolean"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]


@pytest.mark.parametrize(
    "choice, config",
    [
        ("auto", {"mode": "AUTO"}),
        ("required", {"mode": "ANY"}),
        ("none", {"mode": "NONE"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice_becomes_function_calling_config(choice, config):
    assert body_for(tools=TOOLS, tool_choice=choice)["toolConfig"] == {
        "functionCallingConfig": config
    }


def test_tool_history_becomes_function_call_and_merged_function_responses():
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "c2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 18}'},
        {"role": "tool", "tool_call_id": "c2", "content": "25C"},
    ]
    assert body_for(messages=messages, tools=TOOLS)["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 18}}},
                {"functionResponse": {"name": "get_weather", "response": {"content": "25C"}}},
            ],
        },
    ]


def test_tool_result_for_unknown_call_raises_configuration_error():
    with pytest.raises(errors.ConfigurationError, match="function is unknown"):
        body_for(messages=[{"role": "tool", "tool_call_id": "nope", "content": "x"}])


def test_data_url_image_becomes_inline_data():
    content = [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}}]
    parts = body_for(messages=[{"role": "user", "content": content}])["contents"][0]["parts"]
    assert parts == [{"inlineData": {"mimeType": "image/jpeg", "data": "QUJD"}}]


# --- stream parsing ----------------------------------------------------------


def test_usage_is_emitted_once_with_the_final_cumulative_value(replay):
    result = replay(
        PROVIDER,
        [
            event([text_candidate("a")], {"promptTokenCount": 5, "candidatesTokenCount": 1}),
            event([text_candidate("b")], {"promptTokenCount": 5, "candidatesTokenCount": 2}),
            event(
                [text_candidate("c", "STOP")],
                {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 4},
            ),
        ],
    )
    usages = [chunk.usage for chunk in result.chunks if chunk.usage is not None]
    assert len(usages) == 1
    assert (usages[0].prompt_tokens, usages[0].completion_tokens) == (5, 7)
    assert result.content == "abc"


def test_finish_reason_sets_done():
    parser = gemini.stream_parser("m")
    parser.feed(event([text_candidate("a")]))
    assert not parser.done
    parser.feed(event([text_candidate("", "STOP")]))
    assert parser.done


def test_stream_without_finish_reason_raises_stream_connection_error(replay):
    result = replay(PROVIDER, [event([text_candidate("a")])])
    assert isinstance(result.error, errors.StreamConnectionError)


@pytest.mark.parametrize(
    "reason, normalized",
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons_are_normalized(replay, reason, normalized):
    assert replay(PROVIDER, [event([text_candidate("x", reason)])]).finish_reason == normalized


def test_thought_parts_go_to_reasoning_and_signatures_are_ignored(replay):
    candidate = {
        "content": {
            "role": "model",
            "parts": [
                {"text": "Considering...", "thought": True},
                {"text": "Answer", "thoughtSignature": "c2lnbmF0dXJl"},
            ],
        },
        "finishReason": "STOP",
    }
    result = replay(PROVIDER, [event([candidate])])
    assert result.reasoning == "Considering..."
    assert result.content == "Answer"


def test_function_calls_across_events_get_increasing_indexes_and_tool_calls_finish(replay):
    def call(name, args, finish=None):
        candidate = {
            "content": {"role": "model", "parts": [{"functionCall": {"name": name, "args": args}}]}
        }
        if finish:
            candidate["finishReason"] = finish
        return candidate

    result = replay(PROVIDER, [event([call("f", {"a": 1})]), event([call("g", {}, "STOP")])])
    assert result.tool_calls == [
        {"id": None, "name": "f", "arguments": '{"a": 1}'},
        {"id": None, "name": "g", "arguments": "{}"},
    ]
    assert result.finish_reason == "tool_calls"


def test_function_call_id_is_kept_when_present(replay):
    part = {"functionCall": {"id": "fc-1", "name": "f", "args": {}}}
    result = replay(PROVIDER, [event([{"content": {"parts": [part]}, "finishReason": "STOP"}])])
    assert result.tool_calls[0]["id"] == "fc-1"


def test_blocked_prompt_is_content_filter_finish_not_error(replay):
    payload = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 4},
    }
    result = replay(PROVIDER, [Event(json.dumps(payload))])
    assert result.error is None
    assert result.finish_reason == "content_filter"
    assert result.usage == {"prompt_tokens": 4, "completion_tokens": 0}


def test_in_band_error_object_raises_typed_error():
    parser = gemini.stream_parser("m")
    payload = {
        "error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
    }
    with pytest.raises(errors.ProviderError) as caught:
        parser.feed(Event(json.dumps(payload)))
    assert caught.value.provider_code == "UNAVAILABLE"
    assert caught.value.message == "The model is overloaded."


def test_wrong_shapes_raise_protocol_error():
    parser = gemini.stream_parser("m")
    with pytest.raises(errors.ProtocolError):
        parser.feed(Event(json.dumps({"candidates": [{"content": {"parts": "text"}}]})))
    with pytest.raises(errors.ProtocolError):
        parser.feed(Event("not json"))


def test_parser_survives_arbitrary_events(fuzz_parser):
    fuzz_parser(PROVIDER)


# --- whole responses ---------------------------------------------------------


def test_parse_response_reads_text_function_calls_and_usage():
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "Let me check."},
                        {"functionCall": {"name": "f", "args": {"x": 1}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 7,
            "candidatesTokenCount": 3,
            "thoughtsTokenCount": 2,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1",
    }
    response = gemini.parse_response(body, "m")
    assert response.id == "r1"
    assert response.model == "gemini-2.5-flash"
    assert response.content == "Let me check."
    assert json.loads(response.tool_calls[0].arguments) == {"x": 1}
    assert response.finish_reason == "tool_calls"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (7, 5)


def test_parse_response_of_blocked_prompt_is_content_filter():
    response = gemini.parse_response({"promptFeedback": {"blockReason": "SAFETY"}}, "m")
    assert response.finish_reason == "content_filter"
    assert response.content is None


# --- error bodies --------------------------------------------------------------


def google_error(code, status, message, details=()):
    return json.dumps(
        {"error": {"code": code, "message": message, "status": status, "details": list(details)}}
    )


def test_429_resource_exhausted_is_rate_limit_with_retry_delay():
    body = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "35s"}],
    )
    error = gemini.parse_error(429, body, {}, "m")
    assert isinstance(error, errors.RateLimitError)
    assert error.provider_code == "RESOURCE_EXHAUSTED"
    assert error.retry_after == 35.0


def test_invalid_api_key_400_is_authentication_error():
    body = google_error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
    )
    assert isinstance(gemini.parse_error(400, body, {}, "m"), errors.AuthenticationError)


def test_token_limit_message_is_context_window_exceeded():
    body = google_error(
        400,
        "INVALID_ARGUMENT",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
    )
    assert isinstance(gemini.parse_error(400, body, {}, "m"), errors.ContextWindowExceededError)


def test_error_body_as_one_item_array_is_understood():
    body = "[" + google_error(404, "NOT_FOUND", "models/nope is not found") + "]"
    error = gemini.parse_error(404, body, {}, "m")
    assert isinstance(error, errors.ModelNotFoundError)
    assert error.message == "models/nope is not found"


def test_html_body_becomes_text_message():
    error = gemini.parse_error(503, "<html><body>Service Unavailable</body></html>", {}, "m")
    assert isinstance(error, errors.ProviderError)
    assert error.message == "Service Unavailable"


def test_429_daily_quota_failure_is_quota_exceeded():
    body = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
            }
        ],
    )
    assert isinstance(gemini.parse_error(429, body, {}, "m"), errors.QuotaExceededError)


# --- errors written outside SSE framing -------------------------------------

GEMINI_429 = b"""{
  "error": {
    "code": 429,
    "message": "Resource has been exhausted (e.g. check quota).",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "21s"
      }
    ]
  }
}
"""


def sse(payload) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\r\n\r\n"


@pytest.mark.parametrize("piece_size", [None, 5])
def test_pretty_printed_error_without_data_prefix_is_the_typed_error(stream_http, piece_size):
    body = sse({"candidates": [text_candidate("Hello")]}) + GEMINI_429
    result = stream_http(PROVIDER, body, piece_size=piece_size)
    assert result.content == "Hello"
    assert isinstance(result.error, errors.RateLimitError)
    assert result.error.provider_code == "RESOURCE_EXHAUSTED"
    assert result.error.retry_after == 21.0
    assert "exhausted" in result.error.message


def test_error_array_without_data_prefix_followed_by_blank_line(stream_http):
    error = b'[{\n  "error": {\n    "code": 500,\n    "message": "Internal error",\n' \
            b'    "status": "INTERNAL"\n  }\n}\n]\n\n'
    result = stream_http(PROVIDER, sse({"candidates": [text_candidate("Hi")]}) + error)
    assert result.content == "Hi"
    assert type(result.error) is errors.ProviderError
    assert result.error.status_code == 500
    assert result.error.provider_code == "INTERNAL"


def test_bare_json_lines_deliver_the_text_before_the_error(stream_http):
    # google-genai's own test body: bare JSON lines, the error last with no newline.
    chunk = json.dumps({"candidates": [text_candidate("test")]}).encode()
    body = chunk + b"\n" + b'{"error":{"code":500,"message":"Error","status":"INTERNAL"}}'
    result = stream_http(PROVIDER, body)
    assert result.content == "test"
    assert type(result.error) is errors.ProviderError


def test_daily_quota_error_in_stream_is_quota_exceeded(replay):
    error = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
                       "details": [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                                    "violations": [
                                        {"quotaId": "GenerateRequestsPerDayPerProject"}]}]}}
    result = replay(PROVIDER, [Event(json.dumps(error))])
    assert isinstance(result.error, errors.QuotaExceededError)


def test_body_ending_inside_unframed_json_is_a_truncation(stream_http):
    body = sse({"candidates": [text_candidate("Hi")]}) + GEMINI_429[:40]
    result = stream_http(PROVIDER, body)
    assert result.content == "Hi"
    assert isinstance(result.error, errors.StreamConnectionError)


def test_body_cut_mid_event_is_a_truncation(stream_http):
    final = sse({"candidates": [text_candidate("!", finish="STOP")]})
    result = stream_http(PROVIDER, sse({"candidates": [text_candidate("Hi")]}) + final[:-2])
    assert result.content == "Hi"
    assert isinstance(result.error, errors.StreamConnectionError)
    assert "ended before" in str(result.error)


def test_model_version_of_the_latest_event_names_later_chunks(stream_http):
    first = {"candidates": [text_candidate("a")], "modelVersion": "gemini-2.5-flash"}
    second = {"candidates": [text_candidate("b", finish="STOP")], "modelVersion": "gemini-2.5-pro"}
    result = stream_http(PROVIDER, sse(first) + sse(second))
    assert [chunk.model for chunk in result.chunks] == ["gemini-2.5-flash", "gemini-2.5-pro"]


# The short way for plain text (GeminiStreamParser._text_only) against the general one.
_START = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "index": 0}],
          "responseId": "r1", "modelVersion": "gemini-x"}


@pytest.mark.parametrize("candidate", [
    {"content": {"role": "model", "parts": [{"text": " there"}]}, "index": 0},
    {"content": {"parts": [{"text": " there"}]}},
    {"content": {"parts": [{"text": " there"}]}, "finishReason": ""},
    {"content": {"parts": [{"text": ""}]}},
    {"content": {"parts": [{"text": " there", "thought": True}]}},
    {"content": {"parts": [{"text": " there", "thoughtSignature": "c2ln"}]}},
    {"content": {"parts": [{"text": " a"}, {"text": " b"}]}},
    {"content": {"parts": [{"text": " there"}]}, "finishReason": "STOP"},
    {"content": {"parts": [{"text": " there"}]}, "index": 1},
    {"content": {"parts": [{"text": 7}]}},
    {"content": {"parts": ["text"]}},
    {"content": {"parts": [{"text": " x"}]}, "index": "0"},
    {"content": {"parts": [{"functionCall": {"name": "f", "args": {}}}]}},
])
@pytest.mark.parametrize("usage", [None, {"promptTokenCount": 3, "candidatesTokenCount": 2}])
def test_the_short_way_for_text_gives_what_the_general_way_gives(monkeypatch, candidate, usage):
    def chunks_and_error(short_way: bool):
        parser = get_provider("gemini").stream_parser("gemini-x")
        if not short_way:
            monkeypatch.setattr(parser, "_text_only", lambda data: None)
        event = {"candidates": [candidate], "responseId": "r1", "modelVersion": "gemini-x"}
        if usage is not None:
            event["usageMetadata"] = usage
        chunks = parser.feed(Event(data=json.dumps(_START)))
        try:
            chunks += parser.feed(Event(data=json.dumps(event)))
        except errors.LitestreamError as error:
            return [chunk.to_dict() for chunk in chunks], repr(error), parser.done
        return [chunk.to_dict() for chunk in chunks], None, parser.done

    assert chunks_and_error(short_way=True) == chunks_and_error(short_way=False)


def test_a_plain_piece_of_text_takes_the_short_way():
    parser = get_provider("gemini").stream_parser("gemini-x")
    parser.feed(Event(data=json.dumps(_START)))
    event = {"candidates": [{"content": {"role": "model", "parts": [{"text": " there"}]},
                             "index": 0}]}
    assert [chunk.content for chunk in parser._text_only(event)] == [" there"]
