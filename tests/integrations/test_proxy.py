"""litestream.integrations.proxy, the framework-free core: models, statuses, credentials."""

from __future__ import annotations

import pytest

from litestream import errors
from litestream.integrations.proxy import (
    error_status,
    proxy_chat_completion,
    resolve_model,
    upstream_config,
)
from litestream.testing import FakeLLMServer

SECRET = "sk-operator-secret-0123456789"


@pytest.fixture()
def server():
    with FakeLLMServer() as fake:
        yield fake


def test_a_client_naming_another_provider_never_gets_the_configured_key(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.api_base("anthropic"))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-own-key-0123456789")
    server.script(text="hi")
    reply = proxy_chat_completion(
        {"model": "anthropic/claude-3-5-haiku-latest",
         "messages": [{"role": "user", "content": "Hi"}]},
        provider="openai", model="gpt-4o-mini",
        config={"api_key": SECRET, "api_base": "http://127.0.0.1:9/v1"})
    assert reply.status == 200
    headers = server.last_request.headers
    assert headers["x-api-key"] == "sk-ant-own-key-0123456789"
    assert SECRET not in str(headers)


def test_the_configured_provider_keeps_its_credentials_and_settings():
    config = {"api_key": SECRET, "api_base": "http://h/v1", "headers": {"X-A": "1"}, "timeout": 5}
    assert upstream_config(config, "openai", "openai") == config
    assert upstream_config(config, "openai", "anthropic") == {"timeout": 5}
    assert upstream_config(config, None, "openai") == {"timeout": 5}


def test_resolve_model() -> None:
    assert resolve_model("anthropic/claude-x", "openai", "gpt") == ("anthropic", "claude-x")
    assert resolve_model("meta-llama/llama-3", "openrouter", None) == (
        "openrouter", "meta-llama/llama-3")
    assert resolve_model(None, "openai", "gpt") == ("openai", "gpt")
    with pytest.raises(errors.ConfigurationError):
        resolve_model("gpt", None, None)


def test_error_status() -> None:
    assert error_status(errors.ConfigurationError("x")) == 400
    assert error_status(errors.ProviderError("x", status_code=503)) == 503
    assert error_status(errors.ProviderError("x")) == 502
    assert error_status(errors.IdleTimeout("x")) == 504
    assert error_status(errors.ModelNotFoundError("x")) == 404
    assert error_status(RuntimeError("x")) == 500
