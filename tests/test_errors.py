from __future__ import annotations

import pickle

import pytest

from litestream import errors
from litestream.errors import (
    ConfigurationError,
    ContextWindowExceededError,
    InvalidRequestError,
    LitestreamError,
    ProviderError,
    RateLimitError,
    StreamTimeout,
    error_details,
    error_summary,
    is_litestream_error,
    is_retryable,
    redact,
    register_secret,
)

CANARY = "sk-canary-0123456789abcdef"


def test_summary_is_one_line_with_retry_hint():
    error = RateLimitError("Rate limit reached\nfor requests", provider="openai",
                           model="gpt-4o-mini", status_code=429, retry_after=2.0)
    assert error_summary(error) == (
        "RateLimitError: openai/gpt-4o-mini HTTP 429 — Rate limit reached for requests "
        "(retry after 2.0s)")


def test_summary_of_a_foreign_exception():
    assert error_summary(KeyError("x")) == "KeyError: 'x'"


@pytest.mark.parametrize("cls, category, retryable", [
    (ConfigurationError, "client", False),
    (InvalidRequestError, "client", False),
    (RateLimitError, "provider", True),
    (ProviderError, "provider", True),
    (errors.FirstChunkTimeout, "provider", True),
    (errors.StreamConnectionError, "provider", True),
    (errors.ProtocolError, "response", False),
    (errors.ContentFilterError, "response", False),
    (errors.QuotaExceededError, "client", False),
])
def test_categories_and_retryability(cls, category, retryable):
    error = cls("x")
    assert error.category == category
    assert is_retryable(error) is retryable
    assert is_litestream_error(error)


def test_builtin_bases():
    assert isinstance(ConfigurationError("x"), ValueError)
    assert isinstance(errors.IdleTimeout("x"), TimeoutError)
    assert isinstance(errors.IdleTimeout("x"), StreamTimeout)
    assert issubclass(ContextWindowExceededError, InvalidRequestError)
    assert not is_litestream_error(ValueError("x"))


def test_registered_secret_never_appears():
    register_secret(CANARY)
    error = errors.AuthenticationError(f"bad key {CANARY}", provider="openai", status_code=401)
    for text in (str(error), repr(error), error_summary(error), str(error_details(error)),
                 str(pickle.loads(pickle.dumps(error)))):
        assert CANARY not in text
        assert "[REDACTED]" in text


@pytest.mark.parametrize("text", [
    "Authorization: Bearer abcdefghijklmnop",
    "x-api-key: sk-ant-api03-secretsecret",
    "https://host/v1?key=AIzaSyA-1234567890abcdefghijk",
    "x-goog-api-key: whatever-secret-value",
])
def test_credential_shapes_are_redacted(text):
    redacted = redact(text)
    assert "[REDACTED]" in redacted
    assert "secret" not in redacted and "abcdefghijklmnop" not in redacted


def test_error_survives_pickling_with_fields():
    error = RateLimitError("slow", provider="anthropic", status_code=429, retry_after=1.5,
                           partial_content="abc")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitError
    assert (copy.provider, copy.status_code, copy.retry_after, copy.partial_content) == (
        "anthropic", 429, 1.5, "abc")


def test_every_public_error_is_documented():
    for name in errors.__all__:
        value = getattr(errors, name)
        assert value.__doc__, name
    assert issubclass(errors.TotalTimeout, LitestreamError)
