"""Tests for litestream.timer: the one shared timer thread behind every deadline."""

from __future__ import annotations

import logging
import threading

import pytest
from timers import timer_threads

from litestream import timer as timer_module
from litestream.timer import call_later

pytestmark = pytest.mark.usefixtures("timer_thread_ends")


def test_call_later_runs_callbacks_in_deadline_order() -> None:
    order: list[int] = []
    done = threading.Event()
    # The timer thread is held until all three are scheduled, 0.1 s apart so
    # that this thread being descheduled between two calls cannot swap them.
    held, release = threading.Event(), threading.Event()
    call_later(0, lambda: (held.set(), release.wait(5.0)))
    assert held.wait(2.0)
    call_later(0.3, lambda: (order.append(3), done.set()))
    call_later(0.1, lambda: order.append(1))
    call_later(0.2, lambda: order.append(2))
    release.set()
    assert done.wait(2.0)
    assert order == [1, 2, 3]


def test_call_later_cancel_stops_the_callback() -> None:
    cancelled = threading.Event()
    later = threading.Event()
    handle = call_later(0.01, cancelled.set)
    call_later(0.03, later.set)
    handle.cancel()
    assert later.wait(2.0)
    assert not cancelled.is_set()
    handle.cancel()  # harmless twice, and after the others ran


def test_cancelling_the_last_pending_callback_ends_the_timer_thread() -> None:
    handle = call_later(3600, lambda: None)
    (timer_thread,) = timer_threads()
    handle.cancel()
    timer_thread.join(1.0)
    assert not timer_thread.is_alive()


def test_cancelled_callbacks_do_not_pile_up_in_the_timer() -> None:
    # An idle timeout re-armed per chunk cancels a handle per chunk.
    keeper = call_later(3600, lambda: None)
    for _ in range(20_000):
        call_later(3600, lambda: None).cancel()
    assert len(timer_module._timer._heap) < 5_000
    keeper.cancel()


def test_failing_callback_does_not_stop_the_timer(caplog: pytest.LogCaptureFixture) -> None:
    def fail() -> None:
        raise RuntimeError("callback bug")

    ran = threading.Event()
    with caplog.at_level(logging.ERROR, logger="litestream"):
        call_later(0, fail)
        call_later(0.01, ran.set)
        assert ran.wait(2.0)
    assert "timer callback failed" in caplog.text


def test_infinite_delay_does_not_break_the_timer() -> None:
    forever = call_later(float("inf"), lambda: None)
    ran = threading.Event()
    call_later(0.01, ran.set)
    assert ran.wait(2.0)
    forever.cancel()


def test_a_nan_delay_is_refused_instead_of_firing_at_once() -> None:
    fired = threading.Event()
    with pytest.raises(ValueError, match="NaN"):
        call_later(float("nan"), fired.set)
    assert timer_module._timer._live == 0
    assert not fired.is_set()


def test_a_negative_delay_is_due_at_once() -> None:
    fired = threading.Event()
    call_later(-5.0, fired.set)
    assert fired.wait(2.0)


def test_a_timer_started_cold_ends_at_once_when_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timer_module, "_LINGER", 3600.0)
    timer = timer_module._Timer()  # never ran: not a back-to-back restart
    timer.call_later(3600, lambda: None).cancel()
    thread = timer.thread
    if thread is not None:
        thread.join(2.0)
        assert not thread.is_alive()
    assert timer.thread is None


def test_a_timer_needed_again_right_after_it_ended_waits_for_the_next_callback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timer_module, "_LINGER", 3600.0)
    timer = timer_module._Timer()
    timer._ended = timer_module.time.monotonic()  # as if its last thread had just ended
    timer.call_later(3600, lambda: None).cancel()
    lingering = timer.thread
    assert lingering is not None
    ran = threading.Event()
    timer.call_later(0, ran.set)
    assert ran.wait(2.0)
    assert timer.thread is lingering  # the same thread served it: no new start
    # It lingers once per idle spell: a wake-up while it lingers ends it (a
    # wake-up that comes while it still runs the callback is lost: repeat).
    deadline = timer_module.time.monotonic() + 5.0
    while lingering.is_alive() and timer_module.time.monotonic() < deadline:
        with timer._condition:
            timer._condition.notify()
        lingering.join(0.01)
    assert not lingering.is_alive()
    assert timer.thread is None


def test_a_fired_callback_is_not_kept_alive_by_the_waiting_timer_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import gc
    import weakref

    class Owner:
        def __init__(self) -> None:
            self.fired = threading.Event()

        def fire(self) -> None:
            self.fired.set()

    owner = Owner()
    fired = owner.fired
    waiting_after_it = threading.Event()
    condition = timer_module._timer._condition
    wait = condition.wait

    def noting_wait(timeout: float | None = None) -> bool:
        if fired.is_set():
            waiting_after_it.set()  # the thread is back waiting, the callback done
        return wait(timeout)

    monkeypatch.setattr(condition, "wait", noting_wait)
    later = call_later(3600, lambda: None)  # keeps the thread waiting after the callback
    try:
        call_later(0, owner.fire)
        assert fired.wait(10) and waiting_after_it.wait(10)
        owner_ref = weakref.ref(owner)
        del owner
        gc.collect()
        # The thread waits for the next deadline: it must not hold the fired
        # callback (a stream's deadlines, whose error holds the stream).
        assert owner_ref() is None
    finally:
        later.cancel()
