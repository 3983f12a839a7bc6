from __future__ import annotations

import copy
import json
import pickle
import threading
import types

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
    _EventJSON,
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


# -- chunks made as one token of text (litestream._construct.text_chunk) -------


def _token_chunk(text="hi", index=0, event=None):
    from litestream._construct import text_chunk

    return text_chunk("id-1", "m", "openai", 7, index, text, event)


def _eager_token_chunk(text="hi", index=0, event=None):
    return Chunk(id="id-1", model="m", provider="openai", created=7,
                 choices=[Choice(index, Delta(content=text))], provider_event=event)


def test_a_token_chunk_reads_its_text_without_building_its_choice():
    chunk = _token_chunk("hi")
    assert chunk.content == "hi" and chunk.has_content and chunk.finish_reason is None
    assert Chunk.choices.slot.__get__(chunk) == "hi"  # still the text alone
    assert not _token_chunk("").has_content and _token_chunk("").content is None


def test_a_token_chunk_builds_its_choice_once_on_first_read():
    chunk = _token_chunk("hi")
    choices = chunk.choices
    assert choices == (Choice(0, Delta(content="hi")),)
    assert type(choices) is tuple and chunk.choices is choices


@pytest.mark.parametrize("index", [0, 2])
@pytest.mark.parametrize("stored", ["dict", "json text", None])
def test_a_token_chunk_is_indistinguishable_from_one_built_by_the_constructor(index, stored):
    event = {"choices": [{"index": index, "delta": {"content": "hi"}}]} if stored else None
    eager = _eager_token_chunk("hi", index, event)

    def fresh() -> Chunk:
        if stored == "json text":
            return _token_chunk("hi", index, _EventJSON(json.dumps(event)))
        return _token_chunk("hi", index, event)

    assert fresh() == eager and eager == fresh() and hash(fresh()) == hash(eager)
    assert repr(fresh()) == repr(eager) and fresh().to_dict() == eager.to_dict()
    assert attrs.asdict(fresh()) == attrs.asdict(eager)
    assert attrs.evolve(fresh(), id="x") == attrs.evolve(eager, id="x")
    assert copy.copy(fresh()) == eager
    assert fresh().provider_event == eager.provider_event
    assert attrs.evolve(fresh(), id="x").provider_event == eager.provider_event
    if event is None:  # a read-only event view cannot be pickled, whichever way it was built
        assert pickle.loads(pickle.dumps(fresh())) == eager


def test_a_token_chunk_with_a_choice_read_compares_unequal_to_other_text():
    assert _token_chunk("hi") != _token_chunk("ho")
    assert _token_chunk("hi") != _eager_token_chunk("ho")


def test_a_stored_event_reads_as_the_same_read_only_view():
    event = {"choices": [{"index": 0, "delta": {"content": "hi"}}]}
    chunk = _token_chunk("hi", event=event)
    view = chunk.provider_event
    assert view == event and view is chunk.provider_event
    with pytest.raises(TypeError):
        view["choices"] = []  # type: ignore[index]
    assert _token_chunk("hi").provider_event is None


def test_an_event_stored_as_its_json_text_is_decoded_once_into_a_read_only_view():
    text = '{"id": "c1", "choices": [{"index": 0, "delta": {"content": "h\\u00ef"}}]}'
    chunk = _token_chunk("h\u00ef", event=_EventJSON(text))
    assert Chunk.provider_event.slot.__get__(chunk) == text  # not decoded until read
    view = chunk.provider_event
    assert view == json.loads(text) and view is chunk.provider_event
    assert isinstance(view, types.MappingProxyType)
    with pytest.raises(TypeError):
        view["id"] = "c2"  # type: ignore[index]


def test_threads_reading_a_fresh_token_chunk_at_once_see_equal_choices():
    chunks = [_token_chunk(str(number)) for number in range(2000)]
    seen: list[list[tuple]] = [[], []]
    barrier = threading.Barrier(2)

    def read(slot: int) -> None:
        barrier.wait()
        seen[slot] = [chunk.choices for chunk in chunks]

    threads = [threading.Thread(target=read, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen[0] == seen[1] == [(Choice(0, Delta(content=str(n))),) for n in range(2000)]


def test_assigning_choices_stays_forbidden():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        _token_chunk().choices = ()  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        _token_chunk().provider_event = {}  # type: ignore[misc]
