"""The provider registry: every wire format litestream speaks, by name.

Each provider is a stateless :class:`~litestream.providers.base.Provider`
instance translating OpenAI-style requests to its API and its responses
back; see :mod:`litestream.providers.base` for the interface.
"""

from __future__ import annotations

from typing import Optional

from litestream import errors
from litestream.providers.anthropic import AnthropicProvider
from litestream.providers.base import Provider
from litestream.providers.gemini import GeminiProvider
from litestream.providers.mistral import MistralProvider
from litestream.providers.ollama import OllamaProvider
from litestream.providers.openai import OpenAIProvider
from litestream.providers.openai_compatible import OpenAICompatibleProvider
from litestream.providers.openai_responses import OpenAIResponsesProvider
from litestream.providers.openrouter import OpenRouterProvider

__all__ = [
    "PROVIDERS", "Provider", "get_provider", "is_provider", "provider_key", "split_provider_model",
]

#: Every provider by name (``"openai"``, ``"anthropic"``, ...); the instances are stateless.
PROVIDERS: dict[str, Provider] = {
    provider.name: provider
    for provider in (
        OpenAIProvider(),
        AnthropicProvider(),
        GeminiProvider(),
        MistralProvider(),
        OpenRouterProvider(),
        OllamaProvider(),
        OpenAICompatibleProvider(),
        OpenAIResponsesProvider(),
    )
}


def provider_key(name: str) -> str:
    """Return the registry key of a provider name: case and ``-``/``_`` do not matter."""
    return name.strip().lower().replace("-", "_")


def is_provider(name: object) -> bool:
    """Return True when ``name`` names a registered provider (``"OpenAI"``, ``"openai"``...)."""
    return isinstance(name, str) and provider_key(name) in PROVIDERS


def split_provider_model(name: str) -> tuple[Optional[str], str]:
    """Split ``"provider/model"``: the one rule for names that may carry their provider.

    The part before the first ``/`` is the provider when it names one, and
    the rest is the model, slashes and all (``"openrouter/openai/gpt-4o"``
    -> ``("openrouter", "openai/gpt-4o")``). Otherwise the whole name is a
    model: ``(None, name)`` (``"meta-llama/Llama-3"`` on a vLLM server).

    Example:
        >>> split_provider_model("anthropic/claude-sonnet-4-5")
        ('anthropic', 'claude-sonnet-4-5')
        >>> split_provider_model("gpt-4o")
        (None, 'gpt-4o')
    """
    prefix, slash, rest = name.partition("/")
    if slash and is_provider(prefix):
        return prefix, rest
    return None, name


def get_provider(name: str) -> Provider:
    """Return the provider called ``name`` (case and ``-``/``_`` do not matter).

    Raises:
        ConfigurationError: no provider has that name; the message lists the known ones.
    """
    key = provider_key(name) if isinstance(name, str) else name
    provider = PROVIDERS.get(key)
    if provider is None:
        known = ", ".join(sorted(PROVIDERS))
        raise errors.ConfigurationError(f"unknown provider {name!r}; known providers: {known}")
    return provider
