"""The provider interface: pure translation between OpenAI-style input and each wire format.

A provider never touches a socket. It turns a chat request into an
:class:`HTTPRequest`, turns each framed wire :class:`Event` into zero or more
:class:`~litestream.types.Chunk` objects (through a per-stream
:class:`StreamParser`, since some formats need state across events), turns a
whole non-streamed body into a :class:`~litestream.types.Response`, and turns
an error body into a typed :class:`~litestream.errors.LitestreamError`.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, Iterator, Mapping, Optional, Sequence

import attrs

from litestream import errors
from litestream.types import Choice, Chunk, Delta, Response, Usage

__all__ = [
    "STATUS_FOR_ERROR_TYPE",
    "Event",
    "HTTPRequest",
    "Provider",
    "StreamParser",
    "as_dict",
    "as_int",
    "as_list",
    "as_str",
    "attribute_errors",
    "describe_body",
    "error_for_status",
    "error_from_body",
    "extract_error",
    "in_band_error",
    "join_text",
    "join_url",
    "load_error_json",
    "parse_retry_after",
    "retype_error",
]


@attrs.frozen
class Event:
    """One framed wire event: an SSE event (``event`` name and joined ``data``) or one NDJSON line.

    ``event`` is ``None`` for NDJSON lines and for SSE events without an
    ``event:`` field.
    """

    data: str
    event: Optional[str] = None


@attrs.frozen
class HTTPRequest:
    """Everything the transport needs to send one request.

    ``framing`` is ``"sse"`` or ``"ndjson"`` for streams, ``"json"`` for a
    whole body.
    """

    method: str
    url: str
    headers: Mapping[str, str]
    json: Optional[Mapping[str, Any]] = None
    framing: str = "sse"


class StreamParser:
    """Per-stream state turning wire events into chunks.

    ``feed`` returns the chunks one event produces (possibly none) and raises
    a :class:`~litestream.errors.LitestreamError` for an in-band error event
    or malformed data. ``done`` becomes True once the provider's terminal
    event arrived (``[DONE]``, ``message_stop``, ``done: true``, a final
    finish reason); the transport stops reading then. ``finish`` is called
    at the end of the body and returns any last chunks; it raises
    :class:`~litestream.errors.StreamConnectionError` when the body ended
    before the provider's terminal event.
    """

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        self.done = False
        # Identity of the response, filled in from the wire as it arrives;
        # ``make_chunk`` stamps every chunk with it.
        self.response_id: Optional[str] = None
        self.response_model: Optional[str] = None
        self.created: Optional[int] = int(time.time())

    def feed(self, event: Event) -> list[Chunk]:
        """Return the chunks ``event`` produces; raise a LitestreamError for an error event."""
        raise NotImplementedError

    def finish(self) -> list[Chunk]:
        """Return last chunks at end of body; raise when the stream was cut short."""
        if not self.done:
            raise errors.StreamConnectionError(
                "the stream ended before the provider's final event",
                provider=self.provider,
                model=self.model,
            )
        return []

    def load_json(self, data: str) -> Any:
        """Parse one event's JSON; raise ProtocolError (with a short excerpt) if it is not JSON."""
        try:
            return json.loads(data)
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
            choices = (Choice(index=index, delta=delta or Delta(), finish_reason=finish_reason),)
        return self.make_chunk_of(choices, usage)

    def make_chunk_of(self, choices: Sequence[Choice], usage: Optional[Usage] = None) -> Chunk:
        """Return a chunk with the given ``choices``, stamped like :meth:`make_chunk`."""
        return Chunk(
            id=self.response_id,
            model=self.response_model or self.model,
            provider=self.provider,
            created=self.created,
            choices=tuple(choices),
            usage=usage,
        )


class Provider:
    """One provider's translation rules and defaults.

    Attributes:
        name: the provider's name as used in ``completion("name", ...)``.
        default_api_base: the base URL used when the config has no ``api_base``.
        env_var: the environment variable holding the API key (``None`` for none).
        base_url_env_var: the environment variable that overrides the base URL.
        default_model: a sensible current model for quick setup.
        requires_api_key: whether a request without a key is a ConfigurationError.
        framing: ``"sse"`` or ``"ndjson"``, how streamed bodies are framed.
        supports_streaming, supports_tools: capability flags for discovery.
    """

    name: str = ""
    default_api_base: str = ""
    env_var: Optional[str] = None
    base_url_env_var: Optional[str] = None
    default_model: str = ""
    requires_api_key: bool = True
    framing: str = "sse"
    supports_streaming: bool = True
    supports_tools: bool = True

    def build_request(
        self, model: str, request: Mapping[str, Any], config: Mapping[str, Any]
    ) -> HTTPRequest:
        """Return the HTTP request for an OpenAI-style chat ``request``.

        ``request["stream"]`` says whether to ask for a stream. ``config``
        holds ``api_key``, ``api_base`` and extra ``headers``. Raises
        ConfigurationError for input the provider cannot express.
        """
        raise NotImplementedError

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
    import time

    lowered = {key.lower(): value for key, value in headers.items()}
    milliseconds = lowered.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000.0)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
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
    import re

    text = re.sub(r"<[^>]+>", " ", body)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


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
    ModelNotFoundError, 400/413/422 -> InvalidRequestError (or
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
    text = message or f"HTTP {status_code}"
    lowered = f"{text} {provider_code or ''}".lower()
    error_class: type[errors.LitestreamError]
    if status_code == 401:
        error_class = errors.AuthenticationError
    elif status_code == 403:
        error_class = errors.PermissionDeniedError
    elif status_code == 404:
        error_class = errors.ModelNotFoundError
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


def retype_error(
    error: errors.LitestreamError, error_class: type[errors.LitestreamError]
) -> errors.LitestreamError:
    """Return a copy of ``error`` as ``error_class``, keeping every field.

    Used where a provider's own error type is more precise than its HTTP
    status (Anthropic's ``billing_error`` is a quota problem, not a bad request).
    """
    return error_class(
        error.message,
        provider=error.provider,
        model=error.model,
        status_code=error.status_code,
        provider_code=error.provider_code,
        retry_after=error.retry_after,
        request_id=error.request_id,
    )


# ---------------------------------------------------------------------------
# Wire-shape guards: JSON that parses but has the wrong shape is a ProtocolError
# ---------------------------------------------------------------------------


def as_dict(value: Any, what: str) -> Mapping[str, Any]:
    """Return ``value`` if it is a JSON object, ``{}`` if null; else raise ProtocolError."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errors.ProtocolError(f"{what} is a {_json_type(value)}, expected an object")
    return value


def as_list(value: Any, what: str) -> Sequence[Any]:
    """Return ``value`` if it is a JSON array, ``[]`` if null; else raise ProtocolError."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise errors.ProtocolError(f"{what} is a {_json_type(value)}, expected an array")
    return value


def as_str(value: Any, what: str) -> Optional[str]:
    """Return ``value`` when it is a string or null; else raise ProtocolError."""
    if value is None or isinstance(value, str):
        return value
    raise errors.ProtocolError(f"{what} is a {_json_type(value)}, expected a string")


def as_int(value: Any, what: str) -> Optional[int]:
    """Return ``value`` as an int when it is a whole number or null; else raise ProtocolError."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise errors.ProtocolError(f"{what} is {_json_type(value)} {value!r}, expected an integer")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "null" if value is None else type(value).__name__


@contextlib.contextmanager
def attribute_errors(provider: str, model: Optional[str]) -> Iterator[None]:
    """Fill in ``provider`` and ``model`` on LitestreamErrors raised inside the block.

    The shape guards above raise without knowing which stream they serve;
    parsers wrap their work in this so every error names its provider.
    """
    try:
        yield
    except errors.LitestreamError as error:
        error.provider = error.provider or provider
        error.model = error.model or model
        raise


# ---------------------------------------------------------------------------
# URLs and error bodies
# ---------------------------------------------------------------------------


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


#: Equivalent HTTP status of the error types providers send inside a stream
#: (OpenAI and Anthropic ``type`` values, Google ``status`` values), used to
#: pick the error class when no status code came with the error.
STATUS_FOR_ERROR_TYPE: Mapping[str, int] = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "authentication_error": 401,
    "UNAUTHENTICATED": 401,
    "billing_error": 402,
    "permission_error": 403,
    "permission_denied": 403,
    "PERMISSION_DENIED": 403,
    "not_found_error": 404,
    "NOT_FOUND": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "RESOURCE_EXHAUSTED": 429,
    "api_error": 500,
    "server_error": 500,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "timeout_error": 504,
    "DEADLINE_EXCEEDED": 504,
    "overloaded_error": 529,
}


def in_band_error(
    data: Any, *, provider: str, model: Optional[str], default: str = "error in stream"
) -> errors.LitestreamError:
    """Return the typed error for an error object that arrived inside a 200 stream.

    The class comes from the error's numeric HTTP-like ``code`` when it has
    one, else from its type (``rate_limit_error`` -> RateLimitError,
    ``overloaded_error`` -> ProviderError, ...); an unknown error is a
    retryable ProviderError. The provider's message and type are kept
    (``provider_code``); ``status_code`` is set only when the provider sent a
    numeric code, since the HTTP status itself was 200.
    """
    message, provider_code, numeric = extract_error(data)
    text = message or default
    if numeric is not None and 400 <= numeric <= 599:
        return error_for_status(
            numeric, text, provider=provider, model=model, provider_code=provider_code
        )
    status = STATUS_FOR_ERROR_TYPE.get(provider_code or "")
    if status is None:
        return errors.ProviderError(text, provider=provider, model=model,
                                    provider_code=provider_code)
    error = error_for_status(status, text, provider=provider, model=model,
                             provider_code=provider_code)
    if status == 402:
        error = retype_error(error, errors.QuotaExceededError)
    error.status_code = None
    return error


def extract_error(data: Any) -> tuple[Optional[str], Optional[str], Optional[int]]:
    """Return ``(message, provider_code, numeric_code)`` from a parsed error body.

    Understands the shapes providers really send: OpenAI's ``{"error":
    {"message", "type", "code"}}``, Anthropic's ``{"type": "error", "error":
    {"type", "message"}}``, Google's ``{"error": {"code", "message",
    "status"}}``, Ollama's ``{"error": "..."}``, Mistral's ``{"object":
    "error", "message": ..., "type": ...}`` (whose message may be a
    validation-detail object), FastAPI's ``{"detail": ...}``, and a list
    holding one of these. The provider code prefers a textual ``code``, then
    ``type``, then ``status``. Missing parts are None.
    """
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, Mapping):
        return None, None, None
    inner = data.get("error")
    if isinstance(inner, str):
        return inner, _text_or_none(data.get("type") or data.get("code")), None
    if isinstance(inner, Mapping):
        data = inner
    message = _message_text(data.get("message"))
    if message is None:
        message = _message_text(data.get("detail"))
    code = data.get("code")
    numeric = None
    if isinstance(code, int) and not isinstance(code, bool):
        numeric = code
    elif isinstance(code, str) and code.isdigit():
        numeric = int(code)
    textual = code if isinstance(code, str) and not code.isdigit() and code else None
    provider_code = (
        textual or _text_or_none(data.get("type")) or _text_or_none(data.get("status"))
    )
    if provider_code is None and numeric is not None:
        provider_code = str(numeric)
    return message, provider_code, numeric


def _text_or_none(value: Any) -> Optional[str]:
    return value if isinstance(value, str) and value else None


def _message_text(value: Any) -> Optional[str]:
    """Return an error message as text; validation details become their ``msg`` lines."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "detail" in value:
        return _message_text(value["detail"])
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, Mapping) and isinstance(item.get("msg"), str):
                where = ".".join(str(part) for part in item.get("loc") or ())
                lines.append(f"{where}: {item['msg']}" if where else item["msg"])
            else:
                lines.append(json.dumps(item, default=str))
        return "; ".join(lines)
    return json.dumps(value, default=str)


def load_error_json(data: str) -> Any:
    """Parse the data of an error event leniently: text that is not JSON becomes its message."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return {"message": data}


def error_from_body(
    status_code: int,
    body: str,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: Optional[str],
) -> errors.LitestreamError:
    """Return the typed error for an HTTP error body of any common shape.

    JSON bodies go through :func:`extract_error`; HTML or plain-text bodies
    (proxies, load balancers) become a short excerpt via :func:`describe_body`.
    A 402 (OpenRouter's "insufficient credits") is a QuotaExceededError.
    """
    message, provider_code = _error_text(body)
    error = error_for_status(
        status_code,
        message,
        headers=headers,
        provider=provider,
        model=model,
        provider_code=provider_code,
    )
    if status_code == 402:
        # Payment Required: credits or billing, which no retry will fix.
        error = retype_error(error, errors.QuotaExceededError)
    return error


def _error_text(body: str) -> tuple[str, Optional[str]]:
    try:
        data = json.loads(body) if body else None
    except (ValueError, RecursionError):
        return describe_body(body), None
    message, provider_code, _ = extract_error(data)
    if message is None:
        message = describe_body(body)
    return message, provider_code
