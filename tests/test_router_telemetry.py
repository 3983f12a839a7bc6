"""Router telemetry: every attempt of a routed call reaches the listeners once, with its usage.

Retries, fallbacks and the streams of a race are each one call for the
listeners, with the deployment's name and the attempt number; ``on_end``
fires exactly once per attempt (a closed race loser ends ``cancelled``).
A routed stream keeps every attempt's usage and their total. Faults come
from FakeLLMServers on loopback; retry waits are injected (no sleeping).
"""

from __future__ import annotations

import gc
import random
import threading
from decimal import Decimal
from typing import Any

import pytest
from recorder import Recorder

import litestream
from litestream import errors, listeners
from litestream.options import RetryPolicy
from litestream.router import AttemptLog, Router
from litestream.testing import FakeLLMServer

MESSAGES = [{"role": "user", "content": "Why is the sky blue?"}]
#: Routed calls in the chaos run (each opens one to three attempts).
CHAOS_CALLS = 300


class AttemptRecorder(Recorder):
    """A recorder that also reads its events as a routed call's attempts."""

    def attempts(self) -> list[tuple[str, int, str]]:
        """(deployment, attempt, outcome) of each end, by attempt number."""
        ends = sorted(self.ends, key=lambda event: event.attempt)
        return [(event.deployment, event.attempt, event.outcome) for event in ends]

    def assert_one_end_per_call(self) -> None:
        ids = [event.call_id for event in self.ends]
        assert len(ids) == len(set(ids)), "on_end fired twice for an attempt"
        assert sorted(ids) == sorted(event.call_id for event in self.requests)


class Raising:
    """A listener that raises in every hook."""

    def __init__(self) -> None:
        self.calls = 0

    def _raise(self, event: Any) -> None:
        self.calls += 1
        raise RuntimeError("listener bug")

    on_request = on_first_chunk = on_end = _raise


def no_wait(seconds: float, cancelled: threading.Event) -> bool:
    return cancelled.is_set()


def routing_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith(("litestream-reader", "litestream-router"))]


@pytest.fixture
def slow_server():
    with FakeLLMServer() as fake:
        yield fake


def make_router(server: FakeLLMServer, backup: FakeLLMServer, slow: FakeLLMServer,
                **kwargs: Any) -> Router:
    routes = Router(retry_policy=RetryPolicy(wait=no_wait), cooldown_failures=10**6, **kwargs)
    for name, fake, provider in (("primary", server, "openai"), ("backup", backup, "anthropic"),
                                 ("slow", slow, "openai")):
        routes.register(name, provider=provider, model="m", api_key="test-key-0000",
                        api_base=fake.api_base(provider), max_retries=1,
                        fallbacks=["backup"] if name == "primary" else ())
    return routes


@pytest.fixture
def routes(server, backup_server, slow_server) -> Router:
    return make_router(server, backup_server, slow_server)


# -- attempts reach the listeners ----------------------------------------------------


def test_retry_then_success_is_two_attempts_of_one_deployment(routes, server):
    server.script(error_status=503)
    server.script(text="second time", usage={"prompt_tokens": 7, "completion_tokens": 2})
    recorder = AttemptRecorder()
    stream = routes.completion("primary", messages=MESSAGES, stream=True, listeners=[recorder])
    assert litestream.collect_stream(stream).content == "second time"
    assert stream.join(5)
    assert recorder.attempts() == [("primary", 1, "error"), ("primary", 2, "complete")]
    recorder.assert_one_end_per_call()
    assert len(recorder.requests) == 2
    first, second = sorted(recorder.ends, key=lambda event: event.attempt)
    assert isinstance(first.error, errors.ProviderError) and first.error.status_code == 503
    assert (first.provider, first.model) == (second.provider, second.model) == ("openai", "m")
    assert second.usage == litestream.Usage(7, 2)


def test_a_fallback_attempt_carries_the_fallbacks_name(routes, server, backup_server):
    server.script(error_status=500)
    server.script(error_status=500)
    backup_server.script(text="from the backup")
    recorder = AttemptRecorder()
    stream = routes.completion("primary", messages=MESSAGES, stream=True, listeners=[recorder])
    assert litestream.collect_stream(stream).content == "from the backup"
    assert stream.join(5)
    assert recorder.attempts() == [("primary", 1, "error"), ("primary", 2, "error"),
                                   ("backup", 3, "complete")]
    recorder.assert_one_end_per_call()
    assert sorted(recorder.ends, key=lambda e: e.attempt)[-1].provider == "anthropic"


def test_router_listeners_and_call_listeners_both_hear_each_attempt_once(
    server, backup_server, slow_server
):
    shared, own = AttemptRecorder(), AttemptRecorder()
    routes = make_router(server, backup_server, slow_server, listeners=[shared])
    server.script(error_status=503)
    server.script(text="ok")
    response = routes.completion("primary", messages=MESSAGES, listeners=[own, shared])
    assert response.content == "ok"
    assert shared.attempts() == own.attempts() == [("primary", 1, "error"),
                                                   ("primary", 2, "complete")]
    shared.assert_one_end_per_call()


def test_a_listener_without_hooks_is_refused_at_once(server, backup_server, slow_server):
    with pytest.raises(TypeError, match="on_end"):
        Router(listeners=[object()])
    routes = make_router(server, backup_server, slow_server)
    with pytest.raises(TypeError, match="on_end"):
        routes.completion("primary", messages=MESSAGES, listeners=[object()])
    assert not server.requests


def test_a_race_loser_is_cancelled_and_ends_exactly_once(routes, slow_server, backup_server):
    slow_server.script(text="too late", stall_after=0)
    backup_server.script(text="quick answer", usage={"prompt_tokens": 5, "completion_tokens": 2})
    recorder, raising = AttemptRecorder(), Raising()
    stream = routes.race(["slow", "backup"], messages=MESSAGES, listeners=[raising, recorder])
    assert litestream.collect_stream(stream).content == "quick answer"
    assert stream.join(5), "the router and every attempt's reader end"
    assert not routing_threads()
    assert recorder.attempts() == [("slow", 1, "cancelled"), ("backup", 2, "complete")]
    recorder.assert_one_end_per_call()
    assert raising.calls == 5  # on_request and on_end of each, on_first_chunk of the winner
    assert len(stream.attempt_usages) == 2
    assert stream.attempt_usages[0].estimated  # the loser's: nothing reported
    assert stream.attempt_usages[1] == litestream.Usage(5, 2)


def test_closing_a_routed_stream_before_content_cancels_its_attempt(routes, server):
    server.script(text="never", stall_after=0)
    recorder = AttemptRecorder()
    stream = routes.completion("primary", messages=MESSAGES, stream=True, listeners=[recorder])
    assert server.wait_for_requests(1, 5)
    stream.close()
    assert stream.join(5)
    assert recorder.attempts() == [("primary", 1, "cancelled")]
    recorder.assert_one_end_per_call()


# -- usage of every attempt and the total ------------------------------------------------


def test_a_routed_stream_has_every_attempts_usage_and_their_total(routes, server):
    server.script(error_status=503)
    server.script(text="a b c", usage={"prompt_tokens": 12, "completion_tokens": 3})
    stream = routes.completion("primary", messages=MESSAGES, stream=True)
    response = litestream.collect_stream(stream)
    assert stream.join(5)
    assert response.usage == litestream.Usage(12, 3)  # the winner's, as the chunks said
    failed, answered = stream.attempt_usages
    assert failed.estimated and failed.completion_tokens == 0
    assert failed.prompt_tokens == listeners.estimate_usage({"messages": MESSAGES},
                                                            "").prompt_tokens
    assert answered == response.usage
    total = stream.total_usage
    assert total.prompt_tokens == failed.prompt_tokens + 12
    assert total.completion_tokens == 3
    assert total.total_tokens == failed.total_tokens + 15
    assert total.estimated  # one of its terms is an estimate
    assert [e.attempt for e in stream.attempt_log.events] == [1, 2]


def test_a_non_streaming_routed_call_reports_attempts_through_an_attempt_log(routes, server):
    server.script(error_status=500)
    server.script(text="third", usage={"prompt_tokens": 4, "completion_tokens": 1})
    log = AttemptLog()
    response = routes.completion("primary", messages=MESSAGES, listeners=[log])
    assert response.usage == litestream.Usage(4, 1)
    assert [event.outcome for event in log.events] == ["error", "complete"]
    assert log.usages[1] == response.usage
    assert log.total_usage.completion_tokens == 1
    assert log.total_usage.prompt_tokens == 4 + log.usages[0].prompt_tokens


def test_totals_add_details_and_costs():
    log = AttemptLog()
    assert log.total_usage is None and log.total_cost is None
    base = dict(call_id=1, provider="openai", model="m", request={}, stream=True, started_at=0.0)
    log.on_end(listeners.CallEvent(**{**base, "call_id": 2}, attempt=2, cost=Decimal("0.5"),
                                   usage=litestream.Usage(10, 5, cached_tokens=4)))
    log.on_end(listeners.CallEvent(**base, attempt=1, cost=Decimal("0.25"),
                                   usage=litestream.Usage(3, 0, estimated=True)))
    assert [event.attempt for event in log.events] == [1, 2]
    assert log.total_usage == litestream.Usage(13, 5, cached_tokens=4, estimated=True)
    assert log.total_cost == Decimal("0.75")
    log.on_end(listeners.CallEvent(**{**base, "call_id": 3}, attempt=3,
                                   usage=litestream.Usage(1, 1)))
    assert log.total_cost is None  # one price unknown: no total


# -- the chaos run ------------------------------------------------------------------------


def _run(routes: Router, case: str, server: FakeLLMServer, backup: FakeLLMServer,
         slow: FakeLLMServer, call_listeners: list[Any]) -> list[tuple[str, int, str]]:
    """Make one routed call ending as ``case`` says; return the attempts it must report."""
    if case == "hedge_loser":
        slow.script(text="too late", stall_after=0)
        backup.script(text="a b c")
        stream = routes.race(["slow", "backup"], messages=MESSAGES, listeners=call_listeners)
        assert litestream.collect_stream(stream).content == "a b c"
        assert stream.join(5)
        return [("slow", 1, "cancelled"), ("backup", 2, "complete")]
    scripts = {
        "complete": [{"text": "a b c"}],
        "retry_then_success": [{"error_status": 503}, {"text": "a b c"}],
        "fallback": [{"error_status": 500}, {"error_status": 500}],
        "error_after_content": [{"text": "a b c", "inband_error_after": 1}],
        "close": [{"text": "a b c d", "stall_after": 2}],
        "abandon": [{"text": "a b c d", "stall_after": 2}],
    }[case]
    for script in scripts:
        server.script(**script)
    if case == "fallback":
        backup.script(text="a b c")
    stream = routes.completion("primary", messages=MESSAGES, stream=True,
                               listeners=call_listeners)
    if case in ("close", "abandon"):
        assert next(chunk for chunk in stream if chunk.content)
        if case == "close":
            stream.close()
            assert stream.join(5)
        else:
            job = stream.job
            del stream  # the finalizer cancels the routed call
            gc.collect()
            job.thread.join(5)
            assert all(attempt.join(5) for attempt in job.opened)
        return [("primary", 1, "cancelled")]
    if case == "error_after_content":
        with pytest.raises(errors.LitestreamError):
            litestream.collect_stream(stream)
        assert stream.join(5)
        return [("primary", 1, "error")]
    assert litestream.collect_stream(stream).content == "a b c"
    assert stream.join(5)
    assert len(stream.attempt_usages) == {"complete": 1, "retry_then_success": 2,
                                          "fallback": 3}[case]
    return {
        "complete": [("primary", 1, "complete")],
        "retry_then_success": [("primary", 1, "error"), ("primary", 2, "complete")],
        "fallback": [("primary", 1, "error"), ("primary", 2, "error"),
                     ("backup", 3, "complete")],
    }[case]


CASES = ("complete", "retry_then_success", "fallback", "hedge_loser", "error_after_content",
         "close", "abandon")


@pytest.fixture
def frozen_heap():
    """Leave what existed before the test out of its garbage collections (``gc.freeze``).

    The "abandon" case collects explicitly, 40-odd times a run. Late in the
    suite the heap holds every official SDK the differential tests imported
    (270k objects), and each full collection took 130 ms instead of a few.
    """
    gc.freeze()
    yield
    gc.unfreeze()


def test_chaos_each_attempt_ends_once_with_the_right_outcome(server, backup_server,
                                                             slow_server, frozen_heap):
    rng = random.Random(18)
    everything, raising = AttemptRecorder(), Raising()
    routes = make_router(server, backup_server, slow_server, listeners=[everything, raising])
    wrong = []
    for _ in range(CHAOS_CALLS):
        case = rng.choice(CASES)
        recorder = AttemptRecorder()
        expected = _run(routes, case, server, backup_server, slow_server, [recorder])
        recorder.assert_one_end_per_call()
        if recorder.attempts() != expected:
            wrong.append((case, recorder.attempts()))
    assert not wrong, wrong[:5]
    assert not routing_threads()
    everything.assert_one_end_per_call()
    assert len(everything.ends) >= CHAOS_CALLS
    assert all(end.usage is not None for end in everything.ends)
    assert raising.calls >= 2 * len(everything.ends)
