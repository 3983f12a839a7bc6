from __future__ import annotations

import json

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from openai_json import chunk_from_json, delta_from_json, response_from_json

from litestream.types import (
    Choice,
    Chunk,
    Delta,
    Message,
    ResponseChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
)

OPENAI_CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1727346190,
    "model": "gpt-4o",
    "choices": [{
        "index": 0,
        "delta": {
            "role": "assistant",
            "content": "Hi",
            "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}],
        },
        "finish_reason": None,
    }],
}

OPENAI_COMPLETION = {
    "id": "chatcmpl-2",
    "object": "chat.completion",
    "created": 1727346190,
    "model": "gpt-4o",
    "choices": [{
        "index": 0,
        "message": {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "f", "arguments": "{\"a\": 1}"}}],
        },
        "finish_reason": "tool_calls",
    }],
    "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
}


def test_chunk_round_trips_openai_json():
    chunk = chunk_from_json(OPENAI_CHUNK)
    assert chunk.provider == "openai"
    assert chunk.choices[0].delta.tool_calls[0].name == "get_weather"
    assert chunk.to_dict() == OPENAI_CHUNK


def test_response_round_trips_openai_json():
    response = response_from_json(OPENAI_COMPLETION)
    assert response.tool_calls == (ToolCall("call_1", "f", "{\"a\": 1}"),)
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage(3, 4, 7)
    assert response.to_dict() == OPENAI_COMPLETION


def test_usage_only_chunk_has_empty_choices_and_usage():
    chunk = Chunk(id="x", model="m", created=1, usage=Usage(1, 2))
    data = chunk.to_dict()
    assert data["choices"] == []
    assert data["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


def test_values_are_frozen_and_slotted():
    delta = Delta(content="x")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        delta.content = "y"  # type: ignore[misc]
    assert not hasattr(delta, "__dict__")
    assert attrs.evolve(delta, content="y").content == "y"


def test_reasoning_is_kept_apart_from_content():
    delta = delta_from_json({"content": "answer", "reasoning": "thinking"})
    assert delta.content == "answer"
    assert delta.reasoning == "thinking"
    assert delta.to_dict() == {"content": "answer", "reasoning_content": "thinking"}


def test_message_and_choice_defaults():
    choice = ResponseChoice(message=Message(content="hi"), finish_reason="stop")
    assert choice.to_dict() == {"index": 0, "message": {"role": "assistant", "content": "hi"},
                                "finish_reason": "stop"}
    assert Choice().to_dict() == {"index": 0, "delta": {}, "finish_reason": None}


text = st.one_of(st.none(), st.text(max_size=20))


@given(
    content=text,
    reasoning=text,
    role=st.sampled_from([None, "assistant"]),
    finish=st.sampled_from([None, "stop", "length", "tool_calls", "content_filter"]),
    calls=st.lists(st.builds(ToolCallDelta, index=st.integers(0, 5),
                             id=st.one_of(st.none(), st.text(min_size=1, max_size=8)),
                             name=text, arguments=text), max_size=3),
)
def test_chunk_json_round_trip_is_lossless(content, reasoning, role, finish, calls):
    chunk = Chunk(id="c", model="m", created=5, choices=[Choice(0, Delta(role, content, calls,
                                                                     reasoning), finish)])
    assume(content or reasoning or role or finish or calls)  # else there is nothing to read
    wire = json.loads(json.dumps(chunk.to_dict()))
    back = chunk_from_json(wire)  # read by the OpenAI parser: empty text is no text
    assert (back.choices[0].delta.content or None) == (content or None)
    assert (back.choices[0].delta.reasoning or None) == (reasoning or None)
    assert back.choices[0].finish_reason == finish
    assert [(c.index, c.id, c.name, c.arguments) for c in back.choices[0].delta.tool_calls] == [
        (c.index, c.id, c.name, c.arguments) for c in calls]
