"""The framework-free proxy core: credentials stay with the provider they were configured for."""

from __future__ import annotations

import pytest

from litestream.integrations import proxy_chat_completion, upstream_config
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
