"""``completion()``: one call for every provider, streaming or not.

The call is validated completely before any I/O: an unknown provider, a
missing key or a malformed request raises
:class:`~litestream.errors.ConfigurationError` at once. A streaming call
returns a :class:`~litestream.transport.Stream` whose reader thread is
already running; a non-streaming call returns a
:class:`~litestream.types.Response`.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from typing import Any, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit

import attrs

from litestream import errors, transport
from litestream.cost import cost_of
from litestream.listeners import CallMonitor, monitor_for
from litestream.options import OPTION_NAMES, CallOptions, check_request_keys
from litestream.providers import _messages, get_provider
from litestream.providers import is_provider as is_provider  # re-exported for integrations
from litestream.providers import provider_key as provider_key
from litestream.providers import split_provider_model as split_provider_model
from litestream.providers.base import Provider
from litestream.tokens import estimate_tokens as estimate_tokens
from litestream.transport import Stream
from litestream.types import Response, extract_content
from litestream.wire import HTTPRequest

__all__ = ["completion", "extract_content"]

logger = logging.getLogger("litestream")



def split_model(provider: str, model: Optional[str]) -> tuple[str, str]:
    """Split ``"provider/model"`` when ``model`` is not given separately."""
    if model is None:
        if "/" not in provider:
            raise errors.ConfigurationError(
                f"no model given: use completion({provider!r}, 'model-name', ...) "
                f"or completion('{provider}/model-name', ...)"
            )
        named, model = split_provider_model(provider)
        if named is None:
            get_provider(provider.partition("/")[0])  # raises: the prefix names no provider
        provider = named or provider
    if not model:
        raise errors.ConfigurationError("the model name is empty")
    return provider, model


def validate_request(request: Mapping[str, Any]) -> list[str]:
    """Return every problem of an OpenAI-style chat request (an empty list when it is fine)."""
    problems = _messages.message_problems(request.get("messages"))
    stream = request.get("stream")
    if stream is not None and not isinstance(stream, bool):
        problems.append(f"'stream' must be True or False, not {stream!r}")
    for key in ("temperature", "top_p"):
        value = request.get(key)
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            problems.append(f"{key!r} must be a number")
    for key in ("max_tokens", "max_completion_tokens"):
        value = request.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value <= 0
        ):
            problems.append(f"{key!r} must be a positive integer")
    return problems


def resolve_options(provider: Provider, values: Mapping[str, Any]) -> CallOptions:
    """Return the call's :class:`~litestream.options.CallOptions`, completed from the environment.

    The API key comes from ``values["api_key"]`` or the provider's environment
    variable; the base URL from ``values["api_base"]``, the provider's base URL
    variable, or its default (left as None).

    Raises:
        ConfigurationError: an unknown option, a bad value, or no key where
            the provider needs one.
    """
    options = CallOptions.from_mapping(values)
    changes: dict[str, Any] = {}
    api_key = options.api_key or env_api_key(provider, os.environ)
    if provider.requires_api_key and not api_key:
        variables = " or ".join(key_variables(provider)) or "api_key"
        raise errors.ConfigurationError(
            f"no API key for {provider.name}: pass api_key=... or set {variables}"
        )
    if api_key != options.api_key:
        changes["api_key"] = api_key
    api_base = options.api_base or env_api_base(provider, os.environ, default=False)
    if api_base:
        _check_api_base(api_base)
        if api_base != options.api_base:
            changes["api_base"] = api_base
    if options.verify is False:
        logger.warning("TLS certificate verification is off for %s requests", provider.name)
    return attrs.evolve(options, **changes) if changes else options


def _check_api_base(api_base: Any) -> None:
    if not isinstance(api_base, str):
        raise errors.ConfigurationError(f"api_base must be a URL string, not {api_base!r}")
    parts = urlsplit(api_base)
    if parts.scheme not in ("http", "https"):
        raise errors.ConfigurationError(
            f"api_base must be an http:// or https:// URL, not {api_base!r}"
        )
    if not parts.hostname:
        raise errors.ConfigurationError(f"api_base {api_base!r} names no host")


def env_api_key(provider: Provider, env: Mapping[str, str]) -> Optional[str]:
    """Return the provider's API key from ``env`` (its variable, then its aliases), or None."""
    for variable in key_variables(provider):
        if env.get(variable):
            return env[variable]
    return None


def env_api_base(
    provider: Provider, env: Mapping[str, str], default: bool = True
) -> Optional[str]:
    """Return the provider's base URL from its variable in ``env`` (e.g. ``OPENAI_BASE_URL``).

    A bare ``host:port`` (as ``OLLAMA_HOST`` is often set) gets ``http://``.
    Without the variable: the provider's default base URL, or None when
    ``default`` is false.
    """
    api_base = env.get(provider.base_url_env_var or "") or (
        provider.default_api_base if default else None
    )
    if api_base and "://" not in api_base:
        api_base = f"http://{api_base}"
    return api_base or None


def key_variables(provider: Provider) -> list[str]:
    """Return the environment variables that may hold ``provider``'s API key, in lookup order.

    The provider's own variable (``OPENAI_API_KEY``...) comes first, then its
    aliases (``GOOGLE_API_KEY`` for Gemini, say); the first one set wins. A
    provider that needs no key (Ollama) may have none: the list is empty.

    Example:
        >>> from litestream.providers import get_provider, is_provider, provider_key
        >>> key_variables(get_provider("openai"))
        ['OPENAI_API_KEY']
    """
    names = [provider.env_var] if provider.env_var else []
    names.extend(getattr(provider, "env_var_aliases", ()) or ())
    return names


def prepare(
    provider: str,
    model: Optional[str] = None,
    request: Optional[Mapping[str, Any]] = None,
    config: Optional[Mapping[str, Any]] = None,
    **kwargs: Any,
) -> tuple[Provider, str, dict[str, Any], CallOptions]:
    """Validate a call and return ``(provider, model, request, options)``; no I/O.

    Keyword arguments that are option names (see
    :data:`~litestream.options.OPTION_NAMES`) are options, the others
    request keys; a name that is neither is an error, in either form.
    """
    if not isinstance(provider, str) or not provider:
        raise errors.ConfigurationError("the provider must be a name such as 'openai'")
    provider_name, model_name = split_model(provider, model)
    provider_object = get_provider(provider_name)
    fields = {"provider": provider_name, "model": model_name}
    for name, value in (("request", request), ("config", config)):
        if value is not None and not isinstance(value, Mapping):
            raise errors.ConfigurationError(
                f"{name} must be a dict, not {type(value).__name__}", **fields)
    merged_request = dict(request or {})
    merged_config = dict(config or {})
    for key, value in kwargs.items():
        (merged_config if key in OPTION_NAMES else merged_request)[key] = value
    try:
        check_request_keys(merged_request)
        options = resolve_options(provider_object, merged_config)
    except errors.ConfigurationError as error:
        error.provider, error.model = provider_name, model_name
        raise
    problems = validate_request(merged_request)
    if problems:
        raise errors.ConfigurationError("malformed request: " + "; ".join(problems), **fields)
    return provider_object, model_name, merged_request, options


def completion(
    provider: str,
    model: Optional[str] = None,
    request: Optional[Mapping[str, Any]] = None,
    config: Optional[Mapping[str, Any]] = None,
    *,
    listeners: Optional[Sequence[Any]] = None,
    _deployment: Optional[str] = None,
    _attempt: int = 1,
    **kwargs: Any,
) -> Union[Stream, Response]:
    """Ask ``provider`` for a chat completion; stream it when ``stream`` is true.

    Three forms are accepted::

        completion("openai", "gpt-4o-mini", {"messages": [...], "stream": True},
                   {"api_key": "sk-..."})
        completion("openai", "gpt-4o-mini", messages=[...], stream=True, api_key="sk-...")
        completion("openai/gpt-4o-mini", messages=[...])

    Options are the same in the ``config`` dict and as keywords; a name that
    is neither an option nor a request key raises at once, naming the
    nearest valid one.

    Args:
        provider: ``"openai"``, ``"anthropic"``, ``"gemini"``, ``"mistral"``,
            ``"openrouter"``, ``"ollama"``, ``"openai_compatible"`` (and the
            other registered providers), or ``"provider/model"``.
        model: the provider's model name.
        request: OpenAI chat keys: ``messages``, ``stream``, ``temperature``,
            ``max_tokens``, ``stop``, ``tools``, ``tool_choice``...
        config: options: ``api_key``, ``api_base``, ``headers``, ``timeout``
            (total seconds), ``connect_timeout``, ``first_chunk_timeout``,
            ``idle_timeout``, ``buffer``, ``max_retries`` (default 2),
            ``retry_policy``, ``max_event_size``, ``verify``, ``extra_body``
            (fields merged into the request body as they are).
        listeners: lifecycle listeners for this call only, on top of those
            registered with :func:`~litestream.add_listener` (see
            :mod:`litestream.listeners`).
        _deployment: set by the router: the deployment name of the call.
        _attempt: set by the router: the attempt number of the call.
        **kwargs: request keys or options, sorted by name.

    Returns:
        A running :class:`~litestream.Stream` of chunks when ``stream`` is
        true, else a :class:`~litestream.Response`.

    Retries:
        A retryable failure (429, 5xx, timeout, dropped connection) before
        any chunk was delivered is retried up to ``max_retries`` times with
        jittered backoff, honouring ``Retry-After`` up to a cap (see
        :class:`~litestream.options.RetryPolicy`). The final error's
        ``attempts`` lists every attempt.

    Raises:
        ConfigurationError: before any I/O, for a bad provider, model,
            request or option.
        LitestreamError: for a non-streaming call that fails (a stream
            raises its error from ``get``/iteration instead).
    """
    provider_object, model_name, merged_request, options = prepare(
        provider, model, request, config, **kwargs
    )
    http_request = provider_object.build_request(model_name, merged_request, options)
    if options.extra_body:
        http_request = attrs.evolve(
            http_request, json={**(http_request.json or {}), **options.extra_body})
    streaming = bool(merged_request.get("stream"))
    monitor = monitor_for(provider_object.name, model_name, merged_request, stream=streaming,
                          call_listeners=listeners or (), deployment=_deployment,
                          attempt=_attempt, url=http_request.url)
    if streaming:
        return transport.open_stream(http_request, provider_object, model_name, options,
                                     monitor)
    if monitor is not None:
        monitor.request()
    return _send_with_retries(http_request, provider_object, model_name, options, monitor)


def _send_with_retries(
    http_request: HTTPRequest, provider: Provider, model: str, options: CallOptions,
    monitor: Optional[CallMonitor] = None,
) -> Response:
    policy = options.retry
    attempts: list[str] = []
    never = threading.Event()
    for retry in itertools.count():
        try:
            body = transport.send(http_request, provider, model, options)
            response = provider.parse_response(body, model)
        except errors.LitestreamError as error:
            attempts.append(errors.error_summary(error))
            delay = policy.delay(retry, error)
            if delay is None:
                if len(attempts) > 1:
                    error.attempts = tuple(attempts)
                if monitor is not None:
                    monitor.end(error)
                raise
            if monitor is not None:
                monitor.retried()
            logger.info("retrying %s/%s in %.2f s after %s", provider.name, model, delay,
                        errors.error_summary(error))
            policy.wait(delay, never)
            continue
        except BaseException as error:
            if monitor is not None:
                monitor.end(error)
            raise
        if response.usage is not None:
            response = attrs.evolve(
                response, cost=cost_of(provider.name, response.model or model, response.usage))
        if monitor is not None:
            monitor.response(response)
        return response
    raise AssertionError("unreachable")
