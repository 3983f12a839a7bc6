"""Reading the Responses API's typed stream events (and the items they carry).

Every event type of the specification has a deliberate home in
:data:`EVENT_HANDLING`:

- ``mapped``: it becomes normalized deltas (text, reasoning, refusal,
  tool-call fragments, citations, usage and finish reason) or a typed error;
- ``structural``: it only repeats what the deltas already said (``*.done``
  events, part boundaries, ``in_progress``), and is read only to recover
  content a server sent without deltas;
- ``kept``: the normalized chunk cannot express it (built-in tool calls such
  as web search or code interpreter, audio, MCP, image generation): it is
  delivered as a chunk without choices whose ``provider_event`` holds it.

An event type not in the table (one newer than this module) is ``kept``
too, so nothing is ever dropped.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

from litestream import errors
from litestream.providers import _wire
from litestream.providers._messages import RESPONSES_REASONING
from litestream.providers._wire import (
    as_dict,
    as_int,
    as_list,
    as_str,
    attribute_errors,
    in_band_error,
)
from litestream.providers.base import StreamParser
from litestream.types import Chunk, Delta, ToolCallDelta, Usage
from litestream.wire import Event

MAPPED, STRUCTURAL, KEPT = "mapped", "structural", "kept"

#: How each event type of the Responses specification is handled.
EVENT_HANDLING: Mapping[str, str] = {
    "response.created": MAPPED,
    "response.queued": STRUCTURAL,
    "response.in_progress": STRUCTURAL,
    "response.completed": MAPPED,
    "response.incomplete": MAPPED,
    "response.failed": MAPPED,
    "error": MAPPED,
    "response.output_item.added": MAPPED,
    "response.output_item.done": MAPPED,
    "response.content_part.added": STRUCTURAL,
    "response.content_part.done": STRUCTURAL,
    "response.output_text.delta": MAPPED,
    "response.output_text.done": MAPPED,
    "response.output_text.annotation.added": MAPPED,
    "response.refusal.delta": MAPPED,
    "response.refusal.done": MAPPED,
    "response.function_call_arguments.delta": MAPPED,
    "response.function_call_arguments.done": MAPPED,
    "response.reasoning_summary_part.added": MAPPED,
    "response.reasoning_summary_part.done": STRUCTURAL,
    "response.reasoning_summary_text.delta": MAPPED,
    "response.reasoning_summary_text.done": MAPPED,
    "response.reasoning_text.delta": MAPPED,
    "response.reasoning_text.done": MAPPED,
    **{
        name: KEPT
        for name in (
            "response.audio.delta",
            "response.audio.done",
            "response.audio.transcript.delta",
            "response.audio.transcript.done",
            "response.code_interpreter_call_code.delta",
            "response.code_interpreter_call_code.done",
            "response.code_interpreter_call.completed",
            "response.code_interpreter_call.in_progress",
            "response.code_interpreter_call.interpreting",
            "response.compaction.compacting",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.file_search_call.completed",
            "response.file_search_call.in_progress",
            "response.file_search_call.searching",
            "response.image_generation_call.completed",
            "response.image_generation_call.generating",
            "response.image_generation_call.in_progress",
            "response.image_generation_call.partial_image",
            "response.mcp_call_arguments.delta",
            "response.mcp_call_arguments.done",
            "response.mcp_call.completed",
            "response.mcp_call.failed",
            "response.mcp_call.in_progress",
            "response.mcp_list_tools.completed",
            "response.mcp_list_tools.failed",
            "response.mcp_list_tools.in_progress",
            "response.shell_call_command.added",
            "response.shell_call_command.delta",
            "response.shell_call_command.done",
            "response.shell_call_output_content.delta",
            "response.shell_call_output_content.done",
            "response.web_search_call.completed",
            "response.web_search_call.in_progress",
            "response.web_search_call.searching",
        )
    },
}


# ---------------------------------------------------------------------------
# Items, usage, status: shared with the non-streamed response
# ---------------------------------------------------------------------------


def parse_usage(raw: Any) -> Optional[Usage]:
    """Return the Usage of a Responses ``usage`` object (cached and reasoning tokens kept)."""
    return _wire.parse_usage(raw, prompt="input_tokens", completion="output_tokens")


def annotation_of(raw: Any) -> dict[str, Any]:
    """Return a Responses annotation in chat completions' shape.

    ``{"type": "url_citation", "url": ..., "title": ...}`` becomes
    ``{"type": "url_citation", "url_citation": {"url": ..., "title": ...}}``,
    and likewise for every other annotation type.
    """
    annotation = as_dict(raw, "annotation")
    kind = as_str(annotation.get("type"), "annotation type") or "annotation"
    return {"type": kind, kind: {key: value for key, value in annotation.items() if key != "type"}}


def reasoning_parts_of(item: Mapping[str, Any], first_index: int) -> list[dict[str, Any]]:
    """Return the reasoning parts of a whole ``reasoning`` item, numbered from ``first_index``.

    Summaries become ``reasoning.summary`` parts, reasoning text
    ``reasoning.text`` parts and ``encrypted_content`` one
    ``reasoning.encrypted`` part, all with the item's ``id``.
    """
    item_id = as_str(item.get("id"), "reasoning id")
    parts: list[dict[str, Any]] = []

    def add(kind: str, key: str, value: Optional[str]) -> None:
        parts.append({"type": kind, key: value, "id": item_id,
                      "format": RESPONSES_REASONING, "index": first_index + len(parts)})

    for raw in as_list(item.get("summary"), "reasoning summary"):
        add("reasoning.summary", "summary", as_str(as_dict(raw, "summary").get("text"), "text"))
    for raw in as_list(item.get("content"), "reasoning content"):
        add("reasoning.text", "text", as_str(as_dict(raw, "content").get("text"), "text"))
    encrypted = as_str(item.get("encrypted_content"), "encrypted_content")
    if encrypted:
        add("reasoning.encrypted", "data", encrypted)
    return parts


def finish_reason_of(response: Mapping[str, Any], called_functions: bool) -> Optional[str]:
    """Return the normalized finish reason of a response that ended well (else None)."""
    status = response.get("status")
    if status == "incomplete":
        return "length"
    if status == "completed":
        return "tool_calls" if called_functions else "stop"
    return None


def error_of_response(
    response: Mapping[str, Any], *, provider: str, model: Optional[str]
) -> Optional[errors.LitestreamError]:
    """Return the typed error of a response that failed or is incomplete (None when it is not).

    ``failed`` reads its ``error``; ``incomplete`` because of
    ``max_output_tokens`` is a ``length`` finish, not an error; incomplete
    because of ``content_filter`` is a ContentFilterError, for any other
    reason a ProviderError.
    """
    status = response.get("status")
    if status == "failed":
        error = response.get("error")
        if error is None:
            return errors.ProviderError("the response failed", provider=provider, model=model)
        return in_band_error({"error": error}, provider=provider, model=model,
                             default="the response failed")
    if status == "incomplete":
        details = as_dict(response.get("incomplete_details"), "incomplete_details")
        reason = as_str(details.get("reason"), "incomplete reason")
        if reason == "max_output_tokens":
            return None
        error_class = (errors.ContentFilterError if reason == "content_filter"
                       else errors.ProviderError)
        return error_class(f"the response is incomplete: {reason or 'no reason given'}",
                           provider=provider, model=model, provider_code=reason)
    return None


# ---------------------------------------------------------------------------
# The stream
# ---------------------------------------------------------------------------


def _ref(payload: Mapping[str, Any], field: str) -> Any:
    """Return an id or index field, which must be a string, a number or null."""
    value = payload.get(field)
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise errors.ProtocolError(f"{field} is not a string or a number")


class ResponsesStreamParser(StreamParser):
    """Turns Responses API events into chunks.

    Function calls are numbered by their order among the function calls
    (0, 1, ...), never by ``output_index``, and their id is the item's
    ``call_id``. Reasoning summaries go to ``delta.reasoning`` (two summary
    parts are separated by a blank line) and, with the encrypted content,
    to ``delta.reasoning_details``. ``done`` becomes True at
    ``response.completed`` or ``response.incomplete``; ``response.failed``
    and ``error`` raise, after every chunk that came first.
    """

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, model)
        self._tool_index: dict[Any, int] = {}  # by output_index and by item id
        self._detail_index: dict[tuple[Any, ...], int] = {}
        self._streamed: set[tuple[Any, ...]] = set()  # what arrived as deltas
        self._role_sent = False

    def feed(self, event: Event) -> list[Chunk]:
        """Return the chunks of one event; raise a typed error for ``error`` or a failure."""
        with attribute_errors(self.provider, self.model):
            if not event.data.strip() or event.unframed:
                return []
            payload = as_dict(self.load_json(event.data), "stream event")
            kind = as_str(payload.get("type"), "event type") or event.event or ""
            handler = self._handlers.get(kind)
            if handler is not None:
                return handler(self, payload)
            if EVENT_HANDLING.get(kind) == STRUCTURAL:
                return []
            return [self.make_chunk()]  # kept: the chunk's provider_event holds it

    # -- lifecycle ----------------------------------------------------------

    def _created(self, payload: Mapping[str, Any]) -> list[Chunk]:
        response = as_dict(payload.get("response"), "response")
        self.response_id = as_str(response.get("id"), "response id") or self.response_id
        self.response_model = as_str(response.get("model"), "model") or self.response_model
        self.created = as_int(response.get("created_at"), "created_at") or self.created
        return self._role()

    def _role(self) -> list[Chunk]:
        if self._role_sent:
            return []
        self._role_sent = True
        return [self.make_chunk(Delta(role="assistant"))]

    def _ended(self, payload: Mapping[str, Any]) -> list[Chunk]:
        response = as_dict(payload.get("response"), "response")
        # The event's type says how the response ended, whatever its status field says.
        response = {**response, "status": str(payload.get("type")).removeprefix("response.")}
        error = error_of_response(response, provider=self.provider, model=self.model)
        if error is not None:
            raise error
        called = bool(self._tool_index) or any(
            as_dict(item, "output item").get("type") == "function_call"
            for item in as_list(response.get("output"), "output"))
        self.done = True
        return [self.make_chunk(finish_reason=finish_reason_of(response, called),
                                usage=parse_usage(response.get("usage")))]

    def _failed(self, payload: Mapping[str, Any]) -> list[Chunk]:
        response = as_dict(payload.get("response"), "response")
        raise error_of_response({**response, "status": "failed"},
                                provider=self.provider, model=self.model)

    def _error(self, payload: Mapping[str, Any]) -> list[Chunk]:
        # The wire nests the fields under "error"; the SDK documents them flat.
        raise in_band_error(payload, provider=self.provider, model=self.model)

    # -- items --------------------------------------------------------------

    def _item_added(self, payload: Mapping[str, Any]) -> list[Chunk]:
        item = as_dict(payload.get("item"), "item")
        if item.get("type") != "function_call":
            return [] if item.get("type") in ("message", "reasoning") else [self.make_chunk()]
        tool_index = len(set(self._tool_index.values()))
        self._tool_index[("output", _ref(payload, "output_index"))] = tool_index
        self._tool_index[("item", _ref(item, "id"))] = tool_index
        arguments = as_str(item.get("arguments"), "arguments") or ""
        if arguments:
            self._streamed.add(("arguments", tool_index))
        call = ToolCallDelta(index=tool_index, id=as_str(item.get("call_id"), "call_id"),
                             name=as_str(item.get("name"), "name"), arguments=arguments)
        return [*self._role(), self.make_chunk(Delta(tool_calls=(call,)))]

    def _item_done(self, payload: Mapping[str, Any]) -> list[Chunk]:
        item = as_dict(payload.get("item"), "item")
        kind = item.get("type")
        if kind == "reasoning":
            return self._reasoning_done(item)
        if kind in ("message", "function_call"):
            return []  # its content arrived as deltas (or through the *.done events)
        return [self.make_chunk()]

    def _reasoning_done(self, item: Mapping[str, Any]) -> list[Chunk]:
        """Emit what the deltas did not carry: unstreamed summaries and the encrypted content."""
        item_id = _ref(item, "id")
        details = []
        reasoning = []
        numbers: dict[str, int] = {}
        for part in reasoning_parts_of(item, 0):
            kind = part["type"]
            if kind == "reasoning.encrypted":
                part["index"] = self._new_detail(("encrypted", item_id))
            else:
                number = numbers[kind] = numbers.get(kind, -1) + 1
                key = ("summary" if kind == "reasoning.summary" else "text", item_id, number)
                if key in self._streamed or key in self._detail_index:
                    continue
                part["index"] = self._new_detail(key)
                reasoning.append(part.get("summary") or part.get("text") or "")
            details.append(part)
        if not details:
            return []
        delta = Delta(reasoning="\n\n".join(reasoning) or None, reasoning_details=details)
        return [self.make_chunk(delta)]

    def _new_detail(self, key: tuple[Any, ...]) -> int:
        index = self._detail_index.get(key)
        if index is None:
            index = self._detail_index[key] = len(self._detail_index)
        return index

    # -- text, refusal, tool arguments ---------------------------------------

    def _text_delta(self, payload: Mapping[str, Any]) -> list[Chunk]:
        text = as_str(payload.get("delta"), "delta")
        self._streamed.add(("text", _ref(payload, "item_id"), _ref(payload, "content_index")))
        return [self.make_chunk(Delta(content=text))] if text else []

    def _text_done(self, payload: Mapping[str, Any]) -> list[Chunk]:
        if ("text", _ref(payload, "item_id"), _ref(payload, "content_index")) in self._streamed:
            return []
        text = as_str(payload.get("text"), "text")  # a server that sent no deltas
        return [self.make_chunk(Delta(content=text))] if text else []

    def _annotation(self, payload: Mapping[str, Any]) -> list[Chunk]:
        return [self.make_chunk(Delta(annotations=(annotation_of(payload.get("annotation")),)))]

    def _refusal_delta(self, payload: Mapping[str, Any]) -> list[Chunk]:
        refusal = as_str(payload.get("delta"), "delta")
        self._streamed.add(("refusal", _ref(payload, "item_id"), _ref(payload, "content_index")))
        return [self.make_chunk(Delta(refusal=refusal))] if refusal else []

    def _refusal_done(self, payload: Mapping[str, Any]) -> list[Chunk]:
        if ("refusal", _ref(payload, "item_id"), _ref(payload, "content_index")) in self._streamed:
            return []
        refusal = as_str(payload.get("refusal"), "refusal")
        return [self.make_chunk(Delta(refusal=refusal))] if refusal else []

    def _call_index(self, payload: Mapping[str, Any]) -> Optional[int]:
        index = self._tool_index.get(("item", _ref(payload, "item_id")))
        if index is None:
            index = self._tool_index.get(("output", _ref(payload, "output_index")))
        return index

    def _arguments_delta(self, payload: Mapping[str, Any]) -> list[Chunk]:
        index = self._call_index(payload)
        fragment = as_str(payload.get("delta"), "delta")
        if index is None:
            return [self.make_chunk()]  # arguments of an item we never saw start: keep them
        self._streamed.add(("arguments", index))
        if not fragment:
            return []
        return [self.make_chunk(Delta(tool_calls=(ToolCallDelta(index, arguments=fragment),)))]

    def _arguments_done(self, payload: Mapping[str, Any]) -> list[Chunk]:
        index = self._call_index(payload)
        if index is None or ("arguments", index) in self._streamed:
            return []
        arguments = as_str(payload.get("arguments"), "arguments")
        if not arguments:
            return []
        return [self.make_chunk(Delta(tool_calls=(ToolCallDelta(index, arguments=arguments),)))]

    # -- reasoning ------------------------------------------------------------

    def _summary_part_added(self, payload: Mapping[str, Any]) -> list[Chunk]:
        number = as_int(payload.get("summary_index"), "summary_index") or 0
        if number == 0:
            return []
        # Summary parts are paragraphs of one summary: keep them apart in the text.
        return [self.make_chunk(Delta(reasoning="\n\n"))]

    def _reasoning_delta(self, payload: Mapping[str, Any], kind: str) -> list[Chunk]:
        text = as_str(payload.get("delta"), "delta")
        number = as_int(payload.get(f"{kind}_index" if kind == "summary" else "content_index"),
                        "part index") or 0
        key = (kind, _ref(payload, "item_id"), number)
        self._streamed.add(key)
        if not text:
            return []
        detail_kind, field = (("reasoning.summary", "summary") if kind == "summary"
                              else ("reasoning.text", "text"))
        detail = {"type": detail_kind, field: text, "id": _ref(payload, "item_id"),
                  "format": RESPONSES_REASONING, "index": self._new_detail(key)}
        return [self.make_chunk(Delta(reasoning=text, reasoning_details=(detail,)))]

    def _reasoning_done_text(self, payload: Mapping[str, Any], kind: str) -> list[Chunk]:
        number = as_int(payload.get(f"{kind}_index" if kind == "summary" else "content_index"),
                        "part index") or 0
        if (kind, _ref(payload, "item_id"), number) in self._streamed:
            return []
        return self._reasoning_delta({**payload, "delta": payload.get("text")}, kind)

    _handlers: dict[str, Callable[[ResponsesStreamParser, Mapping[str, Any]], list[Chunk]]] = {
        "response.created": _created,
        "response.completed": _ended,
        "response.incomplete": _ended,
        "response.failed": _failed,
        "error": _error,
        "response.output_item.added": _item_added,
        "response.output_item.done": _item_done,
        "response.output_text.delta": _text_delta,
        "response.output_text.done": _text_done,
        "response.output_text.annotation.added": _annotation,
        "response.refusal.delta": _refusal_delta,
        "response.refusal.done": _refusal_done,
        "response.function_call_arguments.delta": _arguments_delta,
        "response.function_call_arguments.done": _arguments_done,
        "response.reasoning_summary_part.added": _summary_part_added,
        "response.reasoning_summary_text.delta":
            lambda self, p: self._reasoning_delta(p, "summary"),
        "response.reasoning_summary_text.done":
            lambda self, p: self._reasoning_done_text(p, "summary"),
        "response.reasoning_text.delta": lambda self, p: self._reasoning_delta(p, "text"),
        "response.reasoning_text.done": lambda self, p: self._reasoning_done_text(p, "text"),
    }
