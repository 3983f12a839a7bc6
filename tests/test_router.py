"""Tests of the router: registry, quick setup, discovery, retries, fallbacks, cooldown, race.

Faults come from a FakeLLMServer over real loopback HTTP; waits are measured
with time.monotonic and never used as synchronisation.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

import pytest

from litestream import errors, router
from litestream._limits import LocalState, estimate_call_tokens
from litestream.core import extract_content
from litestream.options import RetryPolicy
from litestream.router import RoutedStream, Router

MESSAGES = [{"role": "user", "content": "Hi"}]


class RecordedWaits:
    """A retry wait that records the delays asked for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float, cancelled: threading.Event) -> bool:
        self.delays.append(seconds)
        return cancelled.is_set()


@pytest.fixture
def fresh_router() -> Router:
    """A router with tiny backoffs, so retries cost milliseconds."""
    return Router(backoff_base=0.01, backoff_cap=0.05)


@pytest.fixture
def default_router_cleared():
    """The module's default router, emptied before and after the test."""
    router.clear()
    yield router
    router.clear()


def text_of(stream) -> str:
    return "".join(extract_content(chunk) or "" for chunk in stream)


# ---------------------------------------------------------------------------
# quick_setup and per-provider setup
# ---------------------------------------------------------------------------


def test_quick_setup_registers_exactly_the_providers_with_keys(fresh_router):
    env = {
        "OPENAI_API_KEY": "sk-test-openai-0000",
        "GOOGLE_API_KEY": "AIza-test-google-0000",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OLLAMA_HOST": "127.0.0.1:11500",
    }
    names = fresh_router.quick_setup(env=env)
    assert names == ["openai", "gemini", "ollama"]
    assert fresh_router.names() == ["gemini", "ollama", "openai"]
    openai = fresh_router.get_config("openai")
    assert openai["provider"] == "openai"
    assert openai["model"] == router.provider_info("openai")["default_model"]
    assert openai["config"]["api_base"] == "http://127.0.0.1:9/v1"
    assert openai["config"]["api_key"] == "[REDACTED]"
    assert fresh_router.get_config("ollama")["config"]["api_base"] == "http://127.0.0.1:11500"
    gemini = fresh_router.get_config("gemini")["config"]
    assert gemini["api_base"] == router.provider_info("gemini")["default_api_base"]


def test_quick_setup_reads_the_given_env_not_os_environ(fresh_router, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-os-environ")
    assert fresh_router.quick_setup(env={"MISTRAL_API_KEY": "mistral-key-1234"}) == [
        "mistral", "ollama"]


def test_quick_setup_without_keys_registers_ollama_and_logs_the_variables(fresh_router, caplog):
    with caplog.at_level(logging.INFO, logger="litestream"):
        names = fresh_router.quick_setup(env={})
    assert names == ["ollama"]
    assert fresh_router.get_config("ollama")["config"]["api_base"] == "http://localhost:11434"
    messages = [r.getMessage() for r in caplog.records if r.name == "litestream"]
    assert any("OPENAI_API_KEY" in m and "GEMINI_API_KEY or GOOGLE_API_KEY" in m
               for m in messages), messages


def test_setup_uses_an_explicit_key_or_the_environment(default_router_cleared, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env-key-000")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert router.setup("anthropic") == "anthropic"
    assert router.setup("openai", api_key="sk-explicit-0000", model="gpt-x", name="mine") == "mine"
    assert router.get_config("mine")["model"] == "gpt-x"
    assert router.names() == ["anthropic", "mine"]
    with pytest.raises(errors.ConfigurationError, match="OPENAI_API_KEY"):
        router.setup("openai")
    assert router.setup("ollama", api_base="http://127.0.0.1:1") == "ollama"


def test_the_module_namespace_is_lean():
    assert not [name for name in router.__all__ if name.startswith("setup_")]
    assert "validate_request" not in router.__all__
    assert not hasattr(router, "validate_request")  # core.validate_request is the one
    for name in router.__all__:
        assert getattr(router, name).__doc__, name
    assert router.completion.__doc__.endswith("(:func:`default_router`).")


def test_a_router_holds_a_runner_and_a_health_book_not_a_base_class():
    assert Router.__mro__ == (Router, object)


# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------


def test_register_unregister_names_get_config_clear(fresh_router):
    fresh_router.register("fast", provider="openai", model="gpt-4o-mini", api_key="sk-k-0000",
                          fallbacks="smart", max_retries=1, timeout=5)
    fresh_router.register("smart", provider="anthropic/claude-x", config={"api_key": "k-0000"})
    assert fresh_router.names() == ["fast", "smart"]
    fast = fresh_router.get_config("fast")
    assert fast["fallbacks"] == ["smart"] and fast["max_retries"] == 1
    assert fast["config"] == {"api_key": "[REDACTED]", "timeout": 5}
    assert fresh_router.get_config("smart")["model"] == "claude-x"
    fresh_router.register("fast", provider="mistral", api_key="m-0000")
    assert fresh_router.get_config("fast")["provider"] == "mistral"
    assert fresh_router.unregister("fast") is True
    assert fresh_router.unregister("fast") is False
    assert fresh_router.names() == ["smart"]
    fresh_router.clear()
    assert fresh_router.names() == []


def test_registered_config_is_a_copy(fresh_router):
    config = {"api_key": "sk-copy-0000", "headers": {"X-A": "1"}}
    fresh_router.register("a", provider="openai", model="m", config=config)
    config["headers"]["X-A"] = "2"
    config["timeout"] = 1
    assert fresh_router.get_config("a")["config"]["headers"] == {"X-A": "1"}
    assert "timeout" not in fresh_router.get_config("a")["config"]


def test_unknown_name_raises_configuration_error_listing_the_known_ones(fresh_router):
    fresh_router.register("fast", provider="openai", model="m", api_key="sk-k-0000")
    with pytest.raises(errors.ConfigurationError, match=r"nope.*\['fast'\]"):
        fresh_router.completion("nope", messages=MESSAGES)
    with pytest.raises(errors.ConfigurationError, match="fast"):
        fresh_router.get_config("nope")


def test_register_rejects_bad_input(fresh_router):
    with pytest.raises(errors.ConfigurationError, match="unknown provider"):
        fresh_router.register("x", provider="nosuch", model="m")
    with pytest.raises(errors.ConfigurationError, match="unknown config keys"):
        fresh_router.register("x", provider="openai", model="m", colour="red")
    with pytest.raises(errors.ConfigurationError, match="provider="):
        fresh_router.register("x")
    with pytest.raises(errors.ConfigurationError, match="own fallback"):
        fresh_router.register("x", provider="openai", model="m", fallbacks=["x"])


def test_malformed_request_raises_before_any_io(fresh_router):
    fresh_router.register("a", provider="openai", model="m", api_key="sk-k-0000",
                          api_base="http://127.0.0.1:9")
    with pytest.raises(errors.ConfigurationError, match="messages"):
        fresh_router.completion("a", messages=[])


def test_api_keys_stay_out_of_reprs(fresh_router):
    fresh_router.register("a", provider="openai", model="m", api_key="sk-secret-key-123456")
    assert "sk-secret" not in repr(fresh_router.get_config("a"))
    assert "sk-secret" not in repr(fresh_router)


def test_get_config_masks_every_credential_header(fresh_router):
    headers = {"Authorization": "Bearer sk-header-secret-1", "api-key": "azure-secret-22",
               "X-Custom-Auth": "custom-secret-333", "X-Title": "my app"}
    fresh_router.register("a", provider="openai", model="m", headers=headers)
    fresh_router.register("auto", router=lambda request: {"provider": "openai"},
                          configs={"openai": {"headers": headers}})
    shown = fresh_router.get_config("a")["config"]["headers"]
    assert shown == {"Authorization": "[REDACTED]", "api-key": "[REDACTED]",
                     "X-Custom-Auth": "[REDACTED]", "X-Title": "my app"}
    assert fresh_router.get_config("auto")["configs"]["openai"]["headers"] == shown
    assert "secret" not in repr(fresh_router.get_config("auto"))
    assert headers["Authorization"] == "Bearer sk-header-secret-1"  # the caller's dict untouched


# ---------------------------------------------------------------------------
# Provider discovery
# ---------------------------------------------------------------------------


def test_providers_and_provider_info():
    assert {"openai", "anthropic", "gemini", "mistral", "openrouter", "ollama"} <= set(
        router.providers())
    info = router.provider_info("gemini", env={"GOOGLE_API_KEY": "AIza-0000"})
    assert info["env_var"] == "GEMINI_API_KEY"
    assert info["api_key_set"] is True
    assert info["supports_streaming"] is True
    assert router.provider_info("gemini", env={})["api_key_set"] is False
    ollama = router.provider_info("ollama", env={})
    assert ollama["requires_api_key"] is False
    assert ollama["api_base"].startswith("http://localhost:11434")
    with pytest.raises(errors.ConfigurationError):
        router.provider_info("nosuch")


# ---------------------------------------------------------------------------
# Calls over loopback HTTP
# ---------------------------------------------------------------------------


def register_fake(routes: Router, name: str, fake, provider: str = "openai", model: str = "m",
                  **kwargs) -> None:
    routes.register(name, provider=provider, model=model, api_key="test-key-0000",
                    api_base=fake.api_base(provider), **kwargs)


def closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_completion_streams_by_name(fresh_router, server):
    register_fake(fresh_router, "fast", server)
    server.script(text="Hello there friend", chunks=3)
    stream = fresh_router.completion("fast", messages=MESSAGES, stream=True)
    assert isinstance(stream, RoutedStream)
    assert text_of(stream) == "Hello there friend"
    assert (stream.provider, stream.model) == ("openai", "m")
    assert stream.join(5)


def test_completion_accepts_provider_names_directly(fresh_router, server):
    server.script(text="direct")
    response = fresh_router.completion("anthropic/claude-x", messages=MESSAGES,
                                       api_key="k-0000", api_base=server.api_base("anthropic"))
    assert response.content == "direct"
    assert server.last_request.json["model"] == "claude-x"


def test_429_with_retry_after_waits_at_least_that_long_through_the_policy(server):
    waits = RecordedWaits()
    routes = Router(retry_policy=RetryPolicy(backoff_base=0.01, backoff_cap=0.05, wait=waits))
    register_fake(routes, "fast", server)
    server.script(error_status=429, retry_after=1)
    server.script(error_status=429, retry_after=2)
    server.script(text="finally")
    stream = routes.completion("fast", messages=MESSAGES, stream=True)
    assert text_of(stream) == "finally"
    assert len(waits.delays) == 2
    assert waits.delays[0] >= 1.0 and waits.delays[1] >= 2.0  # asked for, never slept
    assert len(server.requests) == 3
    assert len(stream.attempts) == 2 and "HTTP 429" in stream.attempts[0]


def test_non_streaming_calls_retry_too(fresh_router, server):
    register_fake(fresh_router, "fast", server)
    server.script(error_status=500)
    server.script(error_status=503)
    server.script(text="third time")
    assert fresh_router.completion("fast", messages=MESSAGES).content == "third time"
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(fresh_router, server):
    register_fake(fresh_router, "fast", server)
    server.script(error_status=401)
    with pytest.raises(errors.AuthenticationError) as caught:
        fresh_router.completion("fast", messages=MESSAGES)
    assert len(server.requests) == 1
    assert len(caught.value.attempts) == 1


def test_retry_after_longer_than_the_total_timeout_is_not_waited_for(fresh_router, server):
    register_fake(fresh_router, "fast", server)
    server.script(error_status=429, retry_after=30)
    started = time.monotonic()
    with pytest.raises(errors.RateLimitError) as caught:
        fresh_router.completion("fast", messages=MESSAGES, timeout=2)
    assert time.monotonic() - started < 2
    assert caught.value.retry_after == 30
    assert len(server.requests) == 1


def test_inband_overloaded_before_content_is_retried(fresh_router, server):
    register_fake(fresh_router, "smart", server, provider="anthropic", model="claude-x")
    server.script(text="never shown", inband_error_after=0)
    server.script(text="Recovered fine", chunks=2)
    chunks = list(fresh_router.completion("smart", messages=MESSAGES, stream=True))
    assert "".join(extract_content(c) or "" for c in chunks) == "Recovered fine"
    assert len(server.requests) == 2
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == ["assistant"]  # held-back metadata of the failed attempt was dropped
    assert extract_content(chunks[0]) is None  # and the winner's came first, in order


def test_inband_error_after_content_is_raised_with_partial_content(fresh_router, server):
    register_fake(fresh_router, "smart", server, provider="anthropic", model="claude-x")
    server.script(chunks=["one ", "two ", "three"], inband_error_after=2)
    stream = fresh_router.completion("smart", messages=MESSAGES, stream=True)
    received = []
    with pytest.raises(errors.ProviderError) as caught:
        for chunk in stream:
            received.append(extract_content(chunk) or "")
    assert "".join(received) == "one two "
    assert caught.value.partial_content == "one two "
    assert caught.value.provider_code == "overloaded_error"
    assert len(caught.value.attempts) == 1
    assert len(server.requests) == 1
    assert stream.get() is None


def test_fallback_after_retries_of_500s(fresh_router, server, backup_server):
    register_fake(fresh_router, "primary", server, fallbacks=["backup"], max_retries=1)
    register_fake(fresh_router, "backup", backup_server, provider="mistral", model="b")
    server.script(error_status=500)
    server.script(error_status=500)
    backup_server.script(text="from the backup")
    stream = fresh_router.completion("primary", messages=MESSAGES, stream=True)
    assert text_of(stream) == "from the backup"
    assert (stream.provider, stream.model) == ("mistral", "b")
    assert len(server.requests) == 2 and len(backup_server.requests) == 1


def test_fallback_from_a_refused_connection(fresh_router, backup_server):
    fresh_router.register("dead", provider="openai", model="m", api_key="k-0000",
                          api_base=f"http://127.0.0.1:{closed_port()}/v1",
                          fallbacks="backup", max_retries=0)
    register_fake(fresh_router, "backup", backup_server)
    backup_server.script(text="still here")
    assert fresh_router.chat("dead", "Hi") == "still here"


def test_every_attempt_is_reported_when_all_fail(fresh_router, server, backup_server):
    register_fake(fresh_router, "primary", server, fallbacks=["backup"], max_retries=1)
    register_fake(fresh_router, "backup", backup_server, max_retries=1)
    server.script(error_status=500)
    server.script(error_status=500)
    backup_server.script(error_status=503)
    backup_server.script(error_status=502)
    stream = fresh_router.completion("primary", messages=MESSAGES, stream=True)
    with pytest.raises(errors.ProviderError) as caught:
        stream.get(timeout=10)
    attempts = caught.value.attempts
    assert [a.split("HTTP ")[1][:3] for a in attempts] == ["500", "500", "503", "502"]
    assert caught.value.status_code == 502
    assert caught.value.partial_content is None


def test_cooldown_skips_a_deployment_that_keeps_failing(server, backup_server):
    routes = Router(backoff_base=0.01, backoff_cap=0.05, cooldown_failures=2,
                    cooldown_window=60, cooldown_duration=60)
    register_fake(routes, "primary", server, fallbacks=["backup"], max_retries=1)
    register_fake(routes, "backup", backup_server)
    server.script(error_status=500)
    server.script(error_status=500)
    backup_server.script(text="first")
    backup_server.script(text="second")
    assert routes.chat("primary", "Hi") == "first"
    assert routes.chat("primary", "Hi") == "second"
    assert len(server.requests) == 2  # cooling down: not asked the second time


def test_dynamic_router_picks_the_deployment_per_request(fresh_router, server):
    def by_priority(request):
        if request.get("priority") == "high":
            return {"provider": "anthropic", "model": "claude-big"}
        return {"provider": "openai", "model": "gpt-small"}

    config = {"api_key": "k-0000"}
    fresh_router.register("auto", router=by_priority, route_keys=["priority"], configs={
        "openai": {**config, "api_base": server.api_base("openai")},
        "anthropic": {**config, "api_base": server.api_base("anthropic")},
    })
    fresh_router.completion("auto", messages=MESSAGES, priority="high")
    assert server.last_request.provider == "anthropic"
    assert server.last_request.json["model"] == "claude-big"
    assert "priority" not in server.last_request.json
    fresh_router.completion("auto", messages=MESSAGES)
    assert server.last_request.provider == "openai"
    assert server.last_request.json["model"] == "gpt-small"


def test_dynamic_router_by_estimated_prompt_size(fresh_router, server):
    from litestream.tokens import estimate_tokens

    def by_size(request):
        size = sum(estimate_tokens(m["content"]) for m in request["messages"])
        return {"provider": "openai", "model": "long" if size > 100 else "short"}

    fresh_router.register("sized", router=by_size, configs={
        "openai": {"api_key": "k-0000", "api_base": server.api_base("openai")}})
    fresh_router.chat("sized", "short question")
    assert server.last_request.json["model"] == "short"
    fresh_router.chat("sized", "word " * 500)
    assert server.last_request.json["model"] == "long"


def test_race_returns_the_first_stream_with_content_and_closes_the_rest(
    fresh_router, server, backup_server
):
    register_fake(fresh_router, "slow", server)
    register_fake(fresh_router, "quick", backup_server, provider="anthropic", model="q")
    server.script(text="too late", stall_after=0)
    backup_server.script(text="quick answer", chunks=2)
    stream = fresh_router.race(["slow", "quick"], messages=MESSAGES)
    # On a loaded machine the quick answer may win before the slow request was
    # even sent: then there is no request to see closed, only the reader to end.
    for thread in threading.enumerate():
        if thread.name == "litestream-reader-openai":
            thread.join(5)
            assert not thread.is_alive(), "the losing stream's reader must end"
    assert server.wait_idle(5)
    if server.requests:
        assert server.wait_for_disconnect(5)
    chunks = list(stream)
    assert "".join(extract_content(c) or "" for c in chunks) == "quick answer"
    assert chunks[0].choices[0].delta.role == "assistant"  # held metadata still delivered
    assert stream.provider == "anthropic"


def test_race_raises_with_every_attempt_when_all_fail(fresh_router, server, backup_server):
    register_fake(fresh_router, "a", server)
    register_fake(fresh_router, "b", backup_server)
    server.script(error_status=500)
    backup_server.script(error_status=401)
    with pytest.raises(errors.LitestreamError) as caught:
        fresh_router.race(["a", "b"], messages=MESSAGES)
    assert len(caught.value.attempts) == 2
    assert caught.value.channel is None


def test_stream_from_multiple_configs(default_router_cleared, server):
    """The seed's example: one request streamed from a fast and a smart deployment at once."""
    from litestream import alts

    router.register("fast", provider="openai", model="gpt-4o-mini",
                    config={"api_key": "test-0000", "api_base": server.api_base("openai")})
    router.register("smart", provider="anthropic", model="claude-3-5-sonnet-latest",
                    config={"api_key": "test-0000", "api_base": server.api_base("anthropic")})
    server.script(text="Quick answer.", delay=0.01)
    server.script(text="Thoughtful answer.", delay=0.01)
    request = {"messages": [{"role": "user", "content": "Explain channels"}], "stream": True}
    streams = {name: router.completion(name, request) for name in ("fast", "smart")}
    texts = {name: "" for name in streams}
    live = dict(streams)
    while live:
        chunk, channel = alts(list(live.values()), timeout=10)
        name = next(n for n, s in live.items() if s is channel)
        if chunk is None:
            del live[name]
        else:
            texts[name] += extract_content(chunk) or ""
    assert sorted(texts.values()) == ["Quick answer.", "Thoughtful answer."]
    assert {r.provider for r in server.requests} == {"openai", "anthropic"}


def test_twenty_threads_share_one_router(fresh_router, server):
    register_fake(fresh_router, "fast", server)
    results: list[str] = []
    failures: list[BaseException] = []

    def call(index: int) -> None:
        try:
            if index % 2:
                results.append(fresh_router.chat("fast", f"question {index}"))
            else:
                stream = fresh_router.completion("fast", messages=MESSAGES, stream=True)
                results.append(text_of(stream))
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures
    assert len(results) == 20 and all(results)


def test_closing_during_a_backoff_wait_ends_the_router_thread(fresh_router, server):
    register_fake(fresh_router, "fast", server)
    server.script(error_status=429, retry_after=30)
    stream = fresh_router.completion("fast", messages=MESSAGES, stream=True)
    assert server.wait_for_requests(1, 5)
    started = time.monotonic()
    stream.close()
    assert stream.join(5)
    assert time.monotonic() - started < 2
    assert stream.get() is None
    assert len(server.requests) == 1


def test_closing_mid_stream_closes_the_attempt(fresh_router, server):
    register_fake(fresh_router, "fast", server)
    server.script(text="a b c d", stall_after=1)
    stream = fresh_router.completion("fast", messages=MESSAGES, stream=True)
    assert extract_content(next(c for c in stream if extract_content(c))) == "a"
    stream.close()
    assert server.wait_for_disconnect(5)
    assert stream.join(5)


def test_an_abandoned_routed_stream_is_cleaned_up(fresh_router, server):
    register_fake(fresh_router, "fast", server)
    server.script(text="a b c d", stall_after=1)
    stream = fresh_router.completion("fast", messages=MESSAGES, stream=True)
    stream.get(timeout=5)
    del stream
    gc.collect()
    assert server.wait_for_disconnect(5)


def test_chat_sends_the_system_prompt(default_router_cleared, server):
    router.register("fast", provider="openai", model="m", api_key="k-0000",
                    api_base=server.api_base("openai"))
    server.script(text="Bonjour")
    assert router.chat("fast", "Hello", system="Answer in French") == "Bonjour"
    assert server.last_request.json["messages"][0] == {
        "role": "system", "content": "Answer in French"}


def test_the_backoff_arguments_build_the_one_retry_policy():
    assert Router(backoff_base=0.5, backoff_cap=2.0).retry_policy == RetryPolicy(
        backoff_base=0.5, backoff_cap=2.0)
    assert Router().retry_policy == RetryPolicy()
    policy = RetryPolicy(max_retries=4)
    assert Router(retry_policy=policy).retry_policy is policy
    with pytest.raises(errors.ConfigurationError, match="not both"):
        Router(retry_policy=policy, backoff_base=1.0)


def test_per_deployment_max_retries_and_every_attempt_listed(server):
    waits = RecordedWaits()
    routes = Router(retry_policy=RetryPolicy(max_retries=0, wait=waits))
    register_fake(routes, "patient", server, max_retries=2)
    register_fake(routes, "default", server)
    for _ in range(3):
        server.script(error_status=500)
    with pytest.raises(errors.ProviderError) as caught:
        routes.completion("patient", messages=MESSAGES)
    assert len(server.requests) == 3
    assert [a.split("HTTP ")[1][:3] for a in caught.value.attempts] == ["500", "500", "500"]
    assert len(waits.delays) == 2
    server.script(error_status=500)
    with pytest.raises(errors.ProviderError) as caught:
        routes.completion("default", messages=MESSAGES)  # the policy's count: no retry
    assert len(server.requests) == 4 and len(caught.value.attempts) == 1
    server.script(error_status=500)
    server.script(text="second")
    assert routes.completion("default", messages=MESSAGES, max_retries=1).content == "second"


def test_a_call_may_bring_its_own_retry_policy(fresh_router, server):
    waits = RecordedWaits()
    register_fake(fresh_router, "fast", server, max_retries=0)
    server.script(error_status=503)
    server.script(text="ok")
    response = fresh_router.completion(
        "fast", messages=MESSAGES, retry_policy=RetryPolicy(wait=waits), max_retries=1)
    assert response.content == "ok"
    assert len(waits.delays) == 1 and 0 <= waits.delays[0] <= 0.5


def test_first_chunk_timeout_is_retried_and_the_stalled_attempt_closed(fresh_router, server):
    # Long enough for a loaded machine: the first attempt must take its (stalled)
    # reply before the deadline, or the retry may arrive first and take it.
    register_fake(fresh_router, "fast", server, first_chunk_timeout=1.0)
    server.script(text="never", stall_after=0)
    server.script(text="second try")
    stream = fresh_router.completion("fast", messages=MESSAGES, stream=True)
    assert text_of(stream) == "second try"
    assert "FirstChunkTimeout" in stream.attempts[0]
    assert len(server.requests) == 2


# ---------------------------------------------------------------------------
# Limits per deployment
# ---------------------------------------------------------------------------


class FakeClock:
    """Monotonic seconds that move only when a wait asks them to."""

    def __init__(self) -> None:
        self.now = time.monotonic()
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float, cancelled: threading.Event) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return cancelled.is_set()


def test_a_deployment_at_its_rpm_sends_to_a_fallback_with_room(fresh_router, server,
                                                                backup_server):
    register_fake(fresh_router, "primary", server, rpm=1, burst=1, fallbacks=["backup"])
    register_fake(fresh_router, "backup", backup_server, rpm=60, burst=5)
    server.script(text="primary")
    backup_server.script(text="backup")
    assert fresh_router.chat("primary", "Hi") == "primary"
    assert fresh_router.chat("primary", "Hi") == "backup"
    assert len(server.requests) == 1 and len(backup_server.requests) == 1
    assert fresh_router.get_config("primary")["limits"]["rpm"] == 1


def test_at_its_limit_past_the_deadline_a_call_raises_unsent(fresh_router, server):
    register_fake(fresh_router, "fast", server, rpm=1, burst=1)
    server.script(text="first")
    assert fresh_router.chat("fast", "Hi") == "first"
    with pytest.raises(errors.RateLimitError) as caught:
        fresh_router.completion("fast", messages=MESSAGES, timeout=5)
    assert caught.value.retry_after == pytest.approx(60, abs=1)
    assert "rpm" in str(caught.value) and len(caught.value.attempts) == 1
    stream = fresh_router.completion("fast", messages=MESSAGES, stream=True, timeout=5)
    with pytest.raises(errors.RateLimitError):
        stream.get(timeout=5)
    assert len(server.requests) == 1  # never sent over the limit


def test_at_its_limit_a_call_waits_for_room_within_its_deadline(server):
    clock = FakeClock()
    routes = Router(clock=clock, retry_policy=RetryPolicy(wait=clock.wait))
    register_fake(routes, "fast", server, rpm=60, burst=1)
    server.script(text="one")
    server.script(text="two")
    assert routes.chat("fast", "Hi") == "one"
    assert routes.completion("fast", messages=MESSAGES, timeout=30).content == "two"
    assert clock.waits == [pytest.approx(1.0)]
    assert len(server.requests) == 2


def test_max_concurrent_holds_a_slot_until_the_stream_ends(fresh_router, server):
    register_fake(fresh_router, "fast", server, max_concurrent=1)
    server.script(text="a b c", stall_after=1)
    server.script(text="second")
    first = fresh_router.completion("fast", messages=MESSAGES, stream=True)
    assert next(c for c in first if c.content).content == "a"
    with pytest.raises(errors.RateLimitError, match="max_concurrent"):
        fresh_router.completion("fast", messages=MESSAGES, timeout=0.01)
    assert len(server.requests) == 1
    first.close()
    assert first.join(5)
    assert fresh_router.chat("fast", "Hi") == "second"  # the slot was freed


# ---------------------------------------------------------------------------
# Limits: what an attempt settles
# ---------------------------------------------------------------------------


class SettlementsState(LocalState):
    """The in-process limits state, noting what each lease settles."""

    def __init__(self) -> None:
        super().__init__()
        self.settled: list[int] = []

    def settle(self, lease, used_tokens: int) -> None:
        self.settled.append(used_tokens)
        super().settle(lease, used_tokens)


def test_an_abandoned_stream_settles_an_estimate_of_what_it_used(server):
    state = SettlementsState()
    routes = Router(state=state)
    register_fake(routes, "limited", server, tpm=100_000)
    server.script(text="one two three four five six", chunks=6, stall_after=2)
    stream = routes.completion("limited", messages=MESSAGES, stream=True, max_tokens=500)
    assert extract_content(next(c for c in stream if extract_content(c)))
    stream.close()
    assert stream.join(5)
    assert len(state.settled) == 1
    reserved = estimate_call_tokens({"messages": MESSAGES, "max_tokens": 500})
    # Not the whole reservation, not nothing: the prompt and the text that came.
    assert 0 < state.settled[0] < reserved


def test_an_attempt_refused_before_content_settles_nothing(server):
    state = SettlementsState()
    routes = Router(state=state, retry_policy=RetryPolicy(max_retries=0))
    register_fake(routes, "limited", server, tpm=100_000)
    server.script(error_status=500)
    with pytest.raises(errors.ProviderError):
        routes.completion("limited", messages=MESSAGES)
    assert state.settled == [0]


def test_race_sends_nothing_to_a_deployment_at_its_limit(server, backup_server):
    routes = Router()
    register_fake(routes, "full", server, max_concurrent=1)
    register_fake(routes, "free", backup_server)
    server.script(text="holding the only slot", chunks=4, stall_after=1)
    holder = routes.completion("full", messages=MESSAGES, stream=True)
    assert extract_content(next(c for c in holder if extract_content(c)))
    backup_server.script(text="from the free one")
    raced = routes.race(["full", "free"], messages=MESSAGES, stream=True)
    assert text_of(raced) == "from the free one"
    assert len(server.requests) == 1  # only the holder's: the race sent nothing there
    holder.close()
    assert holder.join(5) and raced.join(5)


def test_race_with_every_deployment_at_its_limit_raises_unsent(server):
    routes = Router()
    register_fake(routes, "full", server, max_concurrent=1)
    server.script(text="holding the only slot", chunks=4, stall_after=1)
    holder = routes.completion("full", messages=MESSAGES, stream=True)
    assert extract_content(next(c for c in holder if extract_content(c)))
    with pytest.raises(errors.RateLimitError) as raised:
        routes.race(["full", "full"], messages=MESSAGES, stream=True)
    assert raised.value.retry_after is not None
    assert len(server.requests) == 1
    holder.close()
    assert holder.join(5)


def test_a_failed_routed_stream_is_freed_once_dropped(fresh_router, server):
    import weakref

    register_fake(fresh_router, "fast", server)

    def consume_and_fail() -> weakref.ref:
        stream = fresh_router.completion("fast", messages=MESSAGES, stream=True)
        with pytest.raises(errors.InvalidRequestError):
            for _chunk in stream:
                pass  # the error's traceback holds this frame, and the frame the stream
        assert stream.join(5.0)
        return weakref.ref(stream)

    server.script(error_status=400)
    stream_ref = consume_and_fail()
    gc.collect()
    # The job keeps its attempts' errors; its finalizer, kept in a global
    # registry, must not keep the job (and so the error and the stream) alive.
    assert stream_ref() is None
