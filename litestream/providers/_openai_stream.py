"""Parsing OpenAI's streamed chat completions: ``chat.completion.chunk`` events into chunks.

The short way for plain text deltas (most events) builds the chunk without
a walk through the general translation; everything else goes through
:meth:`OpenAIStreamParser.translate`. The helpers at the end read fields
that whole responses share with stream deltas.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

from litestream import errors
from litestream._construct import text_chunk
from litestream.providers._wire import (
    as_dict,
    as_int,
    as_list,
    as_str,
    attribute_errors,
    in_band_error,
    load_error_json,
    parse_usage,
)
from litestream.providers.base import StreamParser, whole_json_object
from litestream.types import (
    Choice,
    Chunk,
    Delta,
    ToolCallDelta,
    Usage,
    _EventJSON,
)
from litestream.wire import Event

__all__ = [
    "OpenAIStreamParser", "arguments_text", "call_name_and_arguments", "extras",
    "normalize_finish_reason", "split_content", "text_and_reasoning",
]

_FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",  # the legacy functions API
    "model_length": "length",  # Mistral
    "eos": "stop",  # some self-hosted servers
}


def normalize_finish_reason(reason: Optional[str]) -> Optional[str]:
    """Return the normalized finish reason of an OpenAI-format ``finish_reason``.

    Unknown non-empty reasons mean the choice did end, so they read as
    ``stop``. ``error`` is not a finish reason: callers raise instead.
    """
    if not reason:
        return None
    return _FINISH_REASONS.get(reason, "stop")


class _ToolCallIndexer:
    """Gives each streamed tool-call fragment of one choice the index of its call.

    Servers that omit ``index`` are common among OpenAI-compatible ones: a
    fragment with a new id starts the next call, one without an id continues
    the latest call, and a repeated id goes back to its call.
    """

    def __init__(self) -> None:
        self.count = 0
        self.latest: Optional[int] = None
        self.by_id: dict[str, int] = {}

    def index_for(self, wire_index: Optional[int], call_id: Optional[str]) -> int:
        if wire_index is None:
            if call_id is not None and call_id in self.by_id:
                wire_index = self.by_id[call_id]
            elif call_id is None and self.latest is not None:
                wire_index = self.latest
            else:
                wire_index = self.count
        self.latest = wire_index
        self.count = max(self.count, wire_index + 1)
        if call_id is not None:
            self.by_id.setdefault(call_id, wire_index)
        return wire_index


class OpenAIStreamParser(StreamParser):
    """Turns ``chat.completion.chunk`` events into chunks.

    ``done`` becomes True at ``data: [DONE]``. A body that ends after a
    finish reason but without ``[DONE]`` (llama.cpp, some proxies) still
    finishes cleanly. A finish reason repeated for the same choice (OpenRouter
    repeats it on the usage chunk) is delivered once.
    """

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, model)
        self._finished: set[int] = set()
        self._roles_sent: set[int] = set()
        self._tool_indexers: dict[int, _ToolCallIndexer] = {}
        self._usage: Optional[Usage] = None

    def feed(self, event: Event) -> list[Chunk]:
        """Return the chunks of one event; raise a typed error for an error event."""
        data = event.data.strip()
        if not data or event.unframed:
            return []  # lines outside SSE fields are ignored, as the SSE spec says
        if data == "[DONE]":
            self.done = True
            return []
        if event.event is None and data[0] == "{":
            # The common event, the next piece of text of a known response,
            # takes the short way; anything else falls through unchanged.
            payload = whole_json_object(data)
            if payload is not None:
                return self._feed_object(payload, data)
        with attribute_errors(self.provider, self.model):
            if event.event == "error":
                raise in_band_error(
                    load_error_json(data), provider=self.provider, model=self.model
                )
            payload = as_dict(self.load_json(data), "stream event")
            return self.translate(payload)

    def feed_many(self, events: Sequence[Event], chunks: list[Chunk]) -> None:
        """Append the chunks of ``events`` to ``chunks``, up to the final event.

        As :meth:`StreamParser.feed_many`, with :meth:`feed`'s short way
        inlined: an unnamed event whose data is one JSON object with nothing
        around it (so ``strip`` would leave it as it is) is scanned here,
        saving a call per event; any other event goes through :meth:`feed`.
        """
        for event in events:
            if self.done:
                return
            data = event.data
            if data[:1] == "{" and data[-1:] == "}" and event.event is None \
                    and not event.unframed:
                payload = whole_json_object(data)
                if payload is not None:
                    self.provider_event = payload
                    produced = self._text_chunk(payload, data)
                    if produced is None:
                        produced = self._translate_object(payload)
                    chunks.extend(produced)
                    continue
            chunks.extend(self.feed(event))

    def _feed_object(self, payload: dict[str, Any], data: str) -> list[Chunk]:
        """Return the chunks of one event's JSON object, decoded from ``data``."""
        self.provider_event = payload
        chunks = self._text_chunk(payload, data)
        if chunks is not None:
            return chunks
        return self._translate_object(payload)

    def _translate_object(self, payload: dict[str, Any]) -> list[Chunk]:
        with attribute_errors(self.provider, self.model):
            return self.translate(payload)

    def _text_chunk(self, payload: dict[str, Any], data: str) -> Optional[list[Chunk]]:
        """Return the chunks of a text-only delta of the known response; None for anything else.

        Gives exactly what :meth:`translate` gives for the same payload: the
        conditions below are those under which translate takes no other branch.
        ``data``, the event's text that ``payload`` was decoded from, is kept
        instead of ``payload`` for ``provider_event`` to decode if it is read
        (see :meth:`StreamParser.make_text_chunk`).
        """
        choices = payload.get("choices")
        if type(choices) is not list or len(choices) != 1:
            return None
        raw = choices[0]
        if type(raw) is not dict or raw.get("finish_reason") is not None:
            return None
        delta = raw.get("delta")
        if type(delta) is not dict or len(delta) != 1:
            return None
        content = delta.get("content")
        index = raw.get("index", 0)
        if type(content) is not str or type(index) is not int:
            return None
        response_id = self.response_id
        if response_id is None or payload.get("id") != response_id:
            return None
        model = payload.get("model")
        if (model != self.response_model and model) or payload.get("usage") is not None:
            return None
        if payload.get("error") is not None or payload.get("object") == "error":
            return None
        if not content:
            return []
        return [text_chunk(response_id, self.response_model or self.model, self.provider,
                           self.created, index, content, _EventJSON(data))]

    def translate(self, payload: Mapping[str, Any]) -> list[Chunk]:
        """Return the chunks of one parsed ``chat.completion.chunk`` object."""
        if payload.get("error") is not None or payload.get("object") == "error":
            raise in_band_error(payload, provider=self.provider, model=self.model)
        renamed = self._remember_identity(payload)
        choices = []
        for raw_choice in as_list(payload.get("choices"), "choices"):
            choice = self._translate_choice(as_dict(raw_choice, "choice"))
            if choice is not None:
                choices.append(choice)
        usage = self._merge_usage(parse_usage(payload.get("usage")))
        if not choices and usage is None and not renamed:
            return []
        # A chunk that only names a new model is delivered too, so the model
        # that served the answer (Azure's model router) is the one reported.
        return [self.make_chunk_of(choices, usage)]

    def _merge_usage(self, usage: Optional[Usage]) -> Optional[Usage]:
        """Return ``usage`` with counts it leaves at 0 taken from the stream's earlier usage.

        Usage is cumulative, so the latest count wins; but some servers
        split it, prompt tokens on the first chunk and completion tokens on
        the last, each with 0 for the other (LiteLLM merges them the same way).
        """
        if usage is None:
            return None
        previous = self._usage
        if previous is not None and not (usage.prompt_tokens and usage.completion_tokens):
            prompt = usage.prompt_tokens or previous.prompt_tokens
            completion = usage.completion_tokens or previous.completion_tokens
            if (prompt, completion) != (usage.prompt_tokens, usage.completion_tokens):
                usage = Usage(prompt, completion)
        self._usage = usage
        return usage

    def _remember_identity(self, payload: Mapping[str, Any]) -> bool:
        """Take the id, model and creation time of a chunk; True when it names a new model.

        The latest model named wins: a router or a fallback may name the
        model that served only in later chunks.
        """
        if payload.get("id") == self.response_id and self.response_id is not None:
            # The same stream's next chunk: only the model may change.
            model = payload.get("model")
            if model == self.response_model or not model:
                return False
            self.response_model = as_str(model, "model")
            return True
        renamed = False
        response_id = as_str(payload.get("id"), "id")
        if response_id:
            self.response_id = response_id
        model = as_str(payload.get("model"), "model")
        if model and model != self.response_model:
            renamed = self.response_model is not None
            self.response_model = model
        created = as_int(payload.get("created"), "created")
        if created:
            self.created = created
        return renamed

    def _translate_choice(self, raw: Mapping[str, Any]) -> Optional[Choice]:
        delta = raw.get("delta")
        if type(delta) is dict and len(delta) == 1 and raw.get("finish_reason") is None:
            # Most events carry only the next piece of text: take the short way.
            content = delta.get("content")
            index = raw.get("index", 0)
            if type(content) is str and type(index) is int:
                return Choice(index, Delta(content=content)) if content else None
        index = as_int(raw.get("index"), "choice index") or 0
        delta = as_dict(raw.get("delta"), "delta")
        content, reasoning = text_and_reasoning(delta)
        refusal = as_str(delta.get("refusal"), "refusal")
        if refusal and not content:
            # Chat completions' refusal reads as the answer's text, as the
            # peers' tests expect (the Responses API keeps it apart).
            content = refusal
        details = extras(delta, "reasoning_details")
        annotations = extras(delta, "annotations")
        role = as_str(delta.get("role"), "role")
        if role is not None:
            if index in self._roles_sent:
                role = None  # OpenRouter repeats the role in every delta
            else:
                self._roles_sent.add(index)
        tool_calls = self._tool_call_deltas(index, delta)
        finish_reason = self._finish_reason(index, as_str(raw.get("finish_reason"), "finish"))
        if not (role or content or tool_calls or reasoning or finish_reason or details
                or annotations):
            return None
        return Choice(
            index=index,
            delta=Delta(role=role, content=content, tool_calls=tool_calls, reasoning=reasoning,
                        reasoning_details=details, annotations=annotations),
            finish_reason=finish_reason,
        )

    def _finish_reason(self, index: int, reason: Optional[str]) -> Optional[str]:
        if reason == "error":
            raise errors.ProviderError(
                "the provider ended the stream with finish_reason 'error'", provider_code="error"
            )
        normalized = normalize_finish_reason(reason)
        if normalized is None or index in self._finished:
            return None
        self._finished.add(index)
        return normalized

    def _tool_call_deltas(self, index: int, delta: Mapping[str, Any]) -> list[ToolCallDelta]:
        indexer = self._tool_indexers.setdefault(index, _ToolCallIndexer())
        deltas = []
        for raw_call in as_list(delta.get("tool_calls"), "tool_calls"):
            call = as_dict(raw_call, "tool call")
            name, arguments = call_name_and_arguments(call)
            call_id = as_str(call.get("id"), "tool call id") or None
            deltas.append(
                ToolCallDelta(
                    index=indexer.index_for(as_int(call.get("index"), "tool index"), call_id),
                    id=call_id,
                    name=name,
                    arguments=arguments,
                )
            )
        legacy = as_dict(delta.get("function_call"), "function_call")
        if legacy:
            deltas.append(
                ToolCallDelta(
                    index=indexer.index_for(0, None),
                    name=as_str(legacy.get("name"), "function name"),
                    arguments=arguments_text(legacy.get("arguments")),
                )
            )
        return deltas


def split_content(content: Any) -> tuple[Optional[str], Optional[str]]:
    """Return ``(text, reasoning)`` of a content field: a string, or a list of typed parts.

    Mistral's reasoning models send content as a list of ``text`` and
    ``thinking`` parts; the thinking goes to reasoning, never to text.
    """
    if content is None or isinstance(content, str):
        return content, None
    texts: list[str] = []
    thoughts: list[str] = []
    for raw_part in as_list(content, "content"):
        if isinstance(raw_part, str):
            texts.append(raw_part)
            continue
        part = as_dict(raw_part, "content part")
        if part.get("type") == "text":
            texts.append(as_str(part.get("text"), "text") or "")
        elif part.get("type") == "thinking":
            thinking = part.get("thinking")
            if isinstance(thinking, str):
                thoughts.append(thinking)
            else:
                thoughts.append(split_content(thinking)[0] or "")
    return "".join(texts), ("".join(thoughts) or None)


def extras(message: Mapping[str, Any], key: str) -> tuple[Mapping[str, Any], ...]:
    """Return a message's or delta's list of objects under ``key`` (citations, reasoning parts).

    ``annotations`` are OpenAI's citations (web search); ``reasoning_details``
    are OpenRouter's opaque reasoning parts, handed back on the next turn.
    """
    return tuple(as_dict(item, key) for item in as_list(message.get(key), key))


def text_and_reasoning(message: Mapping[str, Any]) -> tuple[Optional[str], Optional[str]]:
    """Return ``(text, reasoning)`` of a delta or message.

    Reasoning is the first non-empty of: thinking parts of the content
    (Mistral), ``reasoning_content`` (DeepSeek, vLLM) and ``reasoning``
    (OpenRouter).
    """
    content, reasoning = split_content(message.get("content"))
    return content, first_text(
        reasoning,
        as_str(message.get("reasoning_content"), "reasoning_content"),
        as_str(message.get("reasoning"), "reasoning"),
    )


def first_text(*values: Optional[str]) -> Optional[str]:
    for value in values:
        if value:
            return value
    return None


def call_name_and_arguments(call: Mapping[str, Any]) -> tuple[Optional[str], Optional[str]]:
    """Return the name and argument text of a tool call or a fragment of one.

    A custom (free-form) tool call has ``"custom": {"name", "input"}``
    instead of ``function``; its input text is the call's arguments.
    """
    custom = call.get("custom")
    if custom is not None and call.get("function") is None:
        custom = as_dict(custom, "custom tool call")
        return as_str(custom.get("name"), "tool name"), as_str(custom.get("input"), "tool input")
    function = as_dict(call.get("function"), "tool call function")
    return as_str(function.get("name"), "tool name"), arguments_text(function.get("arguments"))


def arguments_text(arguments: Any) -> Optional[str]:
    # Some compatible servers send arguments as an object instead of JSON text.
    if isinstance(arguments, (Mapping, list)):
        return json.dumps(arguments)
    return as_str(arguments, "tool arguments")
