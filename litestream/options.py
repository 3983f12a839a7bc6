"""Call options: one frozen object per call, resolved once at the boundary.

:func:`~litestream.completion` accepts its options as keyword arguments or
in the ``config`` dict; either way they are checked here, once, into a
:class:`CallOptions` (with a :class:`Timeouts` part, as ``httpx.Timeout``
is one) that the transport and the router read by field. A misspelled
option is a :class:`~litestream.errors.ConfigurationError` naming the
nearest valid one, raised before any I/O, whichever form it came in.

:class:`RetryPolicy` is the one retry policy: ``completion(max_retries=)``
and the router both ask it how long to wait before the next attempt.
"""

from __future__ import annotations

import difflib
import random
import threading
from typing import Any, Callable, Iterable, Mapping, Optional, Union
from urllib.parse import urlsplit

import attrs

from litestream import errors
from litestream._checks import check_seconds

__all__ = [
    "CallOptions",
    "DEFAULT_BUFFER",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_FIRST_CHUNK_TIMEOUT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RESPONSE_TIMEOUT",
    "OPTION_NAMES",
    "REQUEST_KEYS",
    "RetryPolicy",
    "Timeouts",
    "nearest",
]

#: Chunks a stream buffers before its reader waits for the consumer.
DEFAULT_BUFFER = 64
#: Seconds to open the TCP (and TLS) connection.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds from sending the request to the first content (streams) or the
#: first byte of the answer (whole-body calls).
DEFAULT_FIRST_CHUNK_TIMEOUT = 120.0
#: Seconds a stream may go without content once content has started.
DEFAULT_IDLE_TIMEOUT = 120.0
#: Seconds a whole-body (non-streaming) call may take when no ``timeout``
#: is given: 600, as the official openai and anthropic SDKs.
DEFAULT_RESPONSE_TIMEOUT = 600.0
#: Retries of a retryable failure before the first content: 2, as the
#: official openai and anthropic SDKs do.
DEFAULT_MAX_RETRIES = 2

#: The keys of a call's options; every other keyword must be a request key.
OPTION_NAMES = frozenset({
    "api_key",
    "api_base",
    "headers",
    "timeout",
    "connect_timeout",
    "first_chunk_timeout",
    "idle_timeout",
    "buffer",
    "max_retries",
    "retry_policy",
    "max_event_size",
    "verify",
    "extra_body",
})

#: Request keys: OpenAI's chat parameters, and the provider-native keys a
#: provider translates itself (Anthropic ``thinking``, Gemini
#: ``safetySettings``, Ollama ``options``...). Anything else for the body
#: goes through ``extra_body``.
REQUEST_KEYS = frozenset({
    # OpenAI chat completions
    "messages", "model", "stream", "stream_options", "temperature", "top_p", "n", "stop",
    "max_tokens", "max_completion_tokens", "presence_penalty", "frequency_penalty",
    "logit_bias", "logprobs", "top_logprobs", "user", "seed", "tools", "tool_choice",
    "parallel_tool_calls", "response_format", "reasoning_effort", "modalities", "audio",
    "prediction", "store", "metadata", "service_tier", "web_search_options", "verbosity",
    "prompt_cache_key", "safety_identifier", "functions", "function_call",
    # provider-native keys the providers translate
    "top_k", "thinking", "container", "mcp_servers", "context_management",
    "safetySettings", "cachedContent", "labels", "options", "keep_alive", "format",
    "think", "safe_prompt", "random_seed", "prompt_mode", "transforms", "models", "route",
    "provider", "reasoning", "usage", "plugins", "include", "instructions",
    "previous_response_id", "truncation", "text", "background", "max_output_tokens",
})


def nearest(name: str, candidates: Iterable[str]) -> Optional[str]:
    """Return the candidate closest to ``name`` (a misspelling's likely meaning), or None."""
    matches = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _unknown_keyword(name: str) -> errors.ConfigurationError:
    guess = nearest(name, OPTION_NAMES | REQUEST_KEYS)
    hint = f"; did you mean {guess!r}?" if guess else ""
    return errors.ConfigurationError(
        f"unknown option or request key {name!r}{hint} "
        f"(put other request-body fields in extra_body={{...}})"
    )


def _seconds(name: str) -> Callable[[Any, Any, Any], None]:
    def validate(instance: Any, attribute: Any, value: Any) -> None:
        try:
            check_seconds(name, value)
        except (TypeError, ValueError) as error:
            raise errors.ConfigurationError(str(error)) from None
    return validate


@attrs.frozen
class Timeouts:
    """The deadlines of one call, in seconds (None: no limit).

    Attributes:
        total: the whole call, from sending the request to the last byte.
        connect: opening the connection.
        first_chunk: from sending the request to the first content.
        idle: between two pieces of content once content has started
            (keep-alive comments and pings do not count).
    """

    total: Optional[float] = attrs.field(default=None, validator=_seconds("timeout"))
    connect: Optional[float] = attrs.field(
        default=DEFAULT_CONNECT_TIMEOUT, validator=_seconds("connect_timeout"))
    first_chunk: Optional[float] = attrs.field(
        default=DEFAULT_FIRST_CHUNK_TIMEOUT, validator=_seconds("first_chunk_timeout"))
    idle: Optional[float] = attrs.field(
        default=DEFAULT_IDLE_TIMEOUT, validator=_seconds("idle_timeout"))


#: The jitter's random source unless a policy is given its own: seeding one
#: per call would cost more than the rest of a call's set-up.
_JITTER = random.Random()


def _wait(seconds: float, cancelled: threading.Event) -> bool:
    return cancelled.wait(seconds)


@attrs.frozen
class RetryPolicy:
    """When to try a call again, and after how long: the one policy of the package.

    A retryable failure (:func:`~litestream.errors.is_retryable`: a 429, a
    5xx, a timeout or a dropped connection) that happens before the first
    content is retried up to ``max_retries`` times. The wait is full jitter:
    a uniform draw below ``backoff_base * 2**retry``, capped at
    ``backoff_cap``; a ``Retry-After`` the provider sent is waited at
    least, unless it is longer than ``max_retry_after`` (then the call gives
    up, or the router moves on to a fallback, at once).

    Args:
        max_retries: retries after the first attempt; 0 disables retrying.
        backoff_base: the first retry waits up to this many seconds.
        backoff_cap: no wait bound exceeds this many seconds.
        max_retry_after: the longest ``Retry-After`` worth waiting for.
        wait: ``wait(seconds, cancelled) -> bool`` sleeps between attempts
            and returns True when ``cancelled`` (a ``threading.Event``) was
            set meanwhile; inject one to test backoff without real waiting.
        random: the jitter's random source.
    """

    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES)
    backoff_base: float = attrs.field(default=0.5, validator=_seconds("backoff_base"))
    backoff_cap: float = attrs.field(default=8.0, validator=_seconds("backoff_cap"))
    max_retry_after: float = attrs.field(default=60.0, validator=_seconds("max_retry_after"))
    wait: Callable[[float, threading.Event], bool] = attrs.field(
        default=_wait, eq=False, repr=False)
    random: random.Random = attrs.field(
        factory=lambda: _JITTER, eq=False, repr=False)

    @max_retries.validator
    def _check_max_retries(self, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise errors.ConfigurationError(f"max_retries must be an integer >= 0, not {value!r}")

    def delay(self, retry: int, error: BaseException) -> Optional[float]:
        """Return the seconds to wait before retry number ``retry`` (0 first), or None to stop."""
        if retry >= self.max_retries or not errors.is_retryable(error):
            return None
        bound = min(self.backoff_cap, self.backoff_base * 2 ** retry)
        delay = self.random.uniform(0.0, bound)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            delay = max(delay, retry_after)
        return delay


_DEFAULT_RETRY = RetryPolicy()


def _check_positive_int(name: str) -> Callable[[Any, Any, Any], None]:
    def validate(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            raise errors.ConfigurationError(f"{name!r} must be a positive integer, not {value!r}")
    return validate


def _check_verify(instance: Any, attribute: Any, value: Any) -> None:
    # requests would take any falsy value (0, "") as "do not verify".
    if not isinstance(value, bool) and not (isinstance(value, str) and value):
        raise errors.ConfigurationError("'verify' must be True, False, or the path of a CA bundle")


def _check_headers(instance: Any, attribute: Any, value: Any) -> None:
    if not all(isinstance(name, str) and isinstance(item, str) for name, item in value.items()):
        raise errors.ConfigurationError("'headers' must be a dict of strings to strings")


def _check_api_key(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise errors.ConfigurationError("'api_key' must be a string")


def _check_extra_body(instance: Any, attribute: Any, value: Any) -> None:
    if not all(isinstance(name, str) for name in value):
        raise errors.ConfigurationError("'extra_body' must be a dict with string keys")


def _frozen_mapping(value: Optional[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errors.ConfigurationError(f"{name!r} must be a dict, not {type(value).__name__}")
    return dict(value)


@attrs.frozen
class CallOptions:
    """Everything about a call that is not the request body, checked and typed.

    Build it with :meth:`from_mapping` (what :func:`~litestream.completion`
    does with its ``config`` and keyword options); the fields are then
    read, never looked up by key.

    Attributes:
        api_key: the credential, or None for a provider that needs none.
        api_base: the base URL, or None for the provider's default.
        headers: extra request headers (credential headers are redacted
            from every message, like the key).
        timeouts: the call's :class:`Timeouts`.
        buffer: chunks a stream holds before its reader waits.
        retry: the :class:`RetryPolicy` (``max_retries`` sets its count).
        max_event_size: the largest single wire event accepted, in bytes
            (None: the framing's default).
        verify: TLS verification: True, False, or a CA bundle path.
        extra_body: fields merged into the request body as they are.
    """

    api_key: Optional[str] = attrs.field(default=None, validator=_check_api_key, repr=False)
    api_base: Optional[str] = None
    headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=lambda value: _frozen_mapping(value, "headers"),
        validator=_check_headers, repr=False)
    timeouts: Timeouts = attrs.field(factory=Timeouts)
    buffer: int = attrs.field(default=DEFAULT_BUFFER, validator=_check_positive_int("buffer"))
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    max_event_size: Optional[int] = attrs.field(
        default=None, validator=_check_positive_int("max_event_size"))
    verify: Union[bool, str] = attrs.field(default=True, validator=_check_verify)
    extra_body: Mapping[str, Any] = attrs.field(
        factory=dict, converter=lambda value: _frozen_mapping(value, "extra_body"),
        validator=_check_extra_body)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> CallOptions:
        """Return the options named in ``values`` (option name -> value), checked.

        ``None`` means "the default" for every option but the timeouts,
        where it means "no limit".

        Raises:
            ConfigurationError: an unknown name (the nearest valid one is
                suggested) or a bad value (the option is named).
        """
        for name in values:
            if name not in OPTION_NAMES:
                raise _unknown_keyword(name)
        given = {name: value for name, value in values.items() if value is not None}
        timeouts = Timeouts(**{
            field: values[name] for name, field in _TIMEOUT_FIELDS.items() if name in values
        })
        retry = given.get("retry_policy")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise errors.ConfigurationError("'retry_policy' must be a RetryPolicy")
        if "max_retries" in given:
            retry = attrs.evolve(retry or _DEFAULT_RETRY, max_retries=given["max_retries"])
        fields = {name: given[name] for name in _PLAIN_FIELDS if name in given}
        return cls(timeouts=timeouts, retry=retry or _DEFAULT_RETRY, **fields)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The call's credentials: its key, credential headers, a password in ``api_base``.

        The call's errors and logs have them hidden (:func:`~litestream.errors.scrub`).
        """
        found = [self.api_key] if self.api_key else []
        for name, value in self.headers.items():
            if errors.is_credential_header(name):
                found.extend({value, value.split(" ", 1)[-1]})
        if self.api_base:
            password = urlsplit(self.api_base).password
            if password:
                found.append(password)
        return tuple(secret for secret in found if secret)

    def to_mapping(self) -> dict[str, Any]:
        """Return the options as ``from_mapping`` takes them (for copying with changes)."""
        values: dict[str, Any] = {name: getattr(self, name) for name in _PLAIN_FIELDS}
        for name, field in _TIMEOUT_FIELDS.items():
            values[name] = getattr(self.timeouts, field)
        values["retry_policy"] = self.retry
        return values


_TIMEOUT_FIELDS = {
    "timeout": "total",
    "connect_timeout": "connect",
    "first_chunk_timeout": "first_chunk",
    "idle_timeout": "idle",
}
_PLAIN_FIELDS = ("api_key", "api_base", "headers", "buffer", "max_event_size", "verify",
                 "extra_body")


def check_request_keys(request: Mapping[str, Any]) -> None:
    """Raise ConfigurationError for a request key that is neither OpenAI's nor a provider's."""
    for name in request:
        if name not in REQUEST_KEYS:
            raise _unknown_keyword(name)
