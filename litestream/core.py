"""``completion()``: one call for every provider, streaming or not.

The call is validated completely before any I/O: an unknown provider, a
missing key or a malformed request raises
:class:`~litestream.errors.ConfigurationError` at once. A streaming call
returns a :class:`~litestream.transport.Stream` whose reader thread is
already running; a non-streaming call returns a
:class:`~litestream.types.Response`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Optional, Union
from urllib.parse import urlsplit

from litestream import errors, transport
from litestream.providers import get_provider
from litestream.providers.base import Provider
from litestream.tokens import estimate_tokens
from litestream.transport import Stream
from litestream.types import Chunk, Response

__all__ = [
    "CONFIG_KEYS",
    "completion",
    "env_api_base",
    "env_api_key",
    "estimate_tokens",
    "extract_content",
    "key_variables",
    "prepare",
    "resolve_config",
    "split_model",
    "validate_request",
]

logger = logging.getLogger("litestream")

#: The keys of a call's config; every other keyword argument is a request key.
CONFIG_KEYS = frozenset({
    "api_key",
    "api_base",
    "headers",
    "timeout",
    "connect_timeout",
    "first_chunk_timeout",
    "idle_timeout",
    "buffer",
    "max_retries",
    "max_event_size",
    "verify",
})

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TIMEOUT_KEYS = ("timeout", "connect_timeout", "first_chunk_timeout", "idle_timeout")


def split_model(provider: str, model: Optional[str]) -> tuple[str, str]:
    """Split ``"provider/model"`` when ``model`` is not given separately."""
    if model is None:
        if "/" not in provider:
            raise errors.ConfigurationError(
                f"no model given: use completion({provider!r}, 'model-name', ...) "
                f"or completion('{provider}/model-name', ...)"
            )
        provider, model = provider.split("/", 1)
    if not model:
        raise errors.ConfigurationError("the model name is empty")
    return provider, model


def validate_request(request: Mapping[str, Any]) -> list[str]:
    """Return every problem of an OpenAI-style chat request (an empty list when it is fine)."""
    problems = []
    messages = request.get("messages")
    if not isinstance(messages, (list, tuple)) or not messages:
        problems.append("'messages' must be a non-empty list of {'role': ..., 'content': ...}")
        messages = ()
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping):
            problems.append(f"messages[{position}] is a {type(message).__name__}, not a dict")
            continue
        role = message.get("role")
        if role is None:
            problems.append(f"messages[{position}] has no 'role'")
        elif role not in _ROLES:
            problems.append(f"messages[{position}] has an unknown role {role!r}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list, tuple)):
            problems.append(
                f"messages[{position}]['content'] must be a string or a list of parts"
            )
        if content is None and role in ("user", "system") and not message.get("tool_calls"):
            problems.append(f"messages[{position}] ({role}) has no 'content'")
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


def resolve_config(provider: Provider, config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the call's config completed from the environment and checked.

    The API key comes from ``config["api_key"]`` or the provider's environment
    variable; the base URL from ``config["api_base"]``, the provider's base URL
    variable, or its default.
    """
    resolved = dict(config)
    unknown = set(resolved) - CONFIG_KEYS
    if unknown:
        raise errors.ConfigurationError(
            f"unknown config keys {sorted(unknown)}; known keys: {sorted(CONFIG_KEYS)}"
        )
    if not resolved.get("api_key"):
        resolved["api_key"] = env_api_key(provider, os.environ)
    api_key = resolved.get("api_key")
    if provider.requires_api_key and not api_key:
        variables = " or ".join(key_variables(provider)) or "api_key"
        raise errors.ConfigurationError(
            f"no API key for {provider.name}: pass config={{'api_key': ...}} or set {variables}"
        )
    if api_key is not None and not isinstance(api_key, str):
        raise errors.ConfigurationError("'api_key' must be a string")
    errors.register_secret(api_key)
    headers = resolved.get("headers")
    if headers is not None:
        if not isinstance(headers, Mapping) or not all(
            isinstance(name, str) and isinstance(value, str) for name, value in headers.items()
        ):
            raise errors.ConfigurationError("'headers' must be a dict of strings to strings")
        for name, value in headers.items():
            # Only credentials are secrets: registering every long header value
            # (OpenRouter's HTTP-Referer, X-Title) would redact ordinary text.
            if errors.is_credential_header(name):
                errors.register_secret(value.split(" ", 1)[-1])
    api_base = resolved.get("api_base")
    if not api_base:
        api_base = env_api_base(provider, os.environ, default=False)
        if api_base:
            resolved["api_base"] = api_base
    if api_base:
        parts = urlsplit(str(api_base))
        if parts.scheme not in ("http", "https"):
            raise errors.ConfigurationError(
                f"api_base must be an http:// or https:// URL, "
                f"not {parts.scheme or 'a bare name'!r}"
            )
        if not parts.hostname:
            raise errors.ConfigurationError(f"api_base {str(api_base)!r} names no host")
    for key in _TIMEOUT_KEYS:
        value = resolved.get(key)
        if value is not None and (not isinstance(value, (int, float)) or value <= 0):
            raise errors.ConfigurationError(f"{key!r} must be a positive number of seconds")
    for key in ("buffer", "max_event_size"):
        value = resolved.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            raise errors.ConfigurationError(f"{key!r} must be a positive integer")
    verify = resolved.get("verify")
    if verify is not None and not isinstance(verify, bool) and not (
        isinstance(verify, str) and verify
    ):
        # requests would take any falsy value (0, "") as "do not verify".
        raise errors.ConfigurationError(
            "'verify' must be True, False, or the path of a CA bundle"
        )
    if verify is False:
        logger.warning("TLS certificate verification is off for %s requests", provider.name)
    return resolved


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
        >>> from litestream.providers import get_provider
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
) -> tuple[Provider, str, dict[str, Any], dict[str, Any]]:
    """Validate a call and return ``(provider, model, request, config)``; no I/O.

    Keyword arguments that are config keys (see :data:`CONFIG_KEYS`) go to the
    config, all others to the request.
    """
    if not isinstance(provider, str) or not provider:
        raise errors.ConfigurationError("the provider must be a name such as 'openai'")
    provider_name, model_name = split_model(provider, model)
    provider_object = get_provider(provider_name)
    for name, value in (("request", request), ("config", config)):
        if value is not None and not isinstance(value, Mapping):
            raise errors.ConfigurationError(
                f"{name} must be a dict, not {type(value).__name__}",
                provider=provider_name, model=model_name,
            )
    merged_request = dict(request or {})
    merged_config = dict(config or {})
    for key, value in kwargs.items():
        (merged_config if key in CONFIG_KEYS else merged_request)[key] = value
    problems = validate_request(merged_request)
    if problems:
        raise errors.ConfigurationError(
            "malformed request: " + "; ".join(problems), provider=provider_name, model=model_name
        )
    resolved = resolve_config(provider_object, merged_config)
    return provider_object, model_name, merged_request, resolved


def completion(
    provider: str,
    model: Optional[str] = None,
    request: Optional[Mapping[str, Any]] = None,
    config: Optional[Mapping[str, Any]] = None,
    **kwargs: Any,
) -> Union[Stream, Response]:
    """Ask ``provider`` for a chat completion; stream it when ``stream`` is true.

    Three forms are accepted::

        completion("openai", "gpt-4o-mini", {"messages": [...], "stream": True},
                   {"api_key": "sk-..."})
        completion("openai", "gpt-4o-mini", messages=[...], stream=True, api_key="sk-...")
        completion("openai/gpt-4o-mini", messages=[...])

    Args:
        provider: ``"openai"``, ``"anthropic"``, ``"gemini"``, ``"mistral"``,
            ``"openrouter"``, ``"ollama"`` or ``"openai_compatible"``, or
            ``"provider/model"``.
        model: the provider's model name.
        request: OpenAI chat keys: ``messages``, ``stream``, ``temperature``,
            ``max_tokens``, ``stop``, ``tools``, ``tool_choice``...
        config: ``api_key``, ``api_base``, ``headers``, ``timeout``,
            ``connect_timeout``, ``first_chunk_timeout``, ``idle_timeout``,
            ``buffer``, ``max_event_size``, ``verify``.
        **kwargs: request or config keys, sorted by name.

    Returns:
        A running :class:`~litestream.Stream` of chunks when ``stream`` is
        true, else a :class:`~litestream.Response`.

    Raises:
        ConfigurationError: before any I/O, for a bad provider, model,
            request or config.
        LitestreamError: for a non-streaming call that fails (a stream
            raises its error from ``get``/iteration instead).
    """
    provider_object, model_name, merged_request, resolved = prepare(
        provider, model, request, config, **kwargs
    )
    stream = bool(merged_request.get("stream"))
    http_request = provider_object.build_request(model_name, merged_request, resolved)
    if stream:
        return transport.open_stream(http_request, provider_object, model_name, resolved)
    body = transport.send(http_request, provider_object, model_name, resolved)
    return provider_object.parse_response(body, model_name)


def extract_content(value: Union[Response, Chunk, None]) -> Optional[str]:
    """Return the text of a Response or a Chunk, or ``None`` when it carries none.

    A chunk that only carries a role, a finish reason, usage or an empty
    string gives ``None``.
    """
    if value is None:
        return None
    if isinstance(value, Chunk):
        if not value.choices:
            return None
        return value.choices[0].delta.content or None
    if isinstance(value, Response):
        return value.content
    raise TypeError(f"extract_content takes a Chunk or a Response, not {type(value).__name__}")
