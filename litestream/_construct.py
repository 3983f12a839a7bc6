"""Value objects built on the hot path: the same objects as litestream.types, made cheaply.

attrs' generated ``__init__`` runs each converter and a frozen-safe setattr
per field: about a microsecond per object, three objects per streamed token.
The builders below fill the slots directly through their descriptors and
give exactly the object the public constructor gives for the same,
already-converted values (tuples, a read-only event view): equality, hash,
repr and ``to_dict()`` cannot tell them apart (tests/test_chunk_golden.py).
Callers pass values of the right types; nothing here converts or checks.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

import attrs

from litestream.types import Choice, Chunk, Delta, ToolCallDelta, Usage

__all__ = [
    "make_choice", "make_chunk", "make_delta", "make_tool_call_delta", "text_chunk",
]

_new = object.__new__


def _slot_setters(cls: type, *names: str) -> Tuple[Any, ...]:
    """Return the slot descriptors' ``__set__`` of ``names``, checking they are all the fields.

    Where litestream.types put a descriptor of its own in front of a slot
    (``Chunk.choices``, ``Chunk.provider_event``), the slot's own is used.
    """
    assert tuple(field.name for field in attrs.fields(cls)) == names, cls
    return tuple(getattr(cls.__dict__[name], "slot", cls.__dict__[name]).__set__
                 for name in names)


(_d_role, _d_content, _d_tool_calls, _d_reasoning, _d_refusal, _d_details,
 _d_annotations) = _slot_setters(
    Delta, "role", "content", "tool_calls", "reasoning", "refusal", "reasoning_details",
    "annotations")
_c_index, _c_delta, _c_finish = _slot_setters(Choice, "index", "delta", "finish_reason")
(_k_id, _k_model, _k_provider, _k_created, _k_choices, _k_usage,
 _k_event) = _slot_setters(
    Chunk, "id", "model", "provider", "created", "choices", "usage", "provider_event")
_t_index, _t_id, _t_name, _t_arguments = _slot_setters(
    ToolCallDelta, "index", "id", "name", "arguments")


def make_delta(
    role: Optional[str] = None,
    content: Optional[str] = None,
    tool_calls: Tuple[ToolCallDelta, ...] = (),
    reasoning: Optional[str] = None,
    refusal: Optional[str] = None,
    reasoning_details: Tuple[Mapping[str, Any], ...] = (),
    annotations: Tuple[Mapping[str, Any], ...] = (),
) -> Delta:
    """Return ``Delta(...)`` of already-converted values (tuples), without attrs' ``__init__``."""
    delta = _new(Delta)
    _d_role(delta, role)
    _d_content(delta, content)
    _d_tool_calls(delta, tool_calls)
    _d_reasoning(delta, reasoning)
    _d_refusal(delta, refusal)
    _d_details(delta, reasoning_details)
    _d_annotations(delta, annotations)
    return delta


def make_choice(index: int, delta: Delta, finish_reason: Optional[str] = None) -> Choice:
    """Return ``Choice(index, delta, finish_reason)`` without attrs' ``__init__``."""
    choice = _new(Choice)
    _c_index(choice, index)
    _c_delta(choice, delta)
    _c_finish(choice, finish_reason)
    return choice


def make_tool_call_delta(
    index: int, id: Optional[str], name: Optional[str], arguments: Optional[str]
) -> ToolCallDelta:
    """Return ``ToolCallDelta(index, id, name, arguments)`` without attrs' ``__init__``."""
    call = _new(ToolCallDelta)
    _t_index(call, index)
    _t_id(call, id)
    _t_name(call, name)
    _t_arguments(call, arguments)
    return call


def make_chunk(
    id: Optional[str],
    model: Optional[str],
    provider: Optional[str],
    created: Optional[int],
    choices: Tuple[Choice, ...],
    usage: Optional[Usage],
    event: Optional[dict[str, Any]],
) -> Chunk:
    """Return ``Chunk(...)`` with ``choices`` a tuple and ``event`` a decoded dict or None.

    The event is stored as it is: ``Chunk.provider_event`` wraps it read-only,
    as the public constructor's converter does, when it is first read.
    """
    chunk = _new(Chunk)
    _k_id(chunk, id)
    _k_model(chunk, model)
    _k_provider(chunk, provider)
    _k_created(chunk, created)
    _k_choices(chunk, choices)
    _k_usage(chunk, usage)
    _k_event(chunk, event)
    return chunk


def text_chunk(
    id: Optional[str],
    model: Optional[str],
    provider: Optional[str],
    created: Optional[int],
    index: int,
    content: str,
    event: Optional[dict[str, Any]],
) -> Chunk:
    """Return the chunk of one streamed token: ``Chunk`` of one ``Choice(index, Delta(content))``.

    Equal to ``make_chunk(id, model, provider, created, (make_choice(index,
    make_delta(content=content)),), None, event)``, and made in one call:
    every provider makes one per streamed token. For the first choice (all
    but ``n > 1`` requests) only the text is stored, and ``Chunk.choices``
    builds the choice when it is first read; ``chunk.content`` reads the
    text as it is.
    """
    chunk = _new(Chunk)
    _k_id(chunk, id)
    _k_model(chunk, model)
    _k_provider(chunk, provider)
    _k_created(chunk, created)
    _k_choices(chunk, content if index == 0 else (make_choice(index, make_delta(content=content)),))
    _k_usage(chunk, None)
    _k_event(chunk, event)
    return chunk
