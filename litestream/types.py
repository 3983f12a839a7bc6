"""Value types: the normalized, OpenAI-shaped chunks and responses.

Every class here is a frozen, slotted attrs class: parsing builds one once and
nothing mutates it afterwards (use :func:`attrs.evolve` to derive a changed
copy). ``to_dict()`` gives exactly the JSON shape of OpenAI's
``chat.completion.chunk`` / ``chat.completion`` objects, so a chunk can be
re-emitted to any OpenAI client. Reading that shape back is the OpenAI
provider's job (``get_provider("openai")``): there is one parser of it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Mapping, Optional, Tuple, Union

import attrs

__all__ = [
    "FINISH_REASONS",
    "Chunk",
    "Choice",
    "Delta",
    "Message",
    "Response",
    "ResponseChoice",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "extract_content",
]

#: The normalized finish reasons; every provider's reason maps onto one of these.
FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter"})


def _drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


def _add_calls_and_reasoning(
    data: dict[str, Any],
    tool_calls: Tuple[Union[ToolCallDelta, ToolCall], ...],
    reasoning: Optional[str],
) -> dict[str, Any]:
    """Add ``tool_calls`` (when any) and ``reasoning_content`` (when set) to a delta or message."""
    if tool_calls:
        data["tool_calls"] = [call.to_dict() for call in tool_calls]
    if reasoning is not None:
        data["reasoning_content"] = reasoning
    return data


def _add_extras(
    data: dict[str, Any],
    refusal: Optional[str],
    reasoning_details: Tuple[Mapping[str, Any], ...],
    annotations: Tuple[Mapping[str, Any], ...],
) -> dict[str, Any]:
    """Add ``refusal``, ``reasoning_details`` and ``annotations`` when set (else nothing)."""
    if refusal is not None:
        data["refusal"] = refusal
    if reasoning_details:
        data["reasoning_details"] = [dict(part) for part in reasoning_details]
    if annotations:
        data["annotations"] = [dict(annotation) for annotation in annotations]
    return data


@attrs.frozen
class Usage:
    """Token counts of one completion.

    ``total_tokens`` defaults to the sum of the other two when not given.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = attrs.field()
    #: Prompt tokens served from the provider's cache (included in
    #: ``prompt_tokens``), when the provider says; ``None`` otherwise.
    cached_tokens: Optional[int] = attrs.field(default=None, kw_only=True)
    #: Reasoning tokens (included in ``completion_tokens``), when the provider says.
    reasoning_tokens: Optional[int] = attrs.field(default=None, kw_only=True)
    #: True when litestream estimated the counts (the provider sent none:
    #: a stream closed, broken out of or failed before its usage came).
    estimated: bool = attrs.field(default=False, kw_only=True)

    @total_tokens.default
    def _sum_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        """Return OpenAI's ``usage`` object.

        ``prompt_tokens_details.cached_tokens`` and
        ``completion_tokens_details.reasoning_tokens`` are present only when known.
        """
        data: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_tokens is not None:
            data["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens is not None:
            data["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return data

@attrs.frozen
class ToolCallDelta:
    """One fragment of a streamed tool call.

    Fragments with the same ``index`` belong to the same call: the first one
    usually carries ``id`` and ``name``, later ones only more ``arguments``
    text, which is concatenated.
    """

    index: int = 0
    id: Optional[str] = None
    name: Optional[str] = None
    arguments: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """Return one entry of OpenAI's ``delta.tool_calls`` list."""
        data: dict[str, Any] = {"index": self.index}
        if self.id is not None:
            data["id"] = self.id
            data["type"] = "function"
        function = _drop_none({"name": self.name, "arguments": self.arguments})
        if function:
            data["function"] = function
        return data

@attrs.frozen
class Delta:
    """What one chunk adds to a choice: a role, text, tool-call fragments or reasoning.

    ``reasoning`` holds thinking/reasoning text, which is never mixed into
    ``content``; ``refusal`` holds a model's refusal text, also kept apart
    (OpenAI's ``delta.refusal``). ``reasoning_details`` are fragments of the
    opaque reasoning parts a provider wants back on the next turn, in
    OpenRouter's convention (``{"type": "reasoning.text" | "reasoning.encrypted"
    | "reasoning.summary", "index", "format", "id", ...}``; fragments with the
    same ``index`` belong to one part). ``annotations`` are citations in
    OpenAI's ``annotations`` shape (``{"type": "url_citation", "url_citation":
    {...}}``).
    """

    role: Optional[str] = None
    content: Optional[str] = None
    tool_calls: Tuple[ToolCallDelta, ...] = attrs.field(default=(), converter=tuple)
    reasoning: Optional[str] = None
    refusal: Optional[str] = attrs.field(default=None, kw_only=True)
    reasoning_details: Tuple[Mapping[str, Any], ...] = attrs.field(
        default=(), converter=tuple, kw_only=True
    )
    annotations: Tuple[Mapping[str, Any], ...] = attrs.field(
        default=(), converter=tuple, kw_only=True
    )

    def to_dict(self) -> dict[str, Any]:
        """Return OpenAI's ``delta`` object (absent fields are left out)."""
        data = _drop_none({"role": self.role, "content": self.content})
        data = _add_calls_and_reasoning(data, self.tool_calls, self.reasoning)
        return _add_extras(data, self.refusal, self.reasoning_details, self.annotations)

def _read_only(event: Optional[Mapping[str, Any]]) -> Optional[Mapping[str, Any]]:
    """Return a read-only view of a decoded event (None stays None)."""
    if event is None or isinstance(event, MappingProxyType):
        return event
    return MappingProxyType(event) if isinstance(event, dict) else event


@attrs.frozen
class Choice:
    """One choice of a streamed chunk: its delta and, on the last one, the finish reason."""

    index: int = 0
    delta: Delta = attrs.field(factory=Delta)
    finish_reason: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """Return one entry of OpenAI's chunk ``choices`` list."""
        return {
            "index": self.index,
            "delta": self.delta.to_dict(),
            "finish_reason": self.finish_reason,
        }

@attrs.frozen
class Chunk:
    """One normalized streaming chunk, shaped like OpenAI's ``chat.completion.chunk``.

    A chunk may carry no text at all: a role-only first chunk, a finish-only
    last chunk, or a usage-only chunk with no choices. Use
    :func:`litestream.extract_content` to get its text or ``None``.

    ``provider_event`` is a read-only view of the decoded provider event the
    chunk came from (``None`` for chunks built otherwise), so that what the
    normalized shape cannot express (built-in tool calls, new event types)
    stays reachable. It takes no part in equality and is not in ``to_dict()``.

    A chunk that is one piece of text (most of a stream) is made with just
    its text: its ``choices`` are built the first time they are read, and
    ``content`` reads the text without building them. Nothing else about
    the chunk differs.
    """

    id: Optional[str] = None
    model: Optional[str] = None
    provider: Optional[str] = None
    created: Optional[int] = None
    choices: Tuple[Choice, ...] = attrs.field(default=(), converter=tuple)
    usage: Optional[Usage] = None
    provider_event: Optional[Mapping[str, Any]] = attrs.field(
        default=None, eq=False, repr=False, kw_only=True, converter=_read_only
    )

    @property
    def content(self) -> Optional[str]:
        """The first choice's text, or ``None`` when this chunk carries none."""
        choices = _CHOICES_SLOT.__get__(self)
        if type(choices) is str:  # one token of text, its choice not built yet
            return choices or None
        if choices:
            return choices[0].delta.content or None
        return None

    @property
    def finish_reason(self) -> Optional[str]:
        """The first choice's finish reason, or ``None``."""
        choices = _CHOICES_SLOT.__get__(self)
        if type(choices) is str:
            return None
        return choices[0].finish_reason if choices else None

    @property
    def has_content(self) -> bool:
        """True when some choice carries text, reasoning or tool-call fragments.

        Role-only, finish-only and usage-only chunks are metadata: they do
        not count as content for the first-chunk and idle deadlines.
        """
        choices = _CHOICES_SLOT.__get__(self)
        if type(choices) is str:
            return bool(choices)
        return any(
            choice.delta.content
            or choice.delta.reasoning
            or choice.delta.tool_calls
            or choice.delta.refusal
            for choice in choices
        )

    def to_dict(self) -> dict[str, Any]:
        """Return OpenAI's ``chat.completion.chunk`` JSON object."""
        data: dict[str, Any] = {
            "id": self.id or "",
            "object": "chat.completion.chunk",
            "created": self.created or 0,
            "model": self.model or "",
            "choices": [choice.to_dict() for choice in self.choices],
        }
        if self.usage is not None:
            data["usage"] = self.usage.to_dict()
        return data

class _SlotView:
    """A data descriptor in front of one of ``Chunk``'s slots: reads go through ``__get__``."""

    __slots__ = ("slot",)

    def __init__(self, slot: Any) -> None:
        #: The member descriptor of the underlying slot (what attrs made).
        self.slot = slot

    def __set__(self, chunk: Chunk, value: Any) -> None:
        self.slot.__set__(chunk, value)

    def __delete__(self, chunk: Chunk) -> None:
        self.slot.__delete__(chunk)


class _TokenChoices(_SlotView):
    """``Chunk.choices``, built on first read for a chunk made as one token of text.

    Parsing makes one chunk per streamed token, and most are read once, if
    at all, for their text. So the parsers' short ways (see
    ``litestream._construct.text_chunk``) store just the text in the
    ``choices`` slot, and this descriptor turns it into
    ``(Choice(0, Delta(content=text)),)`` the first time ``choices`` is read
    (``content`` and ``has_content`` read the text as it is). Equality,
    hashing, ``repr``, ``to_dict()``, :func:`attrs.evolve` and pickling all
    read ``choices`` through here, so no caller can tell the two kinds of
    chunk apart. Two threads reading a fresh chunk at once may each build
    the tuple; they build equal ones.
    """

    __slots__ = ()

    def __get__(self, chunk: Optional[Chunk], owner: Optional[type] = None) -> Any:
        if chunk is None:
            return self
        choices = self.slot.__get__(chunk, owner)
        if type(choices) is str:
            choices = (_construct.make_choice(0, _construct.make_delta(content=choices)),)
            self.slot.__set__(chunk, choices)
        return choices


class _ReadOnlyEvent(_SlotView):
    """``Chunk.provider_event``: a decoded event the parsers stored as it is, wrapped on first read.

    The read-only view costs an object per chunk that few callers ever
    look at, so it is made when ``provider_event`` is first read (and kept);
    an event stored as its ``_EventJSON`` text is decoded then too.
    """

    __slots__ = ()

    def __get__(self, chunk: Optional[Chunk], owner: Optional[type] = None) -> Any:
        if chunk is None:
            return self
        event = self.slot.__get__(chunk, owner)
        if type(event) is _EventJSON:
            event = MappingProxyType(json.loads(event))
            self.slot.__set__(chunk, event)
        elif isinstance(event, dict):
            event = MappingProxyType(event)
            self.slot.__set__(chunk, event)
        return event


class _EventJSON(str):
    """The JSON text of one provider event, for ``Chunk.provider_event`` to decode when read.

    A parser that turned an event into a token chunk without changing the
    decoded object stores the event's text instead of that object: the
    decoded dicts and lists then die at once instead of living as long as
    the chunk (garbage the collector would walk; several hundred bytes a
    chunk), and ``provider_event`` decodes the text the first time it is
    read. Internal to litestream's parsers.
    """

    __slots__ = ()


def _token_text(chunk: Chunk) -> Optional[str]:
    """Return the text of a chunk made as one token whose choice is not built yet, else None.

    For readers inside litestream that would only take the text out of the
    choice again (:class:`litestream._builder.ResponseBuilder`).
    """
    choices = _CHOICES_SLOT.__get__(chunk)
    return choices if type(choices) is str else None


#: The slots behind ``Chunk.choices`` and ``Chunk.provider_event`` (for the
#: builders of litestream._construct, which may store a token's text or a
#: plain decoded dict there).
_CHOICES_SLOT = Chunk.__dict__["choices"]
_EVENT_SLOT = Chunk.__dict__["provider_event"]
Chunk.choices = _TokenChoices(_CHOICES_SLOT)  # type: ignore[assignment]
Chunk.provider_event = _ReadOnlyEvent(_EVENT_SLOT)  # type: ignore[assignment]


@attrs.frozen
class ToolCall:
    """A whole tool call: the function's name and its JSON arguments as text."""

    id: Optional[str] = None
    name: str = ""
    arguments: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return one entry of OpenAI's ``message.tool_calls`` list."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }

@attrs.frozen
class Message:
    """A whole message of a response: role, text, tool calls and reasoning.

    ``refusal`` is a refusal kept apart from ``content``; ``annotations``
    are citations in OpenAI's shape. ``reasoning_details`` are the opaque
    reasoning parts (OpenRouter's convention: Anthropic thinking blocks with
    their ``signature``, Gemini ``thoughtSignature``s, Responses reasoning
    items with ``encrypted_content``); appending ``to_dict()`` to the next
    request's messages sends them back to the same provider.
    """

    role: str = "assistant"
    content: Optional[str] = None
    tool_calls: Tuple[ToolCall, ...] = attrs.field(default=(), converter=tuple)
    reasoning: Optional[str] = None
    refusal: Optional[str] = attrs.field(default=None, kw_only=True)
    reasoning_details: Tuple[Mapping[str, Any], ...] = attrs.field(
        default=(), converter=tuple, kw_only=True
    )
    annotations: Tuple[Mapping[str, Any], ...] = attrs.field(
        default=(), converter=tuple, kw_only=True
    )

    def to_dict(self) -> dict[str, Any]:
        """Return OpenAI's ``message`` object (with ``reasoning_details`` when there are any)."""
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        data = _add_calls_and_reasoning(data, self.tool_calls, self.reasoning)
        return _add_extras(data, self.refusal, self.reasoning_details, self.annotations)

@attrs.frozen
class ResponseChoice:
    """One choice of a whole response: its message and finish reason."""

    index: int = 0
    message: Message = attrs.field(factory=Message)
    finish_reason: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        """Return one entry of OpenAI's ``chat.completion`` ``choices`` list."""
        return {
            "index": self.index,
            "message": self.message.to_dict(),
            "finish_reason": self.finish_reason,
        }

@attrs.frozen
class Response:
    """A whole (non-streamed or collected) completion, shaped like ``chat.completion``."""

    id: Optional[str] = None
    model: Optional[str] = None
    provider: Optional[str] = None
    created: Optional[int] = None
    choices: Tuple[ResponseChoice, ...] = attrs.field(default=(), converter=tuple)
    usage: Optional[Usage] = None
    #: The price of the call in USD, when known (the ``cost`` extra prices
    #: the usage with genai-prices; see :mod:`litestream.cost`).
    cost: Optional[Decimal] = attrs.field(default=None, kw_only=True)

    @property
    def content(self) -> Optional[str]:
        """The first choice's text, or ``None``."""
        return self.choices[0].message.content if self.choices else None

    @property
    def finish_reason(self) -> Optional[str]:
        """The first choice's finish reason, or ``None``."""
        return self.choices[0].finish_reason if self.choices else None

    @property
    def tool_calls(self) -> Tuple[ToolCall, ...]:
        """The first choice's tool calls (empty when there are none)."""
        return self.choices[0].message.tool_calls if self.choices else ()

    def to_dict(self) -> dict[str, Any]:
        """Return OpenAI's ``chat.completion`` JSON object."""
        data: dict[str, Any] = {
            "id": self.id or "",
            "object": "chat.completion",
            "created": self.created or 0,
            "model": self.model or "",
            "choices": [choice.to_dict() for choice in self.choices],
        }
        if self.usage is not None:
            data["usage"] = self.usage.to_dict()
        return data

# ---------------------------------------------------------------------------
# Private fast constructors for the parsers' hot paths
def extract_content(value: Union[Response, Chunk, None]) -> Optional[str]:
    """Return the text of a Response or a Chunk, or ``None`` when it carries none.

    The same as ``value.content``, for either type; a chunk that only
    carries a role, a finish reason, usage or an empty string gives ``None``.

    Raises:
        TypeError: ``value`` is neither a Chunk, a Response nor None.
    """
    if value is None:
        return None
    if isinstance(value, (Chunk, Response)):
        return value.content
    raise TypeError(f"extract_content takes a Chunk or a Response, not {type(value).__name__}")


# Last: litestream._construct builds these classes (and may be what imported this module).
from litestream import _construct  # noqa: E402
