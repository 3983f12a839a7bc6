"""completion(): the three call forms, and bad input refused before any I/O."""

from __future__ import annotations

import pytest

import litestream as ls
from litestream import core
from litestream.errors import ConfigurationError
from litestream.testing import FakeLLMServer

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture(autouse=True)
def no_provider_keys(monkeypatch):
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                     "MISTRAL_API_KEY", "OPENROUTER_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)


def test_positional_form_of_the_seed(server):
    server.script(text="one two three", chunks=3)
    stream = ls.completion("openai", "gpt-4", {"messages": MESSAGES, "stream": True},
                           {"api_key": "sk-positional-0001", "api_base": server.api_base("openai")})
    assert isinstance(stream, ls.Stream)
    assert "".join(ls.extract_content(chunk) or "" for chunk in stream) == "one two three"
    assert server.last_request.json["model"] == "gpt-4"
    assert server.last_request.headers["authorization"] == "Bearer sk-positional-0001"


def test_keyword_form_sorts_request_and_config_keys(server):
    server.script(text="kw")
    stream = ls.completion("anthropic", "claude-3-5-haiku-latest", messages=MESSAGES,
                           stream=True, temperature=0.2, api_key="sk-ant-keyword-01",
                           api_base=server.api_base("anthropic"), buffer=4)
    assert stream.maxsize == 4
    assert ls.collect_stream(stream).content == "kw"
    body = server.last_request.json
    assert body["temperature"] == 0.2
    assert "api_key" not in body and "buffer" not in body


def test_provider_slash_model_form_and_non_streaming_response(server):
    server.script(text="whole")
    response = ls.completion("ollama/llama3.2", messages=MESSAGES,
                             api_base=server.api_base("ollama"))
    assert isinstance(response, ls.Response)
    assert ls.extract_content(response) == "whole"
    assert server.last_request.json["model"] == "llama3.2"


def test_key_comes_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "env-mistral-key-01")
    server.script(text="env")
    response = ls.completion("mistral", "mistral-small-latest", messages=MESSAGES,
                             api_base=server.api_base("mistral"))
    assert response.content == "env"
    assert server.last_request.headers["authorization"] == "Bearer env-mistral-key-01"


@pytest.mark.parametrize("call, message", [
    (lambda: ls.completion("nope", "m", messages=MESSAGES, api_key="k"), "nope"),
    (lambda: ls.completion("openai", "gpt-4o", messages=[], api_key="k"), "messages"),
    (lambda: ls.completion("openai", "gpt-4o", api_key="k"), "messages"),
    (lambda: ls.completion("openai", "gpt-4o", messages=[{"content": "x"}], api_key="k"),
     "no 'role'"),
    (lambda: ls.completion("openai", "gpt-4o", messages=[{"role": "robot", "content": "x"}],
                           api_key="k"), "unknown role"),
    (lambda: ls.completion("openai", "gpt-4o", messages=MESSAGES), "OPENAI_API_KEY"),
    (lambda: ls.completion("gemini", "gemini-2.5-flash", messages=MESSAGES), "GOOGLE_API_KEY"),
    (lambda: ls.completion("openai", messages=MESSAGES, api_key="k"), "no model"),
    (lambda: ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="k",
                           api_base="ftp://example"), "http"),
    (lambda: ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="k",
                           idle_timeout=-1), "idle_timeout"),
    (lambda: ls.completion("openai", "gpt-4o", {"messages": MESSAGES}, {"api_kye": "k"}),
     "unknown option"),
    (lambda: ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="k",
                           stream="false"), "'stream' must be True or False"),
    (lambda: ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="k",
                           max_tokens=True), "max_tokens"),
    (lambda: ls.completion("openai", "gpt-4o", "hello"), "request must be a dict"),
    (lambda: ls.completion("openai", "gpt-4o", {"messages": MESSAGES}, "sk-abc"),
     "config must be a dict"),
    (lambda: ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="k",
                           headers=["x"]), "headers"),
    (lambda: ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="k",
                           api_base="http://"), "names no host"),
])
def test_bad_input_raises_configuration_error_before_any_io(server, call, message, monkeypatch):
    # Every provider's base URL points at this server (keys stay unset), so
    # a call that got as far as I/O would be counted here.
    _point_base_urls_at(server, monkeypatch)
    requests_before = len(server.requests)
    with pytest.raises(ConfigurationError, match=message):
        call()
    assert len(server.requests) == requests_before


def test_a_good_call_made_the_same_way_does_reach_the_server(server, monkeypatch):
    _point_base_urls_at(server, monkeypatch)
    requests_before = len(server.requests)
    server.script(text="counted")
    assert ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="k").content == "counted"
    assert len(server.requests) == requests_before + 1


def _point_base_urls_at(server, monkeypatch):
    for variable, value in server.environment().items():
        if not variable.endswith("_API_KEY"):
            monkeypatch.setenv(variable, value)


def test_every_problem_of_a_request_is_reported_at_once():
    problems = core.validate_request({"messages": [{"content": "x"}, {"role": "user"}],
                                      "temperature": "hot", "max_tokens": 0})
    assert len(problems) == 4


def test_extract_content_dispatches_on_type():
    chunk = ls.Chunk(choices=[ls.Choice(delta=ls.Delta(content="a"))])
    response = ls.Response(choices=[ls.ResponseChoice(message=ls.Message(content="b"))])
    assert (ls.extract_content(chunk), ls.extract_content(response)) == ("a", "b")
    assert ls.extract_content(ls.Chunk(choices=[ls.Choice(delta=ls.Delta(role="assistant"))])) \
        is None
    assert ls.extract_content(ls.Chunk(choices=[ls.Choice(delta=ls.Delta(content=""))])) is None
    with pytest.raises(TypeError):
        ls.extract_content("text")  # type: ignore[arg-type]


def test_a_calls_credential_headers_are_hidden_from_its_errors_and_then_forgotten(server):
    referer, title, token = "https://myapp.example.com", "My application name", "tok-0123456789ab"
    key = "sk-or-core-test-01"
    server.script(error_status=400, error_body={"error": {
        "message": f"bad {token} and {key} from {referer} / {title}", "code": 400}})
    with pytest.raises(ls.errors.InvalidRequestError) as raised:
        ls.completion("openrouter", "openai/gpt-4o-mini", messages=MESSAGES, max_retries=0,
                      api_key=key, api_base=server.api_base("openrouter"),
                      headers={"HTTP-Referer": referer, "X-Title": title,
                               "X-Custom-Auth": token})
    message = ls.error_summary(raised.value)
    assert token not in message and key not in message and "[REDACTED]" in message
    assert referer in message and title in message  # only credentials are secrets
    # Per call, not global: the process has not kept the token.
    assert str(ls.errors.ProviderError(f"token {token}")) == f"token {token}"
