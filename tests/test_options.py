"""Call options: one typed object from either form, strict names, and the one retry policy."""

from __future__ import annotations

import threading

import pytest

import litestream as ls
from litestream import errors, transport
from litestream.options import CallOptions, RetryPolicy, Timeouts
from litestream.testing import FakeLLMServer

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


@pytest.fixture
def sent_options(monkeypatch):
    """The CallOptions each call hands the transport (no I/O: the transport is not reached)."""
    seen: list[CallOptions] = []

    def capture(http_request, provider, model, options, monitor=None):
        seen.append(options)
        raise errors.ProviderError("captured", retryable=False)

    monkeypatch.setattr(transport, "open_stream", capture)
    monkeypatch.setattr(transport, "send", capture)
    return seen


class RecordingWait:
    """An injected retry wait: records each requested delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float, cancelled: threading.Event) -> bool:
        self.delays.append(seconds)
        return cancelled.is_set()


OPTION_VALUES = [
    ("timeout", 3.5, lambda o: o.timeouts.total),
    ("connect_timeout", 1.5, lambda o: o.timeouts.connect),
    ("first_chunk_timeout", 2.5, lambda o: o.timeouts.first_chunk),
    ("idle_timeout", 0.2, lambda o: o.timeouts.idle),
    ("buffer", 7, lambda o: o.buffer),
    ("max_retries", 5, lambda o: o.retry.max_retries),
    ("max_event_size", 4096, lambda o: o.max_event_size),
    ("verify", False, lambda o: o.verify),
    ("headers", {"X-Trace": "1"}, lambda o: dict(o.headers)),
    ("extra_body", {"custom_field": 1}, lambda o: dict(o.extra_body)),
    ("api_base", "http://127.0.0.1:9/v1", lambda o: o.api_base),
    ("api_key", "sk-option-table-0001", lambda o: o.api_key),
]


@pytest.mark.parametrize("name, value, read", OPTION_VALUES, ids=[o[0] for o in OPTION_VALUES])
@pytest.mark.parametrize("stream", [True, False])
def test_each_option_reaches_the_transport_the_same_from_either_form(
        sent_options, name, value, read, stream):
    base = {"api_key": "sk-option-table-base", name: value}
    with pytest.raises(errors.ProviderError):
        ls.completion("openai", "gpt-4o", messages=MESSAGES, stream=stream, **base)
    with pytest.raises(errors.ProviderError):
        ls.completion("openai", "gpt-4o", {"messages": MESSAGES, "stream": stream}, base)
    keyword_form, config_form = sent_options
    assert read(keyword_form) == value
    assert read(config_form) == value
    assert keyword_form == config_form


@pytest.mark.parametrize("form", ["keyword", "config"])
def test_a_misspelled_option_fails_before_any_io_naming_the_nearest(server, form):
    api_base = server.api_base("openai")
    typo = {"idle_timout": 0.2}
    with pytest.raises(errors.ConfigurationError, match="'idle_timout'.*'idle_timeout'"):
        if form == "keyword":
            ls.completion("openai", "gpt-4o", messages=MESSAGES, stream=True, api_key="sk-x",
                          api_base=api_base, **typo)
        else:
            ls.completion("openai", "gpt-4o", {"messages": MESSAGES, "stream": True},
                          {"api_key": "sk-x", "api_base": api_base, **typo})
    # The same call without the typo does reach this server: the count means something.
    server.script(text="ok")
    assert ls.collect_stream(ls.completion("openai", "gpt-4o", messages=MESSAGES, stream=True,
                                           api_key="sk-x", api_base=api_base)).content == "ok"
    assert len(server.requests) == 1


def test_an_unknown_request_key_points_to_extra_body(server):
    with pytest.raises(errors.ConfigurationError, match="extra_body"):
        ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="sk-x",
                      api_base=server.api_base("openai"), tempreature=0.1)
    assert server.requests == []


def test_extra_body_fields_are_sent_as_they_are(server):
    server.script(text="ok")
    ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="sk-x",
                  api_base=server.api_base("openai"), extra_body={"vendor_flag": {"a": 1}})
    assert server.last_request.json["vendor_flag"] == {"a": 1}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1, "1", True])
@pytest.mark.parametrize("name", ["timeout", "connect_timeout", "first_chunk_timeout",
                                  "idle_timeout"])
def test_bad_timeouts_are_refused_naming_the_option(name, value):
    with pytest.raises(errors.ConfigurationError, match=name):
        ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="sk-x", **{name: value})


def test_zero_and_none_timeouts_are_accepted():
    assert Timeouts(total=0, idle=None).total == 0.0
    assert CallOptions.from_mapping({"idle_timeout": None}).timeouts.idle is None
    assert CallOptions.from_mapping({}).timeouts.idle == Timeouts().idle


def test_api_base_errors_quote_the_value():
    with pytest.raises(errors.ConfigurationError, match="'localhost:8080'"):
        ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="sk-x",
                      api_base="localhost:8080")


# ---------------------------------------------------------------------------
# max_retries: the one RetryPolicy, in completion()
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_500_500_200_succeeds_on_the_third_request(server, stream):
    server.script(error_status=500)
    server.script(error_status=500)
    server.script(text="third time")
    wait = RecordingWait()
    result = ls.completion("openai", "gpt-4o", messages=MESSAGES, stream=stream, api_key="sk-x",
                           api_base=server.api_base("openai"),
                           retry_policy=RetryPolicy(wait=wait))
    response = ls.collect_stream(result) if stream else result
    assert response.content == "third time"
    assert len(server.requests) == 3
    assert len(wait.delays) == 2


@pytest.mark.parametrize("stream", [True, False])
def test_max_retries_zero_makes_one_request_and_the_error_lists_attempts(server, stream):
    for _ in range(3):
        server.script(error_status=503)
    wait = RecordingWait()
    with pytest.raises(errors.ProviderError) as raised:
        result = ls.completion("openai", "gpt-4o", messages=MESSAGES, stream=stream,
                               api_key="sk-x", api_base=server.api_base("openai"),
                               retry_policy=RetryPolicy(wait=wait), max_retries=1)
        if stream:
            ls.collect_stream(result)
    assert len(server.requests) == 2
    assert len(raised.value.attempts) == 2
    assert all("HTTP 503" in line for line in raised.value.attempts)


def test_default_is_two_retries_as_the_official_sdks(server):
    for _ in range(4):
        server.script(error_status=500)
    with pytest.raises(errors.ProviderError):
        ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="sk-x",
                      api_base=server.api_base("openai"), retry_policy=RetryPolicy(
                          wait=RecordingWait()))
    assert len(server.requests) == 3
    assert CallOptions().retry.max_retries == 2


@pytest.mark.parametrize("stream", [True, False])
def test_retry_after_is_waited_at_least(server, stream):
    server.script(error_status=429, retry_after=1)
    server.script(text="after the wait")
    wait = RecordingWait()
    result = ls.completion("openai", "gpt-4o", messages=MESSAGES, stream=stream, api_key="sk-x",
                           api_base=server.api_base("openai"),
                           retry_policy=RetryPolicy(wait=wait, backoff_base=0.01))
    assert (ls.collect_stream(result) if stream else result).content == "after the wait"
    assert len(wait.delays) == 1 and wait.delays[0] >= 1.0


def test_a_retry_after_beyond_the_cap_is_not_waited_for(server):
    server.script(error_status=429, retry_after=120)
    wait = RecordingWait()
    with pytest.raises(errors.RateLimitError):
        ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="sk-x",
                      api_base=server.api_base("openai"), retry_policy=RetryPolicy(wait=wait))
    assert wait.delays == []
    assert len(server.requests) == 1


def test_no_retry_once_content_was_delivered(server):
    server.script(text="partial answer here", chunks=4, inband_error_after=2)
    server.script(text="a second answer nobody should ask for")
    wait = RecordingWait()
    stream = ls.completion("openai", "gpt-4o", messages=MESSAGES, stream=True, api_key="sk-x",
                           api_base=server.api_base("openai"), retry_policy=RetryPolicy(wait=wait))
    with pytest.raises(errors.LitestreamError) as raised:
        ls.collect_stream(stream)
    assert raised.value.partial_content
    assert wait.delays == []
    assert len(server.requests) == 1


def test_client_errors_are_not_retried(server):
    server.script(error_status=400)
    wait = RecordingWait()
    with pytest.raises(errors.InvalidRequestError):
        ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="sk-x",
                      api_base=server.api_base("openai"), retry_policy=RetryPolicy(wait=wait))
    assert wait.delays == [] and len(server.requests) == 1


def test_backoff_is_full_jitter_below_a_doubling_cap():
    import random

    policy = RetryPolicy(max_retries=10, backoff_base=0.5, backoff_cap=4.0,
                         random=random.Random(7))
    error = errors.ProviderError("x")
    for retry in range(6):
        bound = min(4.0, 0.5 * 2 ** retry)
        delays = [policy.delay(retry, error) for _ in range(50)]
        assert all(0.0 <= delay <= bound for delay in delays)
        assert max(delays) > bound / 2
    assert policy.delay(10, error) is None


# ---------------------------------------------------------------------------
# Errors for users of the official SDKs
# ---------------------------------------------------------------------------


def test_a_404_on_a_wrong_path_is_not_found_with_the_path(server):
    server.script(error_status=404, error_body="")
    with pytest.raises(errors.NotFoundError) as raised:
        ls.completion("openai", "gpt-4o", messages=MESSAGES, api_key="sk-x",
                      api_base=server.api_base("openai") + "/wrong")
    error = raised.value
    assert type(error) is errors.NotFoundError
    assert "/wrong" in error.message
    summary = errors.error_summary(error)
    assert "HTTP 404 — HTTP 404" not in summary
    assert summary.count("404") == 1, summary


def test_a_404_saying_the_model_does_not_exist_is_model_not_found(server):
    server.script(error_status=404, error_body={"error": {
        "message": "The model `gpt-9` does not exist", "type": "invalid_request_error",
        "code": "model_not_found"}})
    with pytest.raises(errors.ModelNotFoundError) as raised:
        ls.completion("openai", "gpt-9", messages=MESSAGES, api_key="sk-x",
                      api_base=server.api_base("openai"))
    assert isinstance(raised.value, errors.NotFoundError)
    assert "gpt-9" in raised.value.message


def test_an_error_inside_a_started_stream_is_not_retried(server):
    # As in the official SDKs: completion() retries getting an answer, not a
    # stream that started (the router does, holding chunks until content).
    server.script(text="never shown", inband_error_after=0)
    server.script(text="a second answer nobody should ask for")
    wait = RecordingWait()
    stream = ls.completion("openai", "gpt-4o", messages=MESSAGES, stream=True, api_key="sk-x",
                           api_base=server.api_base("openai"), retry_policy=RetryPolicy(wait=wait))
    with pytest.raises(errors.ProviderError):
        ls.collect_stream(stream)
    assert wait.delays == [] and len(server.requests) == 1


def test_a_refused_connection_is_retried(server):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    wait = RecordingWait()
    stream = ls.completion("openai", "gpt-4o", messages=MESSAGES, stream=True, api_key="sk-x",
                           api_base=f"http://127.0.0.1:{port}/v1",
                           retry_policy=RetryPolicy(wait=wait))
    with pytest.raises(errors.StreamConnectionError) as raised:
        ls.collect_stream(stream)
    assert len(wait.delays) == 2
    assert len(raised.value.attempts) == 3
