"""Google's Gemini API (``generativelanguage.googleapis.com``, ``v1beta``).

Requests go to ``/v1beta/models/{model}:streamGenerateContent?alt=sse`` (or
``:generateContent``) with the key in the ``x-goog-api-key`` header, never in
the URL. System messages become ``systemInstruction``; turns become
``contents`` with roles ``user`` and ``model``; tool calls are
``functionCall`` parts and tool results ``functionResponse`` parts; sampling
options go in ``generationConfig``.

Each stream event is a whole ``GenerateContentResponse``: function calls
arrive whole (never as fragments), ``usageMetadata`` is repeated and
cumulative on every event, and the last event carries ``finishReason``.
There is no ``[DONE]``.

This module parses answers; :mod:`litestream.providers._gemini_request`
builds requests.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Mapping, Optional
from urllib.parse import quote

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import _messages
from litestream.providers._gemini_request import build_body
from litestream.providers._wire import (
    as_dict,
    as_int,
    as_list,
    as_str,
    attribute_errors,
    error_from_body,
    in_band_error,
    retype_error,
)
from litestream.providers.base import Provider, StreamParser
from litestream.types import (
    Chunk,
    Delta,
    Message,
    Response,
    ResponseChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from litestream.wire import Event, HTTPRequest

__all__ = ["GeminiProvider", "GeminiStreamParser", "normalize_finish_reason"]

_CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)

_log = logging.getLogger("litestream.providers")





def normalize_finish_reason(reason: Optional[str], called_functions: bool = False) -> Optional[str]:
    """Return the normalized finish reason of a Gemini ``finishReason``.

    ``STOP`` after ``functionCall`` parts means ``tool_calls``; the safety
    family means ``content_filter``; ``MAX_TOKENS`` means ``length``; anything
    else (``OTHER``, ``MALFORMED_FUNCTION_CALL``...) ended the turn: ``stop``.
    """
    if not reason:
        return None
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _CONTENT_FILTER_REASONS:
        return "content_filter"
    return "tool_calls" if called_functions else "stop"


class GeminiProvider(Provider):
    """Gemini models through the Gemini Developer API (key also read from ``GOOGLE_API_KEY``)."""

    name = "gemini"
    default_api_base = "https://generativelanguage.googleapis.com"
    env_var = "GEMINI_API_KEY"
    env_var_aliases = ("GOOGLE_API_KEY",)
    base_url_env_var = "GEMINI_BASE_URL"
    default_model = "gemini-2.5-flash"

    def build_request(
        self, model: str, request: Mapping[str, Any], options: CallOptions
    ) -> HTTPRequest:
        """Return the POST to ``generateContent`` or ``streamGenerateContent?alt=sse``."""
        stream = bool(request.get("stream"))
        model_path = quote(model.removeprefix("models/"), safe="-._~")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return self._request(
            f"/v1beta/models/{model_path}:{method}", build_body(request), stream, options
        )

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """Return ``x-goog-api-key``: the Gemini Developer API's key header."""
        return {"x-goog-api-key": api_key}

    def stream_parser(self, model: str) -> GeminiStreamParser:
        """Return a parser for one ``streamGenerateContent?alt=sse`` stream."""
        return GeminiStreamParser(self.name, model)

    def parse_response(self, body: Mapping[str, Any], model: str) -> Response:
        """Return the Response of a whole ``GenerateContentResponse``."""
        with attribute_errors(self.name, model):
            data = as_dict(body, "response body")
            if data.get("error") is not None:
                raise in_band_error(data, provider=self.name, model=model)
            choices = []
            for position, raw in enumerate(as_list(data.get("candidates"), "candidates")):
                choices.append(_response_choice(as_dict(raw, "candidate"), position))
            if not choices and _block_reason(data):
                choices.append(ResponseChoice(finish_reason="content_filter"))
            return Response(
                id=as_str(data.get("responseId"), "responseId"),
                model=as_str(data.get("modelVersion"), "modelVersion") or model,
                provider=self.name,
                choices=choices,
                usage=parse_usage(data.get("usageMetadata")),
            )

    def parse_error(
        self, status_code: int, body: str, headers: Mapping[str, str], model: str
    ) -> errors.LitestreamError:
        """Return the typed error for ``{"error": {"code", "message", "status", "details"}}``.

        Gemini answers a bad API key with 400 ``API_KEY_INVALID``: that is an
        AuthenticationError. Every 429 says "quota", but only a daily quota
        (a ``QuotaFailure`` whose ``quotaId`` is per day) is a
        QuotaExceededError; per-minute quotas are a RateLimitError, with
        ``RetryInfo.retryDelay`` as ``retry_after`` when no Retry-After header came.
        """
        error = error_from_body(status_code, body, headers, provider=self.name, model=model)
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            data = None
        return _refine_error(error, data, status_code)


def _refine_error(
    error: errors.LitestreamError, data: Any, status_code: Optional[int]
) -> errors.LitestreamError:
    # In a stream the HTTP status was 200: the class chosen from the error's own code counts.
    """Return ``error`` retyped and given a retry delay from the ``details`` of Google's error."""
    details = _error_details(data)
    reasons = {_text(detail.get("reason")) for detail in details}
    if "API_KEY_INVALID" in reasons or "API key not valid" in error.message:
        error = retype_error(error, errors.AuthenticationError)
    if status_code == 429 or isinstance(error, (errors.RateLimitError, errors.QuotaExceededError)):
        error = retype_error(error, _rate_limit_class(details))
    if error.retry_after is None:
        for detail in details:
            delay = _seconds(detail.get("retryDelay"))
            if delay is not None:
                error.retry_after = delay
    return error


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _error_details(data: Any) -> list[Mapping[str, Any]]:
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, Mapping) else None
    details = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(details, list):
        return []
    return [detail for detail in details if isinstance(detail, Mapping)]


def _rate_limit_class(details: list[Mapping[str, Any]]) -> type[errors.LitestreamError]:
    for detail in details:
        violations = detail.get("violations")
        for violation in violations if isinstance(violations, list) else ():
            if isinstance(violation, Mapping) and "PerDay" in _text(violation.get("quotaId")):
                return errors.QuotaExceededError
    return errors.RateLimitError


def _seconds(value: Any) -> Optional[float]:
    """Return the seconds of a protobuf Duration string such as ``"35s"`` or ``"1.5s"``."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)s", value.strip())
    return float(match.group(1)) if match else None


# ---------------------------------------------------------------------------
# Responses and streams
# ---------------------------------------------------------------------------


def signature_details(
    candidate: Mapping[str, Any], first_call: int, first_index: int
) -> list[dict[str, Any]]:
    """Return the ``thoughtSignature``s of a candidate's parts as reasoning parts.

    A signature on a ``functionCall`` part records which call it belongs to
    (``tool_call_index``, counted over the whole answer from ``first_call``).
    """
    details: list[dict[str, Any]] = []
    call_number = first_call
    content = as_dict(candidate.get("content"), "content")
    for raw_part in as_list(content.get("parts"), "parts"):
        part = as_dict(raw_part, "part")
        is_call = bool(as_dict(part.get("functionCall"), "functionCall"))
        signature = as_str(part.get("thoughtSignature"), "thoughtSignature")
        if signature:
            detail: dict[str, Any] = {"type": "reasoning.encrypted", "data": signature,
                                      "format": _messages.GEMINI_REASONING,
                                      "index": first_index + len(details)}
            if is_call:
                detail["tool_call_index"] = call_number
            details.append(detail)
        call_number += is_call
    return details


def parse_usage(raw: Any) -> Optional[Usage]:
    """Return the Usage of ``usageMetadata``; thinking tokens count as completion tokens."""
    usage = as_dict(raw, "usageMetadata")
    if not usage:
        return None
    prompt = as_int(usage.get("promptTokenCount"), "promptTokenCount") or 0
    completion = (as_int(usage.get("candidatesTokenCount"), "candidatesTokenCount") or 0) + (
        as_int(usage.get("thoughtsTokenCount"), "thoughtsTokenCount") or 0
    )
    return Usage(prompt, completion)


def _block_reason(data: Mapping[str, Any]) -> Optional[str]:
    feedback = as_dict(data.get("promptFeedback"), "promptFeedback")
    return as_str(feedback.get("blockReason"), "blockReason")


class _CandidateParts:
    """The text, reasoning and function calls of one candidate's parts."""

    def __init__(self, candidate: Mapping[str, Any]) -> None:
        content = as_dict(candidate.get("content"), "content")
        texts: list[str] = []
        thoughts: list[str] = []
        self.calls: list[tuple[Optional[str], Optional[str], str]] = []
        for raw_part in as_list(content.get("parts"), "parts"):
            part = as_dict(raw_part, "part")
            text = as_str(part.get("text"), "text")
            if text is not None:
                (thoughts if part.get("thought") is True else texts).append(text)
            call = as_dict(part.get("functionCall"), "functionCall")
            if call:
                self.calls.append(
                    (
                        as_str(call.get("id"), "functionCall id"),
                        as_str(call.get("name"), "functionCall name"),
                        json.dumps(as_dict(call.get("args"), "functionCall args")),
                    )
                )
        self.text = "".join(texts) if texts else None
        self.reasoning = "".join(thoughts) if thoughts else None


def _response_choice(candidate: Mapping[str, Any], position: int) -> ResponseChoice:
    parts = _CandidateParts(candidate)
    reason = as_str(candidate.get("finishReason"), "finishReason")
    return ResponseChoice(
        index=as_int(candidate.get("index"), "candidate index") or position,
        message=Message(
            content=parts.text,
            tool_calls=[ToolCall(id=i, name=n or "", arguments=a) for i, n, a in parts.calls],
            reasoning=parts.reasoning,
            reasoning_details=signature_details(candidate, 0, 0),
        ),
        finish_reason=normalize_finish_reason(reason, bool(parts.calls)),
    )


class GeminiStreamParser(StreamParser):
    """Turns ``GenerateContentResponse`` events into chunks.

    ``done`` becomes True when a candidate's ``finishReason`` arrives, or
    after a blocked prompt (``promptFeedback.blockReason``, no candidates),
    which ends as a ``content_filter`` finish rather than an error. Usage is
    emitted once, from the ``usageMetadata`` of that final event, since the
    transport stops reading there.
    """

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, model)
        self._calls_per_candidate: dict[int, int] = {}
        self._usage: Optional[Usage] = None
        self._roles_sent: set[int] = set()
        self._unframed = _JSONLines()
        self._signature_count = 0  # reasoning parts numbered over the whole answer

    def feed(self, event: Event) -> list[Chunk]:
        """Return the chunks of one event; raise a typed error for an error object.

        Gemini and Vertex write an error that strikes mid-stream (a 429
        ``RESOURCE_EXHAUSTED``, a 500) as pretty-printed JSON without
        ``data:``; its lines arrive as ``unframed`` events and are gathered
        until the JSON value is whole.
        """
        with attribute_errors(self.provider, self.model):
            data = event.data
            if event.unframed:
                data = self._unframed.add(data)
                if data is None:
                    return []
            if not data.strip():
                return []
            payload = self.load_json(data)
            if isinstance(payload, list) and len(payload) == 1:
                payload = payload[0]  # error bodies sometimes come as a one-item array
            data = as_dict(payload, "stream event")
            if data.get("error") is not None:
                error = in_band_error(data, provider=self.provider, model=self.model)
                raise _refine_error(error, data, None)
            return self._translate(data)

    def finish(self) -> list[Chunk]:
        """Return nothing; raise when the body ended early or inside unframed JSON."""
        if self._unframed.pending:
            raise errors.StreamConnectionError(
                "the stream ended inside a JSON value sent outside SSE framing",
                provider=self.provider,
                model=self.model,
            )
        return super().finish()

    def _translate(self, data: Mapping[str, Any]) -> list[Chunk]:
        self.response_id = as_str(data.get("responseId"), "responseId") or self.response_id
        self.response_model = (
            as_str(data.get("modelVersion"), "modelVersion") or self.response_model
        )
        self._usage = parse_usage(data.get("usageMetadata")) or self._usage
        text_chunks = self._text_only(data)
        if text_chunks is not None:
            return text_chunks
        chunks = []
        finished = False
        candidates = as_list(data.get("candidates"), "candidates")
        for position, raw in enumerate(candidates):
            candidate = as_dict(raw, "candidate")
            index = as_int(candidate.get("index"), "candidate index") or position
            chunk, candidate_finished = self._candidate_chunk(candidate, index)
            if chunk is not None:
                chunks.append(chunk)
            finished = finished or candidate_finished
        if not candidates and _block_reason(data):
            chunks.append(self.make_chunk(finish_reason="content_filter"))
            finished = True
        if finished:
            self.done = True
            if self._usage is not None:
                chunks.append(self.make_chunk(usage=self._usage))
        return chunks

    def _text_only(self, data: Mapping[str, Any]) -> Optional[list[Chunk]]:
        """Return the chunk of the most common event, one more piece of a candidate's text.

        None for any other event. For the events it takes it gives exactly
        what the general way gives: one candidate, already started (its role
        sent), no finish reason, one part holding only non-empty ``text``
        (so no call, thought or signature).
        """
        candidates = data.get("candidates")
        if type(candidates) is not list or len(candidates) != 1:
            return None
        candidate = candidates[0]
        if type(candidate) is not dict or candidate.get("finishReason"):
            return None
        index = candidate.get("index")
        if index is None:
            index = 0
        elif type(index) is not int:
            return None
        content = candidate.get("content")
        if index not in self._roles_sent or type(content) is not dict:
            return None
        parts = content.get("parts")
        if type(parts) is not list or len(parts) != 1:
            return None
        part = parts[0]
        if type(part) is not dict or len(part) != 1:
            return None
        text = part.get("text")
        if type(text) is not str or not text:
            return None
        return [self.make_text_chunk(text, index)]

    def _candidate_chunk(
        self, candidate: Mapping[str, Any], index: int
    ) -> tuple[Optional[Chunk], bool]:
        parts = _CandidateParts(candidate)
        first_call = self._calls_per_candidate.get(index, 0)
        signatures = signature_details(candidate, first_call, self._signature_count)
        self._signature_count += len(signatures)
        calls = [
            ToolCallDelta(index=first_call + number, id=call_id, name=name, arguments=arguments)
            for number, (call_id, name, arguments) in enumerate(parts.calls)
        ]
        self._calls_per_candidate[index] = first_call + len(calls)
        reason = normalize_finish_reason(
            as_str(candidate.get("finishReason"), "finishReason"),
            self._calls_per_candidate[index] > 0,
        )
        if not (parts.text or calls or parts.reasoning or reason or signatures):
            return None, False
        role = None if index in self._roles_sent else "assistant"
        self._roles_sent.add(index)
        if parts.text and role is None and not (calls or parts.reasoning or reason or signatures):
            return self.make_text_chunk(parts.text, index), False
        delta = Delta(role=role, content=parts.text, tool_calls=calls, reasoning=parts.reasoning,
                      reasoning_details=signatures)
        return self.make_chunk(delta, reason, index=index), reason is not None


class _JSONLines:
    """Gathers lines until they hold one whole JSON object or array.

    Brackets are counted outside strings, so the work is linear in the
    text; at most ``limit`` characters are held.
    """

    limit = 1024 * 1024

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._size = 0
        self._depth = 0
        self._in_string = False
        self._escaped = False

    @property
    def pending(self) -> bool:
        """Whether lines of an unfinished value are held."""
        return bool(self._lines)

    def add(self, line: str) -> Optional[str]:
        """Return the whole value once ``line`` completes it, else None.

        Raises:
            ProtocolError: the value grew past ``limit`` characters.
        """
        for character in line:
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif character == "\\":
                    self._escaped = True
                elif character == '"':
                    self._in_string = False
            elif character == '"':
                self._in_string = True
            elif character in "{[":
                self._depth += 1
            elif character in "}]":
                self._depth -= 1
        self._lines.append(line)
        self._size += len(line)
        if self._depth > 0:
            if self._size > self.limit:
                raise errors.ProtocolError(
                    f"a JSON value outside SSE framing exceeded {self.limit} characters"
                )
            return None
        text = "\n".join(self._lines)
        self._lines = []
        self._size = self._depth = 0
        self._in_string = self._escaped = False
        return text
