"""The exception tree: every error litestream raises is defined here.

Errors fall into the four categories of the seed library:

* ``client`` -- the caller can fix it (bad config, bad request, bad key); never retried.
* ``provider`` -- transient trouble on the provider's side; retryable.
* ``response`` -- the provider answered, but not with something usable.
* ``system`` -- anything else.

Every error carries ``provider``, ``model``, ``status_code``,
``provider_code``, ``retryable``, ``retry_after``, ``request_id`` and
``category``. Messages, reprs and summaries are redacted: API keys and
authorization headers never appear in them.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Iterable, Optional, Sequence

__all__ = [
    "AuthenticationError",
    "ConfigurationError",
    "ConnectTimeout",
    "ContentFilterError",
    "CREDENTIAL_HEADERS",
    "ContextWindowExceededError",
    "FirstChunkTimeout",
    "IdleTimeout",
    "InvalidRequestError",
    "LitestreamError",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitError",
    "StreamConnectionError",
    "StreamTimeout",
    "TotalTimeout",
    "UnsupportedFeatureError",
    "error_details",
    "error_summary",
    "is_credential_header",
    "is_litestream_error",
    "is_retryable",
    "redact",
    "register_secret",
    "scrub",
]

# ---------------------------------------------------------------------------
# Redaction
# ---------------------------------------------------------------------------

_REDACTED = "[REDACTED]"
_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secrets_longest_first: tuple[str, ...] = ()

#: Messages quote excerpts cut to a length, and the cut may fall inside a
#: secret: this many leading characters of a registered secret are hidden
#: wherever they appear, together with whatever follows of the secret.
_SECRET_PREFIX = 8

# Shapes of credentials worth hiding even when nobody registered them.
_CREDENTIAL_PATTERNS = re.compile(
    r"(?i)(?:"
    r"\bsk-[A-Za-z0-9_\-]{8,}"  # OpenAI, Anthropic, OpenRouter style keys
    r"|\bAIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|(?<=bearer )[A-Za-z0-9._~+/=\-]{8,}"
    r"|(?<=[?&]key=)[^&\s\"']+"
    r"|(?<=x-api-key: )\S+"
    r"|(?<=x-goog-api-key: )\S+"
    r"|(?<=authorization: )\S+(?: \S+)?"
    r"|(?<=://)[^/?#@\s]+(?=@)"  # the userinfo of a URL (user:password@host)
    r")"
)


#: Request headers that carry credentials; their values are redacted everywhere.
CREDENTIAL_HEADERS = frozenset({
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
})

_CREDENTIAL_HEADER_WORDS = ("auth", "key", "token", "secret", "signature", "cookie", "password")


def is_credential_header(name: str) -> bool:
    """Return True when a request header's value is a credential, to be redacted everywhere.

    The known ones (:data:`CREDENTIAL_HEADERS`) and any whose name mentions
    auth, key, token, secret, signature, cookie or password
    (``X-Custom-Auth``); not ``HTTP-Referer`` or ``X-Title``.
    """
    lowered = name.lower()
    if lowered in CREDENTIAL_HEADERS:
        return True
    return any(word in lowered for word in _CREDENTIAL_HEADER_WORDS)


def register_secret(secret: Optional[str]) -> None:
    """Remember ``secret`` for the whole process, so that :func:`redact` hides it everywhere.

    litestream itself registers nothing: each call's own credentials (its
    key, its credential headers, a password in its ``api_base``) are hidden
    from its errors and logs by :func:`scrub`, and forgotten with the call.
    Register a secret here only when it may appear where no call knows it
    (text you log yourself through :func:`redact`). Strings shorter than 8
    characters are ignored: they would redact ordinary words (a ``"test"``
    key would hide part of every model name); the credential patterns still
    apply to them. A truncated copy is hidden too, from its first 8
    characters on.
    """
    global _secrets_longest_first
    if not secret or len(secret) < 8:
        return
    with _secrets_lock:
        if secret in _secrets:
            return
        _secrets.add(secret)
        _secrets_longest_first = tuple(sorted(_secrets, key=len, reverse=True))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with secrets and credential-shaped strings replaced by ``[REDACTED]``.

    Args:
        text: the text to clean.
        secrets: a call's own credentials, hidden besides the registered
            ones (see :func:`register_secret`) and the credential patterns
            (``sk-...`` keys, bearer tokens, ``key=`` in URLs, URL passwords).
    """
    if not text:
        return text
    own = tuple(secret for secret in secrets if secret and len(secret) >= _SECRET_PREFIX)
    hidden = _secrets_longest_first
    if own:
        hidden = tuple(sorted({*own, *hidden}, key=len, reverse=True))
    for secret in hidden:
        text = _hide_secret(text, secret)
    return _CREDENTIAL_PATTERNS.sub(_REDACTED, text)


def scrub(error: BaseException, secrets: Sequence[str]) -> BaseException:
    """Hide a call's own credentials in ``error`` (message, attempts, partial content); return it.

    The transport does this to every error of a call before anyone sees it,
    so a key echoed back by a server never reaches a message, a log or an
    SSE error event, and nothing about the key outlives the call.
    """
    if not secrets or not isinstance(error, LitestreamError):
        return error
    error.message = redact(error.message, secrets)
    error.args = (error.message,)
    error.attempts = tuple(redact(line, secrets) for line in error.attempts)
    if error.partial_content:
        error.partial_content = redact(error.partial_content, secrets)
    return error


def _hide_secret(text: str, secret: str) -> str:
    """Replace each copy of ``secret``, whole or cut short after its first characters."""
    head = secret[:_SECRET_PREFIX]
    start = text.find(head)
    while start >= 0:
        end = start + len(head)
        limit = min(len(text), start + len(secret))
        while end < limit and text[end] == secret[end - start]:
            end += 1
        text = text[:start] + _REDACTED + text[end:]
        start = text.find(head, start + len(_REDACTED))
    return text


# ---------------------------------------------------------------------------
# The base class
# ---------------------------------------------------------------------------


class LitestreamError(Exception):
    """Base class of every error litestream raises.

    Attributes:
        message: the redacted, human-readable message.
        provider: the provider name (``"openai"``...), when known.
        model: the model name, when known.
        status_code: the HTTP status, when the error came from one.
        provider_code: the provider's own error type or code (``"overloaded_error"``).
        retryable: whether trying the same request again may succeed.
        retry_after: seconds the provider asked us to wait, or ``None``.
        request_id: the provider's request id, when it sent one.
        partial_content: text delivered to the caller before the failure.
        attempts: for errors raised by the router, one summary line per attempt.
        channel: set by :func:`litestream.alts` to the channel that failed.
    """

    category: str = "system"
    default_retryable: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        provider: Optional[str] = None,
        model: Optional[str] = None,
        status_code: Optional[int] = None,
        provider_code: Optional[str] = None,
        retryable: Optional[bool] = None,
        retry_after: Optional[float] = None,
        request_id: Optional[str] = None,
        partial_content: Optional[str] = None,
        attempts: tuple[str, ...] = (),
    ) -> None:
        self.message = redact(str(message))
        super().__init__(self.message)
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.provider_code = provider_code
        self.retryable = self.default_retryable if retryable is None else retryable
        self.retry_after = retry_after
        self.request_id = request_id
        self.partial_content = partial_content
        self.attempts = tuple(attempts)
        self.channel: Any = None

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        fields = [repr(self.message)]
        for name in ("provider", "model", "status_code", "provider_code", "retry_after"):
            value = getattr(self, name)
            if value is not None:
                fields.append(f"{name}={value!r}")
        return redact(f"{type(self).__name__}({', '.join(fields)})")

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.message, error_details(self)))


def _rebuild(cls: type[LitestreamError], message: str, details: dict[str, Any]) -> LitestreamError:
    keys = ("provider", "model", "status_code", "provider_code", "retryable",
            "retry_after", "request_id", "partial_content", "attempts")
    return cls(message, **{key: details[key] for key in keys if key in details})


# ---------------------------------------------------------------------------
# Client errors: the caller can fix them; never retried
# ---------------------------------------------------------------------------


class ConfigurationError(LitestreamError, ValueError):
    """Raised before any I/O for an unknown provider, a missing key or a malformed request."""

    category = "client"


class AuthenticationError(LitestreamError):
    """Raised when the provider rejects the API key (HTTP 401)."""

    category = "client"


class PermissionDeniedError(LitestreamError):
    """Raised when the key may not use this model or endpoint (HTTP 403)."""

    category = "client"


class InvalidRequestError(LitestreamError):
    """Raised when the provider rejects the request as malformed (HTTP 400, 413, 422)."""

    category = "client"


class ContextWindowExceededError(InvalidRequestError):
    """Raised when the prompt and ``max_tokens`` do not fit the model's context window."""


class NotFoundError(LitestreamError):
    """Raised for an HTTP 404: the URL path does not exist (a wrong ``api_base``, say).

    The message names the path that was not found. A 404 whose body says
    the model does not exist is the subclass :class:`ModelNotFoundError`.
    """

    category = "client"


class ModelNotFoundError(NotFoundError):
    """Raised when the provider says the model does not exist (an HTTP 404 about the model)."""


class UnsupportedFeatureError(InvalidRequestError):
    """Raised when a request asks for something the provider cannot do."""


class QuotaExceededError(LitestreamError):
    """Raised for a 429 that means the billing quota is gone: waiting will not help."""

    category = "client"


# ---------------------------------------------------------------------------
# Provider errors: transient; retryable
# ---------------------------------------------------------------------------


class RateLimitError(LitestreamError):
    """Raised on HTTP 429; ``retry_after`` holds the wait the provider asked for."""

    category = "provider"
    default_retryable = True


class ProviderError(LitestreamError):
    """Raised on HTTP 5xx, Anthropic's 529 overloaded, or an error event inside a 200 stream."""

    category = "provider"
    default_retryable = True


class StreamTimeout(LitestreamError, TimeoutError):
    """Base of the deadline errors; also a builtin :class:`TimeoutError`."""

    category = "provider"
    default_retryable = True


class ConnectTimeout(StreamTimeout):
    """Raised when the connection or the response headers do not come within ``connect_timeout``."""


class FirstChunkTimeout(StreamTimeout):
    """Raised when no content chunk arrives within ``first_chunk_timeout``."""


class IdleTimeout(StreamTimeout):
    """Raised when no content chunk arrives for ``idle_timeout`` (pings do not count)."""


class TotalTimeout(StreamTimeout):
    """Raised when the whole stream takes longer than ``timeout``."""

    default_retryable = False


class StreamConnectionError(LitestreamError, ConnectionError):
    """Raised when the connection is refused, reset, or cut in the middle of a stream."""

    category = "provider"
    default_retryable = True


# ---------------------------------------------------------------------------
# Response errors: the provider answered, but not usably
# ---------------------------------------------------------------------------


class ProtocolError(LitestreamError):
    """Raised for malformed frames, JSON, UTF-8, or an event larger than allowed."""

    category = "response"


class ContentFilterError(LitestreamError):
    """Raised when the provider blocked the prompt or the output and said so as an error."""

    category = "response"


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def is_litestream_error(value: object) -> bool:
    """Return True when ``value`` is an exception raised by litestream."""
    return isinstance(value, LitestreamError)


def is_retryable(error: BaseException) -> bool:
    """Return True when trying the same request again may succeed."""
    return isinstance(error, LitestreamError) and bool(error.retryable)


def error_details(error: BaseException) -> dict[str, Any]:
    """Return the error's fields as a JSON-ready dict (redacted)."""
    if not isinstance(error, LitestreamError):
        return {"type": type(error).__name__, "message": redact(str(error)), "category": "system"}
    return {
        "type": type(error).__name__,
        "message": error.message,
        "category": error.category,
        "provider": error.provider,
        "model": error.model,
        "status_code": error.status_code,
        "provider_code": error.provider_code,
        "retryable": error.retryable,
        "retry_after": error.retry_after,
        "request_id": error.request_id,
        "partial_content": error.partial_content,
        "attempts": list(error.attempts),
    }


def error_summary(error: BaseException) -> str:
    """Return one redacted line describing ``error``.

    Example: ``RateLimitError: openai/gpt-4o-mini HTTP 429 — Rate limit reached
    (retry after 2.0s)``.
    """
    parts = [f"{type(error).__name__}:"]
    if isinstance(error, LitestreamError):
        where = "/".join(part for part in (error.provider, error.model) if part)
        if where:
            parts.append(where)
        if error.status_code is not None:
            parts.append(f"HTTP {error.status_code}")
        message = error.message
    else:
        message = str(error)
    line = " ".join(parts)
    if message:
        line += f" — {message}" if len(parts) > 1 else f" {message}"
    if isinstance(error, LitestreamError) and error.retry_after is not None:
        line += f" (retry after {error.retry_after:.1f}s)"
    return redact(" ".join(line.split()))
