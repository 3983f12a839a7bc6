"""The Flask example and integration, served by a real WSGI server, read by real clients."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
import requests

from litestream import errors
from litestream.integrations import error_status, resolve_model, upstream_from_env
from litestream.testing import FakeLLMServer

EXAMPLES = Path(__file__).parents[2] / "examples"
TEXT = "The sky is blue because air scatters short wavelengths of sunlight the most."
USAGE = {"prompt_tokens": 12, "completion_tokens": 14}


def load_flask_example() -> Any:
    spec = importlib.util.spec_from_file_location("flask_app_example", EXAMPLES / "flask_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def flask_url(upstream: FakeLLMServer, wsgi: Any) -> str:
    app = load_flask_example().create_app(
        provider="openai", model="test-model",
        config={"api_key": "sk-upstream-secret-123456789", "api_base": upstream.api_base("openai")},
        heartbeat=0.05)
    return wsgi(app)


def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="proxy-client-key", max_retries=0)


def test_import_litestream_does_not_import_web_frameworks() -> None:
    code = ("import sys, litestream, litestream.integrations; "
            "assert 'flask' not in sys.modules and 'django' not in sys.modules, 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_openai_sdk_streams_through_the_proxy(flask_url: str, upstream: FakeLLMServer) -> None:
    upstream.script(text=TEXT, usage=USAGE)
    texts, finish_reasons, usages = [], [], []
    with openai_client(flask_url) as client:
        stream = client.chat.completions.create(
            model="openai/test-model", messages=[{"role": "user", "content": "Why?"}],
            stream=True)
        with stream:
            for chunk in stream:
                for choice in chunk.choices:
                    texts.append(choice.delta.content or "")
                    if choice.finish_reason:
                        finish_reasons.append(choice.finish_reason)
                if chunk.usage is not None:
                    usages.append(chunk.usage)
    assert "".join(texts) == TEXT
    assert finish_reasons == ["stop"]
    assert [(u.prompt_tokens, u.completion_tokens) for u in usages] == [(12, 14)]
    assert upstream.last_request.json["model"] == "test-model"
    assert upstream.last_request.headers["authorization"] == "Bearer sk-upstream-secret-123456789"


def test_openai_sdk_non_streaming_through_the_proxy(flask_url: str,
                                                    upstream: FakeLLMServer) -> None:
    upstream.script(text=TEXT, usage=USAGE)
    with openai_client(flask_url) as client:
        completion = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Why?"}])
    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 14)


def test_upstream_http_errors_keep_their_status(flask_url: str, upstream: FakeLLMServer) -> None:
    upstream.script(error_status=429, retry_after=3)
    upstream.script(error_status=401)
    with openai_client(flask_url) as client:
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": "Hi"}], stream=True)
        assert limited.value.response.headers["retry-after"] == "3"
        with pytest.raises(openai.AuthenticationError) as denied:
            client.chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": "Hi"}])
    body = denied.value.body
    assert body["type"] == "AuthenticationError"
    assert "sk-upstream-secret" not in json.dumps(body)


def test_bad_request_body_is_a_400(flask_url: str) -> None:
    reply = requests.post(flask_url + "/v1/chat/completions", data=b"not json",
                          headers={"Content-Type": "application/json"}, timeout=10)
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "ConfigurationError"
    reply = requests.post(flask_url + "/v1/chat/completions",
                          json={"model": "test-model", "messages": []}, timeout=10)
    assert reply.status_code == 400
    assert "messages" in reply.json()["error"]["message"]


def test_midstream_error_reaches_the_sdk_as_an_api_error(flask_url: str,
                                                          upstream: FakeLLMServer) -> None:
    upstream.script(text="one two three four", inband_error_after=2)
    texts = []
    with openai_client(flask_url) as client:
        stream = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Hi"}], stream=True)
        with pytest.raises(openai.APIError):
            with stream:
                for chunk in stream:
                    texts.extend(choice.delta.content or "" for choice in chunk.choices)
    assert "".join(texts) == "one two"


def test_stream_endpoint_sends_sse_headers_and_openai_chunks(flask_url: str,
                                                             upstream: FakeLLMServer) -> None:
    upstream.script(text=TEXT)
    with requests.get(flask_url + "/stream", params={"question": "Why?"}, stream=True,
                      timeout=10) as reply:
        assert reply.headers["Content-Type"] == "text/event-stream"
        assert reply.headers["Cache-Control"] == "no-cache"
        assert reply.headers["X-Accel-Buffering"] == "no"
        lines = [line for line in reply.iter_lines() if line.startswith(b"data: ")]
    assert lines[-1] == b"data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == TEXT
    assert upstream.last_request.json["messages"] == [{"role": "user", "content": "Why?"}]


def test_stream_endpoint_without_a_question_is_a_400(flask_url: str) -> None:
    reply = requests.get(flask_url + "/stream", timeout=10)
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "ConfigurationError"


def test_client_hang_up_closes_the_upstream(flask_url: str, upstream: FakeLLMServer,
                                            hang_up_releases_upstream: Any) -> None:
    hang_up_releases_upstream(flask_url, upstream)


def test_browser_shows_the_streamed_answer(flask_url: str, upstream: FakeLLMServer,
                                           browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upstream.script(text=TEXT, chunks=12, delay=0.01)
    browser.get(flask_url + "/")
    question = browser.find_element(By.ID, "question")
    question.clear()
    question.send_keys("Why is the sky blue?")
    browser.find_element(By.ID, "send").click()
    answer = browser.find_element(By.ID, "answer")
    WebDriverWait(browser, 10).until(lambda _: answer.get_attribute("data-done"))
    assert answer.get_attribute("data-done") == "true"
    assert answer.text == TEXT
    assert upstream.last_request.json["messages"][0]["content"] == "Why is the sky blue?"


def test_browser_shows_an_upstream_error(flask_url: str, upstream: FakeLLMServer,
                                         browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upstream.script(text="Half an", inband_error_after=2)
    browser.get(flask_url + "/")
    browser.find_element(By.ID, "send").click()
    answer = browser.find_element(By.ID, "answer")
    WebDriverWait(browser, 10).until(lambda _: answer.get_attribute("data-done"))
    assert answer.get_attribute("data-done") == "error"
    assert answer.text == "Half an"
    assert browser.find_element(By.ID, "error").text


# -- framework-free pieces ------------------------------------------------------


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


def test_upstream_from_env() -> None:
    upstream = upstream_from_env({"LITESTREAM_PROVIDER": "anthropic",
                                  "LITESTREAM_API_BASE": "http://127.0.0.1:1"})
    assert (upstream.provider, upstream.model) == ("anthropic", "gpt-4o-mini")
    assert upstream.config == {"api_base": "http://127.0.0.1:1", "api_key": "no-key-needed"}
    keyed = upstream_from_env({"LITESTREAM_API_BASE": "http://h", "OPENAI_API_KEY": "sk-x"})
    assert "api_key" not in keyed.config
