"""Tests of the router's health book: failures in a window start a cooldown, on a fake clock."""

from __future__ import annotations

from litestream import errors
from litestream._health import HealthBook, counts_against_deployment

KEY = ("fast", "openai", "m")
OTHER = ("fast", "openai", "other")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_nth_failure_within_the_window_starts_a_cooldown_that_ends():
    clock = Clock()
    book = HealthBook(failures=2, window=10, duration=30, clock=clock)
    assert book.failed(KEY) is False
    clock.now += 11  # the first failure left the window
    assert book.failed(KEY) is False
    assert not book.cooling(KEY)
    assert book.failed(KEY) is True
    assert book.cooling(KEY) and not book.cooling(OTHER)
    assert book.cooling_for(KEY) == 30
    clock.now += 30
    assert not book.cooling(KEY)


def test_cool_success_forget_and_clear():
    clock = Clock()
    book = HealthBook(failures=1, window=10, duration=5, clock=clock)
    book.cool(KEY, 2.0)
    book.cool(KEY, 1.0)  # never shortens
    assert book.cooling_for(KEY) == 2.0
    book.succeeded(KEY)
    assert not book.cooling(KEY)
    book.failed(KEY)
    book.failed(OTHER)
    book.forget("fast")
    assert not book.cooling(KEY) and not book.cooling(OTHER)
    book.failed(KEY)
    book.clear()
    assert not book.cooling(KEY)


def test_only_the_deployments_own_failures_count():
    assert counts_against_deployment(errors.RateLimitError("slow"))
    assert counts_against_deployment(errors.AuthenticationError("bad key"))
    assert not counts_against_deployment(errors.InvalidRequestError("bad request"))
