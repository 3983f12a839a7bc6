"""The Flask and Django examples, one test body for both: served by real WSGI servers,
read by the official openai SDK, raw HTTP and a real browser."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import openai
import pytest
import requests

from litestream.testing import FakeLLMServer

TEXT = "The sky is blue because air scatters short wavelengths of sunlight the most."
USAGE = {"prompt_tokens": 12, "completion_tokens": 14}


def openai_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="proxy-client-key", max_retries=0)


def read_events_then_hang_up(url: str, path: str, count: int) -> list[bytes]:
    """GET ``path`` over a raw socket, read until ``count`` data events arrived, then close."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        received = b""
        while received.count(b"data: ") < count:
            data = sock.recv(65536)
            if not data:
                break  # the server closed the stream early: the caller's assert says so
            received += data
        return [line for line in received.split(b"\n") if line.startswith(b"data: ")]
    finally:
        sock.close()


def test_openai_sdk_streams_through_the_proxy(app_url: str, upstream: FakeLLMServer) -> None:
    upstream.script(text=TEXT, usage=USAGE)
    texts, finish_reasons, usages = [], [], []
    with openai_client(app_url) as client:
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
                    usages.append((chunk.usage.prompt_tokens, chunk.usage.completion_tokens))

    assert "".join(texts) == TEXT
    assert finish_reasons == ["stop"]
    assert usages == [(12, 14)]
    assert upstream.last_request.json["model"] == "test-model"
    # The app's own upstream key, not the client's.
    assert upstream.last_request.headers["authorization"].startswith("Bearer sk-upstream-")


def test_openai_sdk_non_streaming_through_the_proxy(app_url: str,
                                                    upstream: FakeLLMServer) -> None:
    upstream.script(text=TEXT, usage=USAGE)
    with openai_client(app_url) as client:
        completion = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Why?"}])

    assert completion.choices[0].message.content == TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 14)


def test_upstream_http_errors_keep_their_status(app_url: str, upstream: FakeLLMServer) -> None:
    upstream.script(error_status=429, retry_after=3)
    upstream.script(error_status=401)
    upstream.script(error_status=404)
    messages = [{"role": "user", "content": "Hi"}]
    with openai_client(app_url) as client:
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="test-model", messages=messages, stream=True)
        with pytest.raises(openai.AuthenticationError) as denied:
            client.chat.completions.create(model="test-model", messages=messages)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="test-model", messages=messages, stream=True)

    assert limited.value.response.headers["retry-after"] == "3"
    assert denied.value.body["type"] == "AuthenticationError"
    assert "sk-upstream" not in json.dumps(denied.value.body)


def test_bad_request_body_is_a_400(app_url: str) -> None:
    not_json = requests.post(app_url + "/v1/chat/completions", data=b"not json",
                             headers={"Content-Type": "application/json"}, timeout=10)
    no_messages = requests.post(app_url + "/v1/chat/completions",
                                json={"model": "test-model", "messages": []}, timeout=10)

    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "ConfigurationError"
    assert no_messages.status_code == 400
    assert "messages" in no_messages.json()["error"]["message"]


def test_midstream_error_reaches_the_sdk_as_an_api_error(app_url: str,
                                                          upstream: FakeLLMServer) -> None:
    upstream.script(text="one two three four", inband_error_after=2)
    texts = []
    with openai_client(app_url) as client:
        stream = client.chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "Hi"}], stream=True)
        with pytest.raises(openai.APIError):
            with stream:
                for chunk in stream:
                    texts.extend(choice.delta.content or "" for choice in chunk.choices)

    assert "".join(texts) == "one two"


def test_stream_endpoint_sends_sse_headers_and_openai_chunks(app_url: str,
                                                             upstream: FakeLLMServer) -> None:
    upstream.script(text=TEXT)
    with requests.get(app_url + "/stream", params={"question": "Why?"}, stream=True,
                      timeout=10) as reply:
        headers = reply.headers
        lines = [line for line in reply.iter_lines() if line.startswith(b"data: ")]

    assert headers["Content-Type"] == "text/event-stream"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["X-Accel-Buffering"] == "no"
    assert lines[-1] == b"data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == TEXT
    assert upstream.last_request.json["messages"] == [{"role": "user", "content": "Why?"}]


def test_stream_endpoint_without_a_question_is_a_400(app_url: str) -> None:
    reply = requests.get(app_url + "/stream", timeout=10)

    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "ConfigurationError"


def test_client_hang_up_closes_the_upstream(app_url: str, upstream: FakeLLMServer) -> None:
    upstream.script(text="one two three four five", stall_after=3)

    events = read_events_then_hang_up(app_url, "/stream?question=Hi", 2)
    upstream_closed = upstream.wait_for_disconnect(5)
    for thread in threading.enumerate():
        if thread.name.startswith("litestream-"):  # the reader, and the timer it used
            thread.join(5)
    left = [t.name for t in threading.enumerate() if t.name.startswith("litestream-")]

    assert len(events) >= 2, events
    assert upstream_closed, "the upstream request outlived the web client"
    assert left == []


def test_browser_shows_the_streamed_answer(app_url: str, upstream: FakeLLMServer,
                                           browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upstream.script(text=TEXT, chunks=12, delay=0.01)
    browser.get(app_url + "/")
    question = browser.find_element(By.ID, "question")
    question.clear()
    question.send_keys("Why is the sky blue?")
    browser.find_element(By.ID, "send").click()
    answer = browser.find_element(By.ID, "answer")
    WebDriverWait(browser, 10).until(lambda _: answer.get_attribute("data-done"))

    assert answer.get_attribute("data-done") == "true"
    assert answer.text == TEXT
    assert upstream.last_request.json["messages"][0]["content"] == "Why is the sky blue?"


def test_browser_shows_an_upstream_error(app_url: str, upstream: FakeLLMServer,
                                         browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    upstream.script(text="Half an", inband_error_after=2)
    browser.get(app_url + "/")
    browser.find_element(By.ID, "send").click()
    answer = browser.find_element(By.ID, "answer")
    WebDriverWait(browser, 10).until(lambda _: answer.get_attribute("data-done"))

    assert answer.get_attribute("data-done") == "error"
    assert answer.text == "Half an"
    assert browser.find_element(By.ID, "error").text
