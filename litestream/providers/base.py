"""The provider interface: pure translation between OpenAI-style input and each wire format.

A provider never touches a socket. It turns a chat request into an
:class:`HTTPRequest`, turns each framed wire :class:`Event` into zero or more
:class:`~litestream.types.Chunk` objects (through a per-stream
:class:`StreamParser`, since some formats need state across events), turns a
whole non-streamed body into a :class:`~litestream.types.Response`, and turns
an error body into a typed :class:`~litestream.errors.LitestreamError`.
"""

from __future__ import annotations

import http
import json
import re
import time
from typing import Any, Mapping, Optional, Sequence

from litestream import errors
from litestream._construct import make_choice, make_chunk, make_delta, text_chunk
from litestream.options import CallOptions
from litestream.types import (
    Choice,
    Chunk,
    Delta,
    Response,
    Usage,
    _EventJSON,
)
from litestream.wire import Event, HTTPRequest

#: The C scanner behind ``json.loads``, without its wrapper: ``(value, end)``.
_scan_json = json.JSONDecoder().scan_once


def whole_json_object(data: str) -> Optional[dict[str, Any]]:
    """Return ``data`` decoded if it is exactly one JSON object, with nothing around it; else None.

    The parsers' short ways for their most common event use it; anything
    else (another JSON value, surrounding text, malformed JSON) is left to
    their general way, which reports it.
    """
    try:
        value, end = _scan_json(data, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    return value if end == len(data) and type(value) is dict else None

__all__ = [
    "Provider",
    "StreamParser",
    "describe_body",
    "error_for_status",
    "join_text",
    "join_url",
    "parse_retry_after",
]


class StreamParser:
    """Per-stream state turning wire events into chunks.

    ``feed`` returns the chunks one event produces (possibly none) and raises
    a :class:`~litestream.errors.LitestreamError` for an in-band error event
    or malformed data. ``done`` becomes True once the provider's terminal
    event arrived (``[DONE]``, ``message_stop``, ``done: true``, a final
    finish reason); the transport stops reading then. ``finish`` is called
    at the end of the body and returns any last chunks; it raises
    :class:`~litestream.errors.StreamConnectionError` when the body ended
    before the provider's terminal event, unless a finish reason had already
    arrived (``saw_finish``): then nothing was lost, only the terminator
    (llama.cpp and some proxies leave out ``[DONE]``).
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.done = False
        self.saw_finish = False
        # Identity of the response, filled in from the wire as it arrives;
        # ``make_chunk`` stamps every chunk with it.
        self.response_id: Optional[str] = None
        self.response_model: Optional[str] = None
        self.created: Optional[int] = int(time.time())
        # The latest decoded event (from ``load_json``): chunks made from it
        # keep it as their read-only ``provider_event``.
        self.provider_event: Any = None
        # The object ``load_json`` last decoded and the text it came from: a
        # token chunk of that same event keeps the text (see make_text_chunk).
        self._decoded: Any = None
        self._decoded_from = ""

    def feed(self, event: Event) -> list[Chunk]:
        """Return the chunks ``event`` produces; raise a LitestreamError for an error event."""
        raise NotImplementedError

    def feed_many(self, events: Sequence[Event], chunks: list[Chunk]) -> None:
        """Append the chunks of ``events`` (one read's) to ``chunks``, up to the final event.

        Events after the provider's final one are ignored (``done`` is then
        True). When an event raises, ``chunks`` holds the chunks of the
        events before it, for the reader to deliver first.
        """
        extend = chunks.extend
        feed = self.feed
        for event in events:
            if self.done:
                return
            extend(feed(event))

    def finish(self) -> list[Chunk]:
        """Return last chunks at end of body; raise when the stream was cut short."""
        if not self.done and not self.saw_finish:
            raise errors.StreamConnectionError(
                "the stream ended before the provider's final event",
                provider=self.provider,
                model=self.model,
            )
        return []

    def load_json(self, data: str) -> Any:
        """Parse one event's JSON; raise ProtocolError (with a short excerpt) if it is not JSON."""
        try:
            value, end = _scan_json(data, 0)
            if end == len(data):
                self.provider_event = self._decoded = value
                self._decoded_from = data
                return value
        except (StopIteration, ValueError, RecursionError):
            pass  # json.loads below says what is wrong
        try:
            self.provider_event = self._decoded = json.loads(data)
            self._decoded_from = data
            return self.provider_event
        except ValueError:
            excerpt = data[:80] + ("..." if len(data) > 80 else "")
            raise errors.ProtocolError(
                f"malformed JSON in stream event: {excerpt!r}",
                provider=self.provider,
                model=self.model,
            ) from None
        except RecursionError:
            raise errors.ProtocolError(
                "stream event JSON is nested too deeply",
                provider=self.provider,
                model=self.model,
            ) from None

    def make_chunk(
        self,
        delta: Optional[Delta] = None,
        finish_reason: Optional[str] = None,
        *,
        index: int = 0,
        usage: Optional[Usage] = None,
    ) -> Chunk:
        """Return a chunk stamped with this stream's id, model, provider and creation time.

        With neither ``delta`` nor ``finish_reason`` the chunk has no choices
        (a usage-only chunk).
        """
        choices: tuple[Choice, ...] = ()
        if delta is not None or finish_reason is not None:
            if finish_reason is not None:
                self.saw_finish = True
            choices = (make_choice(index, delta or make_delta(), finish_reason),)
        event = self.provider_event
        return make_chunk(self.response_id, self.response_model or self.model, self.provider,
                           self.created, choices, usage, event if type(event) is dict else None)

    def make_text_chunk(self, text: str, index: int = 0) -> Chunk:
        """Return ``make_chunk(Delta(content=text), index=index)``, the chunk of one token, cheaply.

        Most events of a stream are a piece of text: this skips building
        the delta and choice up front (see :func:`litestream._construct.text_chunk`).
        The chunk keeps the event's JSON text rather than the decoded event
        when ``provider_event`` is what :meth:`load_json` (or a parser's
        short way, the same way) last decoded from that text:
        ``Chunk.provider_event`` decodes it if it is ever read, and the
        decoded dicts die at once instead of living, and being walked by the
        garbage collector, as long as the chunk.
        """
        event = self.provider_event
        if type(event) is not dict:
            event = None
        elif event is self._decoded:
            event = _EventJSON(self._decoded_from)
        return text_chunk(self.response_id, self.response_model or self.model, self.provider,
                          self.created, index, text, event)

    def make_chunk_of(self, choices: Sequence[Choice], usage: Optional[Usage] = None) -> Chunk:
        """Return a chunk with the given ``choices``, stamped like :meth:`make_chunk`.

        A choice with a finish reason sets ``saw_finish``.
        """
        for choice in choices:
            if choice.finish_reason is not None:
                self.saw_finish = True
        event = self.provider_event
        return make_chunk(self.response_id, self.response_model or self.model, self.provider,
                           self.created, tuple(choices), usage,
                           event if type(event) is dict else None)


class Provider:
    """One provider's translation rules and defaults.

    Attributes:
        name: the provider's name as used in ``completion("name", ...)``.
        default_api_base: the base URL used when the config has no ``api_base``.
        env_var: the environment variable holding the API key (``None`` for none).
        env_var_aliases: other variables that may hold the key, tried after
            ``env_var`` (Gemini also reads ``GOOGLE_API_KEY``).
        base_url_env_var: the environment variable that overrides the base URL.
        default_model: a sensible current model for quick setup.
        requires_api_key: whether a request without a key is a ConfigurationError.
        framing: ``"sse"`` or ``"ndjson"``, how streamed bodies are framed.
        supports_streaming, supports_tools: capability flags for discovery.
    """

    name: str = ""
    default_api_base: str = ""
    env_var: Optional[str] = None
    env_var_aliases: tuple[str, ...] = ()
    base_url_env_var: Optional[str] = None
    default_model: str = ""
    requires_api_key: bool = True
    framing: str = "sse"
    supports_streaming: bool = True
    supports_tools: bool = True

    def build_request(
        self, model: str, request: Mapping[str, Any], options: CallOptions
    ) -> HTTPRequest:
        """Return the HTTP request for an OpenAI-style chat ``request``.

        ``request["stream"]`` says whether to ask for a stream. ``config``
        holds ``api_key``, ``api_base`` and extra ``headers``. Raises
        ConfigurationError for input the provider cannot express.
        """
        raise NotImplementedError

    def api_base(self, options: CallOptions) -> str:
        """Return the base URL: ``options.api_base`` or the provider's default."""
        return options.api_base or self.default_api_base

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """Return the headers carrying ``api_key``: ``Authorization: Bearer`` unless overridden."""
        return {"Authorization": f"Bearer {api_key}"}

    def headers(
        self, options: CallOptions, fixed: Optional[Mapping[str, str]] = None
    ) -> dict[str, str]:
        """Return a request's headers, later ones winning.

        JSON content type, then ``fixed`` (headers the API always wants, such
        as Anthropic's version), then :meth:`auth_headers` when there is a
        key, then ``headers``.
        """
        headers = {"Content-Type": "application/json", **(fixed or {})}
        if options.api_key:
            headers.update(self.auth_headers(options.api_key))
        headers.update(options.headers)
        return headers

    def _request(
        self,
        path: str,
        body: Mapping[str, Any],
        stream: bool,
        options: CallOptions,
        fixed_headers: Optional[Mapping[str, str]] = None,
    ) -> HTTPRequest:
        """Return the JSON POST of ``body`` to ``path`` under :meth:`api_base`.

        A stream is framed as :attr:`framing` says; any other answer is one
        JSON body. ``fixed_headers`` go to :meth:`headers`.
        """
        return HTTPRequest(
            method="POST",
            url=join_url(self.api_base(options), path),
            headers=self.headers(options, fixed_headers),
            json=body,
            framing=self.framing if stream else "json",
        )

    def stream_parser(self, model: str) -> StreamParser:
        """Return a fresh parser for one streamed response."""
        raise NotImplementedError

    def parse_response(self, body: Mapping[str, Any], model: str) -> Response:
        """Return the Response of a whole non-streamed body."""
        raise NotImplementedError

    def parse_error(
        self,
        status_code: int,
        body: str,
        headers: Mapping[str, str],
        model: str,
    ) -> errors.LitestreamError:
        """Return the typed error for an HTTP error response (see :func:`error_for_status`)."""
        raise NotImplementedError

    def error_for_answer(
        self,
        status_code: int,
        body: str,
        headers: Mapping[str, str],
        model: str,
    ) -> errors.LitestreamError:
        """Return :meth:`parse_error`'s error, never raising: what the transport calls.

        A body that breaks the parser (a hostile server's) still gives the
        error its HTTP status says, so a 429 stays a retryable
        :class:`~litestream.errors.RateLimitError`.
        """
        try:
            return self.parse_error(status_code, body, headers, model)
        except Exception:
            return error_for_status(status_code, "", headers=headers, provider=self.name,
                                    model=model)


def join_url(api_base: str, path: str) -> str:
    """Join a base URL and a path, with exactly one slash between them.

    A query string on the base (Azure's ``?api-version=...``) is kept and
    merged with one on the path: ``join_url("http://h/v1?a=1", "/x?b=2")``
    gives ``"http://h/v1/x?a=1&b=2"``.
    """
    base, _, base_query = api_base.partition("?")
    path, _, path_query = path.partition("?")
    url = base.rstrip("/") + "/" + path.lstrip("/")
    query = "&".join(part for part in (base_query, path_query) if part)
    return f"{url}?{query}" if query else url


def join_text(parts: Sequence[Any]) -> str:
    """Join message content given either as a string or as OpenAI content parts."""
    if isinstance(parts, str):
        return parts
    texts = []
    for part in parts or ():
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, Mapping) and part.get("type") in ("text", "input_text"):
            texts.append(str(part.get("text", "")))
    return "".join(texts)


_CONTEXT_WINDOW_HINTS = (
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "exceeds the maximum number of tokens",
    "token count",
)
_QUOTA_HINTS = ("insufficient_quota", "quota", "billing")


def parse_retry_after(headers: Mapping[str, str], now: Optional[float] = None) -> Optional[float]:
    """Return the wait in seconds from ``retry-after-ms`` or ``retry-after`` (seconds or date)."""
    import email.utils
    import math
    import time

    lowered = {key.lower(): value for key, value in headers.items()}
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        try:
            seconds = float(milliseconds) / 1000.0
            return max(0.0, seconds) if math.isfinite(seconds) else None
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def describe_body(body: str, limit: int = 300) -> str:
    """Return a short plain-text excerpt of an error body that is not JSON (HTML pages, text)."""
    text = re.sub(r"<[^>]+>", " ", body)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def _reason_phrase(status_code: int) -> str:
    try:
        phrase = http.HTTPStatus(status_code).phrase
    except ValueError:
        phrase = ""
    return f"{phrase or 'no message'} (the error body was empty)"


def error_for_status(
    status_code: int,
    message: str,
    *,
    headers: Mapping[str, str] = {},
    provider: Optional[str] = None,
    model: Optional[str] = None,
    provider_code: Optional[str] = None,
) -> errors.LitestreamError:
    """Return the typed error for an HTTP status and the provider's own message.

    401 -> AuthenticationError, 403 -> PermissionDeniedError, 404 ->
    ModelNotFoundError when the message is about the model, else
    NotFoundError, 400/413/422 -> InvalidRequestError (or
    ContextWindowExceededError when the message says so), 429 ->
    RateLimitError (QuotaExceededError when the quota is gone), 408, 409,
    5xx and 529 -> ProviderError.
    """
    lowered_headers = {key.lower(): value for key, value in headers.items()}
    fields: dict[str, Any] = {
        "provider": provider,
        "model": model,
        "status_code": status_code,
        "provider_code": provider_code,
        "retry_after": parse_retry_after(headers),
        "request_id": lowered_headers.get("x-request-id") or lowered_headers.get("request-id"),
    }
    text = message or _reason_phrase(status_code)
    lowered = f"{text} {provider_code or ''}".lower()
    error_class: type[errors.LitestreamError]
    if status_code == 401:
        error_class = errors.AuthenticationError
    elif status_code == 403:
        error_class = errors.PermissionDeniedError
    elif status_code == 404:
        about_model = "model" in lowered or (model is not None and model.lower() in lowered)
        error_class = errors.ModelNotFoundError if about_model else errors.NotFoundError
    elif status_code == 429:
        if any(hint in lowered for hint in _QUOTA_HINTS) and "rate" not in lowered:
            error_class = errors.QuotaExceededError
        else:
            error_class = errors.RateLimitError
    elif status_code in (408, 409) or status_code >= 500:
        error_class = errors.ProviderError
    elif any(hint in lowered for hint in _CONTEXT_WINDOW_HINTS):
        error_class = errors.ContextWindowExceededError
    elif 400 <= status_code < 500:
        error_class = errors.InvalidRequestError
    else:
        error_class = errors.ProtocolError
    return error_class(text, **fields)
