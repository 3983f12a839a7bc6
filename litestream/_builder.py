"""Assembling chunks into a response: :class:`ResponseBuilder`, the one piece of code that does.

Content is joined, tool-call fragments are merged into whole calls, reasoning
parts and citations are kept, and usage, finish reason and cost come out of
the last chunks that carry them. :func:`~litestream.collect_stream`, the
callbacks' future and the CLI all build their responses here.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from litestream.channels import ReceiveChannel
from litestream.cost import cost_of
from litestream.errors import LitestreamError
from litestream.types import (
    Chunk,
    Message,
    Response,
    ResponseChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
    _token_text,
)

__all__ = ["ResponseBuilder"]

class _ToolCallParts:
    """One tool call being assembled: its id, name and argument fragments."""

    __slots__ = ("id", "name", "arguments")

    def __init__(self) -> None:
        self.id: Optional[str] = None
        self.name: Optional[str] = None
        self.arguments: list[str] = []

    def starts_new_call(self, fragment: ToolCallDelta) -> bool:
        """Tell whether ``fragment`` opens another call that reuses this one's index.

        Providers that send each call whole (Gemini, Ollama, Mistral) may give
        every call the same index, or none; a second header (a name, with no
        id or another id) then means a second call.
        """
        if fragment.id is not None and self.id is not None:
            return fragment.id != self.id
        return fragment.name is not None and self.name is not None and fragment.id is None

    def build(self) -> ToolCall:
        return ToolCall(id=self.id, name=self.name or "", arguments="".join(self.arguments))


#: Reasoning-part fields whose streamed fragments are concatenated.
_JOINED_DETAIL_FIELDS = frozenset({"text", "summary", "data"})


class _ChoiceParts:
    """One choice being assembled; text is kept as a list of pieces and joined once."""

    __slots__ = ("role", "content", "reasoning", "tool_calls", "calls_by_index", "finish_reason",
                 "refusal", "details", "annotations")

    def __init__(self) -> None:
        self.role: Optional[str] = None
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.tool_calls: list[_ToolCallParts] = []
        self.calls_by_index: dict[int, _ToolCallParts] = {}
        self.finish_reason: Optional[str] = None
        self.refusal: list[str] = []
        self.details: dict[Any, dict[str, Any]] = {}
        self.annotations: list[Mapping[str, Any]] = []

    def add_reasoning_detail(self, fragment: Mapping[str, Any]) -> None:
        """Merge one reasoning-part fragment into the part with its ``index``.

        Text fields (``text``, ``summary``, ``data``) are concatenated; any
        other field is set by the latest fragment that has it (a signature
        arrives after its text). Fragments without an index are parts of their own.
        """
        key = fragment.get("index", ("unindexed", len(self.details)))
        part = self.details.get(key)
        if part is None:
            self.details[key] = dict(fragment)
            return
        for name, value in fragment.items():
            if value is None:
                continue
            if name in _JOINED_DETAIL_FIELDS and isinstance(part.get(name), str):
                part[name] += value
            else:
                part[name] = value

    def add_tool_call(self, fragment: ToolCallDelta) -> None:
        call = self.calls_by_index.get(fragment.index)
        if call is None or call.starts_new_call(fragment):
            call = _ToolCallParts()
            self.tool_calls.append(call)
            self.calls_by_index[fragment.index] = call
        if fragment.id is not None:
            call.id = fragment.id
        if fragment.name is not None:
            call.name = fragment.name
        if fragment.arguments:
            call.arguments.append(fragment.arguments)

    def build(self, index: int) -> ResponseChoice:
        message = Message(
            role=self.role or "assistant",
            content="".join(self.content) if self.content else None,
            tool_calls=tuple(call.build() for call in self.tool_calls),
            reasoning="".join(self.reasoning) if self.reasoning else None,
            refusal="".join(self.refusal) if self.refusal else None,
            reasoning_details=tuple(self.details.values()),
            annotations=tuple(self.annotations),
        )
        return ResponseChoice(index=index, message=message, finish_reason=self.finish_reason)


class ResponseBuilder:
    """Assemble streamed chunks into one :class:`~litestream.Response`, in O(n).

    Text and reasoning are kept apart, as lists of pieces joined once in
    :meth:`build`; tool-call fragments are merged by index into whole calls
    (also when text comes first, when several calls stream in parallel, or
    when a provider sends each call whole with no index). The last non-None
    finish reason, the last usage and the last model named win; id,
    provider and created come from the first chunk that has them. Refusal
    text is joined apart from content, citations (``annotations``) are kept
    in order, and reasoning-part fragments (``reasoning_details``) are
    merged by index into the message's parts, ready to go back to the
    provider on the next turn. Chunks themselves are not kept.

    Args:
        provider: the provider name to use when no chunk names one.
        model: the model name to use when no chunk names one.

    Example:
        >>> builder = ResponseBuilder()
        >>> for chunk in stream:  # doctest: +SKIP
        ...     builder.add(chunk)
        >>> builder.build().content  # doctest: +SKIP
        'Hello!'
    """

    __slots__ = ("id", "model", "provider", "created", "usage", "_choices", "_defaults")

    def __init__(self, provider: Optional[str] = None, model: Optional[str] = None) -> None:
        self.id: Optional[str] = None
        self.model: Optional[str] = None
        self.provider: Optional[str] = None
        self.created: Optional[int] = None
        self.usage: Optional[Usage] = None
        self._choices: dict[int, _ChoiceParts] = {}
        self._defaults = (provider, model)

    @classmethod
    def for_stream(cls, stream: ReceiveChannel[Chunk]) -> ResponseBuilder:
        """Return a builder that names the stream's provider and model when no chunk does."""
        return cls(getattr(stream, "provider", None), getattr(stream, "model", None))

    def note_partial(self, error: BaseException) -> None:
        """Set ``error.partial_content`` to the text assembled so far, unless it has one."""
        if isinstance(error, LitestreamError) and error.partial_content is None:
            error.partial_content = self.content

    def add(self, chunk: Chunk) -> None:
        """Add one chunk (metadata-only chunks included)."""
        if self.id is None:
            self.id = chunk.id
        if chunk.model:
            self.model = chunk.model  # the latest named wins: routers name the serving model late
        if self.provider is None:
            self.provider = chunk.provider
        if self.created is None:
            self.created = chunk.created
        if chunk.usage is not None:
            self.usage = chunk.usage
        text = _token_text(chunk)
        if text is not None:  # one token of text: the same as its choice, without building it
            parts = self._choices.get(0)
            if parts is None:
                parts = self._choices[0] = _ChoiceParts()
            if text:
                parts.content.append(text)
            return
        for choice in chunk.choices:
            parts = self._choices.get(choice.index)
            if parts is None:
                parts = self._choices[choice.index] = _ChoiceParts()
            delta = choice.delta
            if delta.role is not None:
                parts.role = delta.role
            if delta.content:
                parts.content.append(delta.content)
            if delta.reasoning:
                parts.reasoning.append(delta.reasoning)
            for fragment in delta.tool_calls:
                parts.add_tool_call(fragment)
            if delta.refusal:
                parts.refusal.append(delta.refusal)
            for detail in delta.reasoning_details:
                parts.add_reasoning_detail(detail)
            parts.annotations.extend(delta.annotations)
            if choice.finish_reason is not None:
                parts.finish_reason = choice.finish_reason

    @property
    def content(self) -> Optional[str]:
        """The first choice's text so far, or ``None`` when none arrived."""
        parts = self._choices.get(0)
        if parts is None or not parts.content:
            return None
        return "".join(parts.content)

    def build(self) -> Response:
        """Return the response assembled so far; it always has at least choice 0."""
        choices = self._choices or {0: _ChoiceParts()}
        provider = self.provider or self._defaults[0]
        model = self.model or self._defaults[1]
        return Response(
            id=self.id,
            model=model,
            provider=provider,
            created=self.created,
            choices=tuple(choices[index].build(index) for index in sorted(choices)),
            usage=self.usage,
            cost=cost_of(provider, model, self.usage),
        )


