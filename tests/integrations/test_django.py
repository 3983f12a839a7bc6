"""The Django example site served by a threaded wsgiref server, read by real clients."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import openai
import pytest
import requests

from litestream.integrations import Upstream
from litestream.testing import FakeLLMServer

SITE = Path(__file__).parents[2] / "examples" / "django_app"
TEXT = "Waves fold the light; the sea keeps the blue and gives back the rest."
USAGE = {"prompt_tokens": 9, "completion_tokens": 15}


@pytest.fixture(scope="module")
def django_application() -> Any:
    if str(SITE) not in sys.path:
        sys.path.insert(0, str(SITE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat_site.settings")
    from chat_site.wsgi import application

    return application


@pytest.fixture
def django_url(django_application: Any, upstream: FakeLLMServer, wsgi: Any) -> Iterator[str]:
    from django.test import override_settings

    config = {"api_key": "sk-upstream-django-98765", "api_base": upstream.api_base("openai")}
    target = Upstream("openai", "test-model", config)
    with override_settings(LITESTREAM_UPSTREAM=target, LITESTREAM_HEARTBEAT=0.05):
        yield wsgi(django_application, "wsgiref")


def test_openai_sdk_streams_through_django(django_url: str, upstream: FakeLLMServer) -> None:
    upstream.script(text=TEXT, usage=USAGE)
    texts, finish_reasons, usages = [], [], []
    with openai.OpenAI(base_url=django_url + "/v1", api_key="x", max_retries=0) as client:
        stream = client.chat.completions.create(
            model="openai/test-model", messages=[{"role": "user", "content": "Sea?"}],
            stream=True)
        with stream:
            for chunk in stream:
                for choice in chunk.choices:
                    texts.append(choice.delta.content or "")
                    if choice.finish_reason:
                        finish_reasons.append(choice.finish_reason)
                if chunk.usage is not None:
                    usages.append((chunk.usage.prompt_tokens, chunk.usage.completion_tokens))
    assert "".join(texts) == TEXT
    assert finish_reasons == ["stop"]
    assert usages == [(9, 15)]


def test_openai_sdk_non_streaming_and_errors_through_django(django_url: str,
                                                            upstream: FakeLLMServer) -> None:
    upstream.script(text=TEXT, usage=USAGE)
    upstream.script(error_status=404)
    with openai.OpenAI(base_url=django_url + "/v1", api_key="x", max_retries=0) as client:
        completion = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Sea?"}])
        assert completion.choices[0].message.content == TEXT
        assert completion.usage.completion_tokens == 15
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": "Sea?"}], stream=True)


def test_django_stream_endpoint_is_an_event_stream(django_url: str,
                                                   upstream: FakeLLMServer) -> None:
    upstream.script(text=TEXT)
    with requests.get(django_url + "/stream", params={"question": "Sea?"}, stream=True,
                      timeout=10) as reply:
        assert reply.headers["Content-Type"] == "text/event-stream"
        assert reply.headers["Cache-Control"] == "no-cache"
        assert reply.headers["X-Accel-Buffering"] == "no"
        lines = [line for line in reply.iter_lines() if line.startswith(b"data: ")]
    assert lines[-1] == b"data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in chunks if c["choices"]) == TEXT


def test_django_client_hang_up_closes_the_upstream(django_url: str, upstream: FakeLLMServer,
                                                   hang_up_releases_upstream: Any) -> None:
    hang_up_releases_upstream(django_url, upstream)


def test_browser_on_the_django_page(django_url: str, upstream: FakeLLMServer,
                                    browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upstream.script(text=TEXT, chunks=10, delay=0.01)
    browser.get(django_url + "/")
    browser.find_element(By.ID, "send").click()
    answer = browser.find_element(By.ID, "answer")
    WebDriverWait(browser, 10).until(lambda _: answer.get_attribute("data-done"))
    assert answer.get_attribute("data-done") == "true"
    assert answer.text == TEXT
