from __future__ import annotations

import concurrent.futures
import json
import threading
from pathlib import Path
from typing import Any, Optional

import pytest
from openai_json import chunk_from_json, delta_from_json

import litestream.core
from litestream import errors
from litestream.channels import Channel
from litestream.streaming import (
    ResponseBuilder,
    accumulate_stream,
    collect_stream,
    consume_stream_with_callbacks,
    extract_content,
    extract_finish_reason,
    to_sse_stream,
)
from litestream.testing import FakeLLMServer
from litestream.types import Choice, Chunk, Delta, ToolCallDelta, Usage

FIXTURES = Path(__file__).parent / "fixtures" / "streams"

MESSAGES = [{"role": "user", "content": "Hi"}]


def chunk(
    content: Optional[str] = None,
    *,
    role: Optional[str] = None,
    tools: tuple[ToolCallDelta, ...] = (),
    reasoning: Optional[str] = None,
    finish: Optional[str] = None,
    usage: Optional[Usage] = None,
    index: int = 0,
    no_choices: bool = False,
    id: str = "chatcmpl-1",
) -> Chunk:
    choices = () if no_choices else (
        Choice(index, Delta(role=role, content=content, tool_calls=tools, reasoning=reasoning),
               finish),
    )
    return Chunk(id=id, model="m-1", provider="openai", created=1700000000,
                 choices=choices, usage=usage)


def filled(*chunks: Chunk, error: Optional[BaseException] = None) -> Channel[Chunk]:
    channel: Channel[Chunk] = Channel()
    for item in chunks:
        channel.put(item)
    if error is not None:
        channel.close_with_error(error)
    else:
        channel.close()
    return channel


def build(*chunks: Chunk) -> Any:
    builder = ResponseBuilder()
    for item in chunks:
        builder.add(item)
    return builder.build()


def calls(response: Any) -> list[tuple[Optional[str], str, str]]:
    return [(call.id, call.name, call.arguments) for call in response.tool_calls]


# -- extract_content / extract_finish_reason ---------------------------------


@pytest.mark.parametrize("metadata", [
    chunk(role="assistant"),
    chunk(""),
    chunk(finish="stop"),
    chunk(usage=Usage(3, 4), no_choices=True),
    chunk(tools=(ToolCallDelta(0, "call_1", "f", "{}"),)),
    chunk(reasoning="thinking"),
])
def test_extract_content_is_none_for_metadata_chunks(metadata: Chunk) -> None:
    assert extract_content(metadata) is None


def test_extract_content_gives_text_and_is_the_core_function() -> None:
    assert extract_content(chunk("Hi")) == "Hi"
    assert extract_content is litestream.core.extract_content


def test_extract_finish_reason() -> None:
    assert extract_finish_reason(chunk(finish="length")) == "length"
    assert extract_finish_reason(chunk("text")) is None
    assert extract_finish_reason(chunk(usage=Usage(1, 2), no_choices=True)) is None
    assert extract_finish_reason(None) is None


# -- ResponseBuilder ----------------------------------------------------------


def test_builder_joins_text_and_keeps_metadata() -> None:
    response = build(
        chunk("", role="assistant"), chunk("Hel"), chunk("lo"), chunk(finish="stop"),
        chunk(usage=Usage(5, 2), no_choices=True),
    )
    assert response.content == "Hello"
    assert response.finish_reason == "stop"
    assert response.usage == Usage(5, 2)
    assert (response.id, response.model, response.provider, response.created) == (
        "chatcmpl-1", "m-1", "openai", 1700000000)
    assert response.choices[0].message.role == "assistant"


def test_builder_reads_token_chunks_without_building_their_choices() -> None:
    from litestream._construct import text_chunk

    def tokens() -> list[Chunk]:
        return [text_chunk("chatcmpl-1", "m-1", "openai", 1700000000, 0, text, None)
                for text in ("Hel", "", "lo")]

    lazy = ResponseBuilder()
    chunks = tokens()
    for each in chunks:
        lazy.add(each)
    assert all(type(Chunk.choices.slot.__get__(each)) is str for each in chunks)
    eager = ResponseBuilder()
    for each in tokens():
        each.choices  # noqa: B018 - built first: the general way
        eager.add(each)
    assert lazy.build() == eager.build() and lazy.build().content == "Hello"


def test_builder_merges_parallel_tool_calls_by_index() -> None:
    response = build(
        chunk(role="assistant", tools=(ToolCallDelta(0, "call_a", "get_weather", ""),)),
        chunk(tools=(ToolCallDelta(1, "call_b", "get_time", ""),)),
        chunk(tools=(ToolCallDelta(0, arguments='{"city":'),)),
        chunk(tools=(ToolCallDelta(1, arguments='{"tz":'),)),
        chunk(tools=(ToolCallDelta(1, arguments='"UTC"}'),)),
        chunk(tools=(ToolCallDelta(0, arguments='"Paris"}'),)),
        chunk(finish="tool_calls"),
    )
    assert calls(response) == [
        ("call_a", "get_weather", '{"city":"Paris"}'),
        ("call_b", "get_time", '{"tz":"UTC"}'),
    ]
    assert response.content is None
    assert response.finish_reason == "tool_calls"


def test_builder_keeps_text_that_comes_before_tools() -> None:
    response = build(
        chunk("Let me "), chunk("check."),
        chunk(tools=(ToolCallDelta(0, "call_1", "lookup", '{"q":'),)),
        chunk(tools=(ToolCallDelta(0, arguments='"x"}'),)),
        chunk(finish="tool_calls"),
    )
    assert response.content == "Let me check."
    assert calls(response) == [("call_1", "lookup", '{"q":"x"}')]


def test_builder_separates_whole_calls_without_an_index() -> None:
    # Providers that send each call whole may leave every call at index 0.
    with_ids = build(
        chunk(tools=(ToolCallDelta(0, "call_1", "f", '{"a":1}'),)),
        chunk(tools=(ToolCallDelta(0, "call_2", "f", '{"a":2}'),)),
    )
    assert calls(with_ids) == [("call_1", "f", '{"a":1}'), ("call_2", "f", '{"a":2}')]
    without_ids = build(
        chunk(tools=(ToolCallDelta(0, None, "f", '{"a":1}'),)),
        chunk(tools=(ToolCallDelta(0, None, "g", '{"b":2}'),)),
    )
    assert calls(without_ids) == [(None, "f", '{"a":1}'), (None, "g", '{"b":2}')]
    # A missing index inside one delta reads as the position.
    delta = delta_from_json({"tool_calls": [
        {"id": "c1", "function": {"name": "f", "arguments": "{}"}},
        {"id": "c2", "function": {"name": "g", "arguments": "{}"}},
    ]})
    in_one_delta = build(Chunk(choices=(Choice(0, delta),)))
    assert calls(in_one_delta) == [("c1", "f", "{}"), ("c2", "g", "{}")]


def test_builder_keeps_reasoning_apart_from_content() -> None:
    response = build(
        chunk(reasoning="Think "), chunk(reasoning="hard."), chunk("Answer"), chunk(finish="stop"),
    )
    assert response.content == "Answer"
    assert response.choices[0].message.reasoning == "Think hard."


def test_builder_keeps_last_finish_reason_and_last_usage() -> None:
    response = build(
        chunk("a", usage=Usage(1, 1)), chunk(finish="length"), chunk(usage=Usage(9, 8),
                                                                     no_choices=True),
    )
    assert response.finish_reason == "length"
    assert response.usage == Usage(9, 8)


def test_builder_assembles_each_choice() -> None:
    response = build(chunk("zero", index=0), chunk("one", index=1), chunk(finish="stop", index=1))
    assert [choice.message.content for choice in response.choices] == ["zero", "one"]
    assert response.choices[1].finish_reason == "stop"


def test_builder_of_nothing_has_an_empty_choice() -> None:
    response = ResponseBuilder(provider="openai", model="gpt").build()
    assert (response.content, response.provider, response.model) == (None, "openai", "gpt")


# -- collect_stream -----------------------------------------------------------


def test_collect_stream_assembles_and_closes() -> None:
    channel = filled(chunk("Hi", role="assistant"), chunk(" there"), chunk(finish="stop"))
    response = collect_stream(channel)
    assert response.content == "Hi there"
    assert channel.closed


def test_collect_stream_raises_the_stream_error_with_partial_content() -> None:
    channel = filled(chunk("Par"), chunk("tial"),
                     error=errors.ProviderError("boom", provider="openai"))
    with pytest.raises(errors.ProviderError) as caught:
        collect_stream(channel)
    assert caught.value.partial_content == "Partial"


def test_collect_stream_timeout_raises_total_timeout_and_closes() -> None:
    channel: Channel[Chunk] = Channel()
    channel.put(chunk("so far"))
    with pytest.raises(errors.TotalTimeout) as caught:
        collect_stream(channel, timeout=0.05)
    assert caught.value.partial_content == "so far"
    assert channel.closed


def test_collect_stream_does_not_mistake_a_stream_idle_timeout_for_its_own() -> None:
    channel = filled(chunk("x"), error=errors.IdleTimeout("idle"))
    with pytest.raises(errors.IdleTimeout):
        collect_stream(channel, timeout=5)


# -- consume_stream_with_callbacks --------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.threads: set[str] = set()

    def on_chunk(self, value: Chunk) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(("chunk", extract_content(value)))

    def on_complete(self, response: Any) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(("complete", response.content))

    def on_error(self, error: BaseException) -> None:
        self.threads.add(threading.current_thread().name)
        self.events.append(("error", error))


def test_callbacks_run_in_order_then_complete_once() -> None:
    recorder = Recorder()
    channel = filled(chunk("a", role="assistant"), chunk("b"), chunk(finish="stop"))
    future = consume_stream_with_callbacks(
        channel, recorder.on_chunk, recorder.on_complete, recorder.on_error)
    response = future.result(timeout=5)
    assert response.content == "ab"
    assert recorder.events == [("chunk", "a"), ("chunk", "b"), ("chunk", None),
                               ("complete", "ab")]
    assert recorder.threads == {"litestream-callbacks"}


def test_callbacks_stream_error_goes_to_on_error_once() -> None:
    recorder = Recorder()
    failure = errors.StreamConnectionError("cut")
    channel = filled(chunk("a"), error=failure)
    future = consume_stream_with_callbacks(
        channel, recorder.on_chunk, recorder.on_complete, recorder.on_error)
    with pytest.raises(errors.StreamConnectionError):
        future.result(timeout=5)
    assert recorder.events == [("chunk", "a"), ("error", failure)]
    assert failure.partial_content == "a"


def test_exception_in_on_chunk_closes_stream_and_reaches_on_error_and_future() -> None:
    recorder = Recorder()
    channel: Channel[Chunk] = Channel()
    channel.put(chunk("a"))
    channel.put(chunk("b"))  # left open: only the failing callback can end this

    def on_chunk(value: Chunk) -> None:
        recorder.on_chunk(value)
        raise RuntimeError("callback bug")

    future = consume_stream_with_callbacks(channel, on_chunk, recorder.on_complete,
                                           recorder.on_error)
    with pytest.raises(RuntimeError, match="callback bug"):
        future.result(timeout=5)
    assert channel.closed
    assert [kind for kind, _ in recorder.events] == ["chunk", "error"]
    assert isinstance(recorder.events[1][1], RuntimeError)


def test_exception_in_on_complete_goes_to_the_future_not_on_error() -> None:
    recorder = Recorder()

    def on_complete(response: Any) -> None:
        raise ValueError("complete bug")

    future = consume_stream_with_callbacks(filled(chunk("a")), recorder.on_chunk, on_complete,
                                           recorder.on_error)
    with pytest.raises(ValueError):
        future.result(timeout=5)
    assert [kind for kind, _ in recorder.events] == ["chunk"]


def test_cancelling_the_future_closes_the_stream() -> None:
    recorder = Recorder()
    errors_seen = threading.Event()
    channel: Channel[Chunk] = Channel()
    channel.put(chunk("first"))
    first_seen = threading.Event()

    def on_chunk(value: Chunk) -> None:
        recorder.on_chunk(value)
        first_seen.set()

    def on_error(error: BaseException) -> None:
        recorder.on_error(error)
        errors_seen.set()

    future = consume_stream_with_callbacks(channel, on_chunk, recorder.on_complete, on_error)
    assert first_seen.wait(5)
    assert future.cancel()
    assert channel.closed
    assert future.cancelled()
    assert errors_seen.wait(5)
    assert [kind for kind, _ in recorder.events] == ["chunk", "error"]
    assert isinstance(recorder.events[1][1], concurrent.futures.CancelledError)


def test_callbacks_without_optional_callbacks() -> None:
    seen: list[Optional[str]] = []
    future = consume_stream_with_callbacks(filled(chunk("x"), chunk("y")),
                                           lambda c: seen.append(extract_content(c)))
    assert future.result(timeout=5).content == "xy"
    assert seen == ["x", "y"]


# -- accumulate_stream --------------------------------------------------------


def test_accumulate_stream_gives_growing_text() -> None:
    source = filled(chunk("", role="assistant"), chunk("Hel"), chunk("lo"), chunk("!"),
                    chunk(finish="stop"))
    assert list(accumulate_stream(source)) == ["Hel", "Hello", "Hello!"]


def test_accumulate_stream_propagates_the_error_after_the_values() -> None:
    source = filled(chunk("a"), chunk("b"), error=errors.ProtocolError("bad frame"))
    accumulated = accumulate_stream(source)
    assert accumulated.get(timeout=5) == "a"
    assert accumulated.get(timeout=5) == "ab"
    with pytest.raises(errors.ProtocolError):
        accumulated.get(timeout=5)
    assert accumulated.get(timeout=5) is None


def test_closing_the_accumulated_channel_closes_the_source() -> None:
    source: Channel[Chunk] = Channel()
    source.put(chunk("a"))
    accumulated = accumulate_stream(source)
    assert accumulated.get(timeout=5) == "a"
    accumulated.close()
    assert source.closed


# -- to_sse_stream ------------------------------------------------------------


def parse_sse(raw: bytes) -> list[tuple[Optional[str], str]]:
    """Return (event, data) pairs; comments come back as ("comment", text)."""
    events = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                event = "comment"
                data.append(line[1:].strip())
            elif line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                data.append(line[len("data: "):])
        events.append((event, "\n".join(data)))
    return events


def test_to_sse_stream_emits_openai_chunks_then_done() -> None:
    chunks = [chunk("Hé", role="assistant"), chunk("llo"), chunk(finish="stop"),
              chunk(usage=Usage(2, 3), no_choices=True)]
    raw = b"".join(to_sse_stream(filled(*chunks)))
    events = parse_sse(raw)
    assert events[-1] == (None, "[DONE]")
    payloads = [json.loads(data) for _, data in events[:-1]]
    assert payloads == [item.to_dict() for item in chunks]
    assert chunk_from_json(payloads[0]) == chunks[0]
    assert b'", "' not in raw  # compact JSON


def test_to_sse_stream_ends_with_an_error_event() -> None:
    secret = "sk-live-abcdefghijklmnop1234"
    failure = errors.RateLimitError(f"slow down, key {secret}", provider="openai",
                                    model="gpt", status_code=429, provider_code="rate_limit",
                                    retry_after=2.0)
    raw = b"".join(to_sse_stream(filled(chunk("a"), error=failure)))
    events = parse_sse(raw)
    assert [event for event, _ in events] == [None, "error"]
    body = json.loads(events[1][1])["error"]
    assert body["type"] == "RateLimitError"
    assert body["code"] == "rate_limit"
    assert body["status_code"] == 429
    assert body["retry_after"] == 2.0
    assert secret not in raw.decode()
    assert "slow down" in body["message"]


def test_closing_the_sse_generator_closes_the_stream() -> None:
    channel: Channel[Chunk] = Channel()
    channel.put(chunk("a"))
    events = to_sse_stream(channel, heartbeat=None)
    assert next(events).startswith(b"data: ")
    events.close()
    assert channel.closed


# -- against FakeLLMServer ----------------------------------------------------


def open_stream(server: FakeLLMServer, provider: str = "openai", **config: Any) -> Any:
    return litestream.core.completion(
        provider, "test-model", {"messages": MESSAGES, "stream": True},
        {"api_key": "test-key", "api_base": server.api_base(provider), **config})


def test_heartbeats_flow_while_upstream_stalls_and_close_disconnects() -> None:
    with FakeLLMServer() as server:
        server.script(text="one two three four", stall_after=2)
        events = to_sse_stream(open_stream(server), heartbeat=0.05)
        received: list[bytes] = []
        text = ""
        heartbeats_after_the_text = 0
        try:
            # Heartbeats may also come before the first chunk (a slow start):
            # count only those sent once both chunks are in, while upstream stalls.
            for raw in events:
                received.append(raw)
                if len(received) > 200:  # 10 s of heartbeats: the chunks never came
                    break
                if raw.startswith(b"data: "):
                    text += extract_content(chunk_from_json(json.loads(raw[6:]))) or ""
                elif raw == b": keep-alive\n\n" and text == "one two":
                    heartbeats_after_the_text += 1
                    if heartbeats_after_the_text >= 3:
                        break
        finally:
            events.close()
        assert text == "one two"
        assert heartbeats_after_the_text == 3
        assert received[-1] == b": keep-alive\n\n"
        assert server.wait_for_disconnect(5)


def test_collect_stream_against_a_live_stream_with_tools_and_reasoning() -> None:
    with FakeLLMServer() as server:
        server.script(text="Checking.", reasoning="let me think",
                      tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"},
                                   "id": "call_1"},
                                  {"name": "get_time", "arguments": {"tz": "UTC"},
                                   "id": "call_2"}],
                      usage={"prompt_tokens": 7, "completion_tokens": 9})
        response = collect_stream(open_stream(server), timeout=10)
    assert response.content == "Checking."
    assert response.choices[0].message.reasoning == "let me think"
    assert [(c.id, c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris"}), ("call_2", "get_time", {"tz": "UTC"})]
    assert response.finish_reason == "tool_calls"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (7, 9)
    assert response.provider == "openai"


def _transcripts() -> list[Path]:
    return sorted(FIXTURES.glob("*/*.txt"))


@pytest.mark.parametrize("transcript", _transcripts(),
                         ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_collect_stream_matches_every_recorded_transcript(transcript: Path) -> None:
    spec = json.loads(transcript.with_suffix(".json").read_text(encoding="utf-8"))
    provider, expected = spec["provider"], spec["expected"]
    with FakeLLMServer() as server:
        server.replay(transcript, content_type=spec.get("content_type"), piece_size=61)
        stream = open_stream(server, provider)
        if expected["error"] is not None:
            with pytest.raises(errors.LitestreamError) as caught:
                collect_stream(stream, timeout=10)
            error = caught.value
            assert error.message == expected["error"]["message"]
            assert error.provider_code == expected["error"]["type"]
            assert (error.partial_content or "") == expected["content"]
            return
        response = collect_stream(stream, timeout=10)
    assert (response.content or "") == expected["content"]
    assert response.finish_reason == expected["finish_reason"]
    if expected["usage"] is None:
        assert response.usage is None
    else:
        assert response.usage is not None
        assert response.usage.prompt_tokens == expected["usage"]["prompt_tokens"]
        assert response.usage.completion_tokens == expected["usage"]["completion_tokens"]
    assert [(c.id, c.name, json.loads(c.arguments)) for c in response.tool_calls] == [
        (c["id"], c["name"], json.loads(c["arguments"])) for c in expected["tool_calls"]]
    assert response.provider == provider


def test_closing_unstarted_sse_events_closes_the_stream() -> None:
    channel: Channel[Chunk] = Channel()
    to_sse_stream(channel, first=chunk("a")).close()
    assert channel.closed


def test_to_sse_stream_emits_a_first_chunk_taken_earlier() -> None:
    raw = b"".join(to_sse_stream(filled(chunk("b")), first=chunk("a")))
    contents = [json.loads(data)["choices"][0]["delta"]["content"]
                for _, data in parse_sse(raw)[:-1]]
    assert contents == ["a", "b"]
