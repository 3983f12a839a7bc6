"""Tests of the in-process limits state: GCRA for rpm and tpm, slots, on a fake clock."""

from __future__ import annotations

import pytest

from litestream import errors
from litestream._limits import (
    DEFAULT_COMPLETION_RESERVE,
    Limits,
    LocalState,
    estimate_call_tokens,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admitted_within(state: LocalState, clock: Clock, limits: Limits, seconds: float,
                    step: float = 0.01, tokens: int = 0) -> int:
    """Ask as fast as possible for ``seconds`` of fake time; count admissions."""
    count = 0
    end = clock.now + seconds
    while clock.now < end:
        admission = state.admit("d", limits, tokens)
        if admission.lease is not None:
            admission.lease.settle()
            count += 1
        else:
            assert admission.retry_after > 0
            clock.now += step
    return count


def test_rpm_admits_the_burst_then_refills_continuously():
    clock = Clock()
    state = LocalState(clock)
    limits = Limits(rpm=120, burst=5)
    leases = [state.admit("d", limits, 0) for _ in range(5)]
    assert all(a.lease is not None for a in leases)
    denied = state.admit("d", limits, 0)
    assert denied.lease is None and denied.limit == "rpm"
    assert denied.retry_after == pytest.approx(0.5)  # one request every 60/120 s
    clock.now += 0.5
    assert state.admit("d", limits, 0).lease is not None
    assert state.admit("other", limits, 0).lease is not None  # per deployment


@pytest.mark.parametrize("rpm,burst,seconds", [(600, None, 10), (60, 3, 30), (6000, 50, 3)])
def test_rpm_never_exceeds_burst_plus_rate_in_any_run(rpm, burst, seconds):
    clock = Clock()
    state = LocalState(clock)
    limits = Limits(rpm=rpm, burst=burst)
    count = admitted_within(state, clock, limits, seconds)
    ceiling = limits.request_burst + rpm * seconds / 60
    assert 0.95 * ceiling <= count <= ceiling


def test_default_burst_is_one_seconds_worth_and_at_least_one():
    assert Limits(rpm=600).request_burst == 10
    assert Limits(rpm=6).request_burst == 1
    assert Limits(rpm=6, burst=4).request_burst == 4


def test_tpm_reserves_and_settles_with_the_reported_usage():
    clock = Clock()
    state = LocalState(clock)
    limits = Limits(tpm=6000)  # 100 tokens a second
    first = state.admit("d", limits, 100).lease
    assert first is not None
    assert state.admit("d", limits, 100).lease is None  # the second's worth is reserved
    first.settle(10)  # used far less: 90 tokens refunded
    second = state.admit("d", limits, 80)
    assert second.lease is not None
    second.lease.settle(500)  # used more: charged
    denied = state.admit("d", limits, 10)
    assert denied.lease is None and denied.limit == "tpm"
    # 10 + 500 tokens charged (5.1 s of refill) + 0.1 s for this call - a 1 s bucket
    assert denied.retry_after == pytest.approx(5.1 + 0.1 - 1.0, abs=0.01)


def test_a_call_larger_than_a_seconds_worth_is_admitted_on_a_full_bucket():
    clock = Clock()
    state = LocalState(clock)
    big = state.admit("d", Limits(tpm=600), 5000)
    assert big.lease is not None


def test_max_concurrent_counts_slots_and_nothing_is_reserved_when_denied():
    clock = Clock()
    state = LocalState(clock)
    limits = Limits(rpm=60, burst=3, max_concurrent=2)
    a, b = state.admit("d", limits, 0).lease, state.admit("d", limits, 0).lease
    full = state.admit("d", limits, 0)
    assert full.lease is None and full.limit == "max_concurrent"
    assert state.in_flight("d") == 2
    a.settle()
    a.settle()  # settling twice frees one slot only
    assert state.in_flight("d") == 1
    assert state.admit("d", limits, 0).lease is not None  # the third of the burst: unspent
    b.settle()


def test_limits_are_checked():
    for bad in [dict(rpm=0), dict(tpm=-1), dict(max_concurrent=1.5), dict(burst=float("nan")),
                dict(rpm="60"), dict(max_concurrent=True)]:
        with pytest.raises(errors.ConfigurationError):
            Limits(**bad)
    assert not Limits().any and Limits(tpm=1).any


def test_the_estimate_is_the_prompt_plus_the_completion_budget():
    messages = [{"role": "user", "content": "word " * 40}]
    prompt = estimate_call_tokens({"messages": messages, "max_tokens": 1}) - 1
    assert prompt > 0
    assert estimate_call_tokens({"messages": messages, "max_tokens": 50}) == prompt + 50
    assert estimate_call_tokens({"messages": messages}) == prompt + DEFAULT_COMPLETION_RESERVE
