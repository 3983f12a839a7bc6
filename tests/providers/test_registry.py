"""The provider registry and the attributes every provider declares."""

from __future__ import annotations

import pytest

from litestream import errors
from litestream.providers import PROVIDERS, get_provider
from litestream.providers.base import Provider

EXPECTED = {
    "openai": ("https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_BASE_URL", "sse"),
    "anthropic": ("https://api.anthropic.com", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "sse"),
    "gemini": (
        "https://generativelanguage.googleapis.com",
        "GEMINI_API_KEY",
        "GEMINI_BASE_URL",
        "sse",
    ),
    "mistral": ("https://api.mistral.ai/v1", "MISTRAL_API_KEY", "MISTRAL_BASE_URL", "sse"),
    "openrouter": (
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
        "sse",
    ),
    "ollama": ("http://localhost:11434", None, "OLLAMA_HOST", "ndjson"),
    "openai_responses": ("https://api.openai.com/v1", "OPENAI_API_KEY", "OPENAI_BASE_URL", "sse"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_provider_declares_its_defaults(name):
    provider = get_provider(name)
    default_api_base, env_var, base_url_env_var, framing = EXPECTED[name]
    assert provider.name == name
    assert provider.default_api_base == default_api_base
    assert provider.env_var == env_var
    assert provider.base_url_env_var == base_url_env_var
    assert provider.framing == framing
    assert provider.default_model
    assert provider.requires_api_key is (env_var is not None)


def test_registry_holds_provider_instances_by_name():
    assert set(PROVIDERS) == {*EXPECTED, "openai_compatible"}
    assert all(isinstance(provider, Provider) for provider in PROVIDERS.values())
    assert all(PROVIDERS[name].name == name for name in PROVIDERS)


def test_gemini_also_accepts_google_api_key():
    assert get_provider("gemini").env_var_aliases == ("GOOGLE_API_KEY",)


def test_names_are_case_and_dash_insensitive():
    assert get_provider("OpenAI") is PROVIDERS["openai"]
    assert get_provider("openai-compatible") is PROVIDERS["openai_compatible"]


def test_unknown_provider_raises_configuration_error_listing_known_ones():
    with pytest.raises(errors.ConfigurationError) as caught:
        get_provider("cohere")
    assert "cohere" in caught.value.message
    for name in PROVIDERS:
        assert name in caught.value.message
