"""Reading provider JSON safely: wire-shape guards, error bodies and URLs.

Shared by every provider module. The guards turn JSON that parses but has
the wrong shape into :class:`~litestream.errors.ProtocolError` (never a
TypeError or KeyError), and the error helpers read the error objects
providers really send, in HTTP bodies and inside 200 streams, into the
typed errors of :mod:`litestream.errors`.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Sequence

from litestream import errors
from litestream.providers.base import describe_body, error_for_status, join_url
from litestream.types import Usage

__all__ = [
    "parse_usage",
    "STATUS_FOR_ERROR_TYPE",
    "as_dict",
    "as_int",
    "as_list",
    "as_str",
    "attribute_errors",
    "error_from_body",
    "extract_error",
    "in_band_error",
    "join_url",
    "load_error_json",
    "retype_error",
]


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
    if type(value) is dict:  # the common case, checked first: this runs per event
        return value
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errors.ProtocolError(f"{what} is a {_json_type(value)}, expected an object")
    return value


def as_list(value: Any, what: str) -> Sequence[Any]:
    """Return ``value`` if it is a JSON array, ``[]`` if null; else raise ProtocolError."""
    if type(value) is list:
        return value
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


def parse_usage(
    raw: Any,
    *,
    prompt: str = "prompt_tokens",
    completion: str = "completion_tokens",
) -> Optional[Usage]:
    """Return the Usage of an OpenAI-shaped ``usage`` object, or None when there is none.

    The one parser of OpenAI's usage shape, for chat completions
    (``prompt_tokens``, ``completion_tokens``) and the Responses API
    (``prompt="input_tokens"``, ``completion="output_tokens"``): cached
    input tokens come from ``<prompt>_details.cached_tokens``, reasoning
    tokens from ``<completion>_details.reasoning_tokens``; a missing total
    is the sum.
    """
    usage = as_dict(raw, "usage")
    if not usage:
        return None
    prompt_tokens = as_int(usage.get(prompt), prompt) or 0
    completion_tokens = as_int(usage.get(completion), completion) or 0
    total = as_int(usage.get("total_tokens"), "total_tokens")
    prompt_details = as_dict(usage.get(f"{prompt}_details"), f"{prompt}_details")
    completion_details = as_dict(usage.get(f"{completion}_details"), f"{completion}_details")
    return Usage(
        prompt_tokens,
        completion_tokens,
        prompt_tokens + completion_tokens if total is None else total,
        cached_tokens=as_int(prompt_details.get("cached_tokens"), "cached_tokens"),
        reasoning_tokens=as_int(completion_details.get("reasoning_tokens"), "reasoning_tokens"),
    )


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


class attribute_errors:  # noqa: N801 - used like the function it replaced: `with attribute_errors(...)`
    """Fill in ``provider`` and ``model`` on LitestreamErrors raised inside the block.

    The shape guards above raise without knowing which stream they serve;
    parsers wrap their work in this so every error names its provider. A
    class rather than a generator-based context manager: it runs once per
    stream event, and this costs a fifth as much.
    """

    __slots__ = ("provider", "model")

    def __init__(self, provider: str, model: Optional[str]) -> None:
        self.provider = provider
        self.model = model

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
        if isinstance(error, errors.LitestreamError):
            error.provider = error.provider or self.provider
            error.model = error.model or self.model
        return False


# ---------------------------------------------------------------------------
# URLs and error bodies
# ---------------------------------------------------------------------------


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
