"""The Responses API provider: recorded streams, every event type, the SDK's own reading."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import litestream as ls
from litestream import errors
from litestream.framing import SSEDecoder
from litestream.providers import get_provider
from litestream.providers._responses_events import EVENT_HANDLING, KEPT, STRUCTURAL
from litestream.providers.openai_responses import build_body
from litestream.streaming import ResponseBuilder
from litestream.testing import FakeLLMServer
from litestream.testing.encoders.base import ToolSpec
from litestream.testing.encoders.responses import ResponsesScript, stream_body
from litestream.wire import Event

PROVIDER = "openai_responses"
FIXTURES = Path(__file__).parents[1] / "fixtures" / "streams" / PROVIDER
MESSAGES = [{"role": "user", "content": "Hi"}]


# -- recorded streams --------------------------------------------------------


def test_every_recorded_stream_gives_its_expected_result(stream_case, replay_body):
    result = replay_body(PROVIDER, stream_case.body)
    expected = stream_case.expected
    assert result.content == expected["content"]
    assert result.finish_reason == expected["finish_reason"]
    assert (result.reasoning or None) == expected["reasoning"]
    refusal = "".join(c.delta.refusal or "" for chunk in result.chunks for c in chunk.choices)
    assert (refusal or None) == expected.get("refusal")
    assert [(c["id"], c["name"], json.loads(c["arguments"])) for c in result.tool_calls] == [
        (c["id"], c["name"], json.loads(c["arguments"])) for c in expected["tool_calls"]]
    usages = [chunk.usage for chunk in result.chunks if chunk.usage is not None]
    if expected["usage"] is None:
        assert usages == []
    else:
        usage = usages[-1]
        assert {"prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_tokens": usage.cached_tokens,
                "reasoning_tokens": usage.reasoning_tokens} == expected["usage"]
        assert result.chunks[-1].usage is usage, "usage rides on the final chunk"
    if expected["error"] is None:
        assert result.error is None
    else:
        assert isinstance(result.error, errors.LitestreamError)
        assert result.error.message == expected["error"]["message"]
        assert result.error.provider_code == expected["error"]["type"]
        assert result.error.provider == PROVIDER
    assert len(result.finish_reasons) <= 1
    for chunk in result.chunks:
        assert chunk.provider == PROVIDER and chunk.model and chunk.created
        assert chunk.provider_event is not None


def test_a_quota_error_event_is_a_quota_error_and_a_server_failure_is_retryable(replay_body):
    quota = replay_body(PROVIDER, (FIXTURES / "error_event.txt").read_text())
    failed = replay_body(PROVIDER, (FIXTURES / "failed_midstream.txt").read_text())
    assert isinstance(quota.error, errors.QuotaExceededError)
    assert isinstance(failed.error, errors.ProviderError) and failed.error.retryable


def test_the_parser_survives_arbitrary_events(fuzz_parser):
    fuzz_parser(PROVIDER, examples=150)


# -- every event type ----------------------------------------------------------


def _sdk_event_types() -> set[str]:
    union = pytest.importorskip("openai.types.responses.response_stream_event")
    members = typing.get_args(typing.get_args(union.ResponseStreamEvent)[0])
    return {typing.get_args(member.model_fields["type"].annotation)[0] for member in members}


def test_every_event_type_of_the_specification_has_a_deliberate_home():
    assert _sdk_event_types() <= set(EVENT_HANDLING)


@pytest.mark.parametrize("kind", sorted(EVENT_HANDLING) + ["response.from_the_future"])
def test_each_event_type_is_mapped_or_kept_on_a_chunk(kind):
    parser = get_provider(PROVIDER).stream_parser("m")
    parser.feed(Event(json.dumps({"type": "response.created", "response": {"id": "resp_1"}})))
    payload = {"type": kind, "item_id": "x", "output_index": 0, "delta": "d",
               "response": {"id": "resp_1", "status": "completed",
                            "incomplete_details": {"reason": "max_output_tokens"}},
               "item": {"type": "web_search_call", "id": "ws_1"}, "annotation": {"type": "t"},
               "error": {"code": "server_error", "message": "boom"}}
    try:
        chunks = parser.feed(Event(json.dumps(payload), kind))
    except errors.LitestreamError:
        assert kind in ("error", "response.failed")
        return
    handling = EVENT_HANDLING.get(kind, KEPT)
    if handling == KEPT:
        assert len(chunks) == 1 and chunks[0].choices == ()
        assert chunks[0].provider_event["type"] == kind
    elif handling == STRUCTURAL:
        assert chunks == []
    for chunk in chunks:
        assert chunk.provider_event["type"] == kind
        with pytest.raises(TypeError):
            chunk.provider_event["type"] = "changed"  # read-only


def test_a_citation_becomes_an_annotation_in_openai_shape():
    parser = get_provider(PROVIDER).stream_parser("m")
    annotation = {"type": "url_citation", "url": "https://example.com", "title": "Ex",
                  "start_index": 0, "end_index": 4}
    chunks = parser.feed(Event(json.dumps({
        "type": "response.output_text.annotation.added", "item_id": "msg_1", "output_index": 0,
        "content_index": 0, "annotation_index": 0, "annotation": annotation})))
    builder = ResponseBuilder()
    for chunk in chunks:
        builder.add(chunk)
    message = builder.build().choices[0].message
    assert message.to_dict()["annotations"] == [{"type": "url_citation", "url_citation": {
        "url": "https://example.com", "title": "Ex", "start_index": 0, "end_index": 4}}]


# -- the SDK's own accumulator, at every split of the bytes ---------------------


def _own_transcripts() -> list[bytes]:
    call = ToolSpec("call_w1", "get_weather", '{"city":"Paris"}')
    return [
        stream_body(ResponsesScript(text_pieces=("Sun", "ny ", "and ×", " warm"),
                                    reasoning_pieces=("Think", "ing…"), reasoning_tokens=5,
                                    created_at=1)),
        stream_body(ResponsesScript(reasoning_pieces=("Weather", " first"), tool_calls=(call,),
                                    text_pieces=(), created_at=1)),
        stream_body(ResponsesScript(text_pieces=("Once", " upon"), status="incomplete",
                                    created_at=1)),
    ]


TRANSCRIPTS = [path.read_bytes() for path in sorted(FIXTURES.glob("*.txt"))] + _own_transcripts()


def _summary_of_sdk(body: bytes) -> dict[str, Any]:
    """What the openai SDK's ResponseStreamState makes of a body."""
    responses_lib = pytest.importorskip("openai.lib.streaming.responses._responses")
    from openai._models import construct_type
    from openai._types import omit
    from openai.types.responses import ResponseStreamEvent

    state = responses_lib.ResponseStreamState(input_tools=omit, text_format=omit)
    final: Optional[Any] = None
    for event in SSEDecoder().feed(body):
        sdk_event = construct_type(type_=ResponseStreamEvent, value=json.loads(event.data))
        for emitted in state.handle_event(sdk_event):
            if emitted.type in ("response.completed", "response.incomplete", "response.failed"):
                final = emitted.response
    assert final is not None
    calls = [(item.call_id, item.name, item.arguments) for item in final.output
             if item.type == "function_call"]
    summaries = ["".join(part.text for part in item.summary) for item in final.output
                 if item.type == "reasoning"]
    usage = final.usage and (final.usage.input_tokens, final.usage.output_tokens,
                             final.usage.input_tokens_details.cached_tokens,
                             final.usage.output_tokens_details.reasoning_tokens)
    return {"text": final.output_text, "calls": calls, "reasoning": "\n\n".join(summaries),
            "usage": usage, "status": final.status}


def _summary_of_litestream(body: bytes, cuts: list[int]) -> dict[str, Any]:
    decoder = SSEDecoder()
    parser = get_provider(PROVIDER).stream_parser("m")
    builder = ResponseBuilder()
    status = "completed"
    start = 0
    try:
        for end in [*cuts, len(body)]:
            for event in decoder.feed(body[start:end]):
                if not parser.done:
                    for chunk in parser.feed(event):
                        builder.add(chunk)
            start = end
        for event in decoder.close():
            for chunk in parser.feed(event):
                builder.add(chunk)
    except errors.LitestreamError:
        status = "failed"
    response = builder.build()
    if response.finish_reason == "length":
        status = "incomplete"
    usage = response.usage and (response.usage.prompt_tokens, response.usage.completion_tokens,
                                response.usage.cached_tokens, response.usage.reasoning_tokens)
    message = response.choices[0].message
    return {"text": message.content or "", "reasoning": message.reasoning or "",
            "calls": [(call.id, call.name, call.arguments) for call in message.tool_calls],
            "usage": usage, "status": status}


@st.composite
def _body_and_cuts(draw: Any) -> tuple[bytes, list[int]]:
    body = draw(st.sampled_from(TRANSCRIPTS))
    cuts = draw(st.lists(st.integers(1, len(body) - 1), max_size=12, unique=True))
    return body, sorted(cuts)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(_body_and_cuts())
def test_litestream_reads_every_transcript_as_the_sdk_does_at_every_split(body_and_cuts):
    body, cuts = body_and_cuts
    sdk = _summary_of_sdk(body)
    ours = _summary_of_litestream(body, cuts)
    if sdk["status"] == "failed":
        assert ours["status"] == "failed"
        assert ours["text"] == sdk["text"]
        return
    assert ours == sdk


def test_every_transcript_is_read_as_the_sdk_does_in_one_piece():
    for body in TRANSCRIPTS:
        sdk = _summary_of_sdk(body)
        ours = _summary_of_litestream(body, [])
        assert ours["text"] == sdk["text"] and ours["status"] == sdk["status"]
        if sdk["status"] != "failed":
            assert ours == sdk


# -- requests ---------------------------------------------------------------------


def test_a_chat_request_becomes_a_responses_request():
    body = build_body("gpt-5-mini", {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather?"},
                                         {"type": "image_url", "image_url": {"url": "https://i"}}]},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
            {"type": "web_search"}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "max_tokens": 100,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {}}},
        "stream": True,
        "temperature": 0.5,
    })
    assert body["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"},
                                     {"type": "input_image", "image_url": "https://i"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
    ]
    assert body["tools"] == [
        {"type": "function", "name": "get_weather", "description": "Weather.",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
        {"type": "web_search"}]
    assert body["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert body["max_output_tokens"] == 100
    assert body["text"] == {"format": {"type": "json_schema", "name": "w", "schema": {}}}
    assert body["stream"] is True and body["temperature"] == 0.5
    assert "store" not in body and "include" not in body and "max_tokens" not in body


def test_reasoning_effort_asks_for_a_summary_and_the_encrypted_reasoning():
    body = build_body("o4-mini", {"messages": MESSAGES, "reasoning_effort": "low"})
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["store"] is False
    stored = build_body("o4-mini", {"messages": MESSAGES, "reasoning_effort": "low",
                                    "store": True})
    assert stored["store"] is True


@pytest.mark.parametrize("request_keys", [{"stop": "x"}, {"n": 2}, {"response_format": "json"}])
def test_what_responses_cannot_express_is_a_configuration_error(request_keys):
    with pytest.raises(errors.ConfigurationError):
        build_body("m", {"messages": MESSAGES, **request_keys})


# -- over HTTP ---------------------------------------------------------------------


def test_a_whole_response_is_read_without_streaming():
    with FakeLLMServer() as server:
        server.script(text="Hello there", reasoning="hm",
                      usage={"prompt_tokens": 3, "completion_tokens": 4})
        response = ls.completion(PROVIDER, "gpt-5-mini", messages=MESSAGES, api_key="k",
                                 api_base=server.api_base(PROVIDER))
        assert server.last_request.path == "/v1/responses"
    assert response.content == "Hello there"
    assert response.choices[0].message.reasoning == "hm"
    assert response.finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (3, 4)
    types = [part["type"] for part in response.choices[0].message.reasoning_details]
    assert types == ["reasoning.summary", "reasoning.encrypted"]


@pytest.mark.parametrize("options, error_class", [
    ({"status": "failed"}, errors.ProviderError),
    ({"status": "incomplete", "incomplete_reason": "content_filter"}, errors.ContentFilterError),
    ({"error_after": 1}, errors.ProviderError),
])
def test_failures_arrive_after_the_text_that_came_first(options, error_class):
    with FakeLLMServer() as server:
        server.script_responses(text_pieces=("one", " two"), **options)
        stream = ls.completion(PROVIDER, "m", messages=MESSAGES, stream=True, api_key="k",
                               api_base=server.api_base(PROVIDER))
        texts = []
        with pytest.raises(error_class):
            for chunk in stream:
                texts.append(chunk.content or "")
    assert "".join(texts) == ("one" if "error_after" in options else "one two")


def test_a_refusal_is_kept_apart_from_content():
    with FakeLLMServer() as server:
        server.script_responses(refusal_pieces=("I can't", " help."))
        response = ls.collect_stream(ls.completion(
            PROVIDER, "m", messages=MESSAGES, stream=True, api_key="k",
            api_base=server.api_base(PROVIDER)))
    assert response.content is None
    assert response.choices[0].message.refusal == "I can't help."
    assert response.choices[0].message.to_dict()["refusal"] == "I can't help."


def test_the_cli_chats_with_openai_responses_by_provider_and_model():
    import os
    import subprocess
    import sys

    with FakeLLMServer() as server:
        server.script(text="Hi from Responses")
        env = dict(os.environ, OPENAI_API_KEY="k",
                   OPENAI_BASE_URL=server.api_base(PROVIDER),
                   PYTHONPATH=str(Path(__file__).resolve().parents[2]))
        done = subprocess.run(
            [sys.executable, "-m", "litestream", "chat", "-m", "openai_responses/gpt-5-mini"],
            input="hello\n", capture_output=True, text=True, env=env, timeout=60)
        assert [request.path for request in server.requests] == ["/v1/responses"]
    assert done.returncode == 0, done.stderr
    assert "Hi from Responses" in done.stdout
