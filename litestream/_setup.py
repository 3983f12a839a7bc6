"""Providers from the environment: discovery, and the config ``setup``/``quick_setup`` register.

Nothing here registers anything: :class:`~litestream.router.Router` does,
with what these functions read from an environment mapping (``os.environ``
by default).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping, Optional

from litestream import core, errors
from litestream.providers import PROVIDERS, get_provider

__all__ = [
    "QUICK_SETUP_PROVIDERS",
    "REDIS_URL_VARIABLE",
    "env_config",
    "provider_info",
    "providers",
    "redis_url",
    "setup_from_env",
]

logger = logging.getLogger("litestream")

#: The providers :func:`setup_from_env` looks for, in the order it registers them.
QUICK_SETUP_PROVIDERS = ("openai", "anthropic", "gemini", "mistral", "openrouter", "ollama")

#: The variable naming the Redis through which ``quick_setup`` shares the router's limits.
REDIS_URL_VARIABLE = "LITESTREAM_REDIS_URL"


def redis_url(env: Optional[Mapping[str, str]] = None) -> Optional[str]:
    """Return the Redis URL set in ``env`` (``LITESTREAM_REDIS_URL``), or None when unset or blank.

    Args:
        env: the environment to read; ``os.environ`` by default.
    """
    env = os.environ if env is None else env
    url = (env.get(REDIS_URL_VARIABLE) or "").strip()
    return url or None


def providers() -> list[str]:
    """Return the names of the providers litestream speaks, sorted."""
    return sorted(PROVIDERS)


def provider_info(name: str, env: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """Describe a provider: defaults, variables, capabilities, and whether its key is set.

    Args:
        name: the provider name.
        env: the environment to check for the key; ``os.environ`` by default.

    Raises:
        ConfigurationError: an unknown provider.
    """
    provider = get_provider(name)
    env = os.environ if env is None else env
    return {
        "name": provider.name,
        "default_api_base": provider.default_api_base,
        "api_base": core.env_api_base(provider, env),
        "env_var": provider.env_var,
        "env_var_aliases": list(getattr(provider, "env_var_aliases", ()) or ()),
        "key_variables": core.key_variables(provider),
        "base_url_env_var": provider.base_url_env_var,
        "default_model": provider.default_model,
        "requires_api_key": provider.requires_api_key,
        "supports_streaming": provider.supports_streaming,
        "supports_tools": provider.supports_tools,
        "api_key_set": core.env_api_key(provider, env) is not None,
    }


def env_config(
    provider: str, api_key: Optional[str], env: Optional[Mapping[str, str]],
    config: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """Return the provider's name and ``config`` completed with the key and base URL of ``env``.

    Raises:
        ConfigurationError: an unknown provider, or no key given or set for
            a provider that needs one.
    """
    provider_object = get_provider(provider)
    env = os.environ if env is None else env
    api_key = api_key or core.env_api_key(provider_object, env)
    if provider_object.requires_api_key and not api_key:
        variables = " or ".join(core.key_variables(provider_object)) or "api_key"
        raise errors.ConfigurationError(
            f"no API key for {provider_object.name}: pass api_key=... or set {variables}"
        )
    if api_key:
        config["api_key"] = api_key
    api_base = core.env_api_base(provider_object, env)
    if api_base:
        config.setdefault("api_base", api_base)
    return provider_object.name, config


def setup_from_env(setup: Callable[[str], str], env: Optional[Mapping[str, str]]) -> list[str]:
    """Call ``setup(provider)`` for every provider with a key in ``env``, and Ollama.

    Returns the names ``setup`` returned. A provider whose variables are
    malformed is skipped with a warning; with no key at all, an info line
    names the variables to set. Never raises a ``ConfigurationError``.
    """
    env = os.environ if env is None else env
    registered: list[str] = []
    missing: list[str] = []
    with_key = 0
    for provider_name in QUICK_SETUP_PROVIDERS:
        if provider_name not in PROVIDERS:
            continue
        provider_object = get_provider(provider_name)
        has_key = core.env_api_key(provider_object, env) is not None
        if provider_object.requires_api_key and not has_key:
            missing.append(" or ".join(core.key_variables(provider_object)))
            continue
        try:
            registered.append(setup(provider_name))
        except errors.ConfigurationError as error:  # a malformed variable, say
            logger.warning("quick_setup skipped %s: %s", provider_name, error)
            continue
        with_key += provider_object.requires_api_key
    if not with_key:
        logger.info(
            "litestream quick_setup: no API key found, registered only %s; "
            "set %s to use more providers",
            ", ".join(registered) or "nothing", ", ".join(missing),
        )
    return registered
