"""Tests for litestream._workers: reader threads kept a moment for the next stream."""

from __future__ import annotations

import threading

import pytest

from litestream import _workers


@pytest.fixture
def fake_clock(monkeypatch):
    """A clock that stands still unless a test moves it, and a lingering time no test outlasts."""
    now = [1000.0]
    monkeypatch.setattr(_workers, "clock", lambda: now[0])
    monkeypatch.setattr(_workers, "_last_start", float("-inf"))
    monkeypatch.setattr(_workers, "LINGER", 30.0)
    monkeypatch.setattr(_workers, "MAX_LINGER", 60.0)
    yield now
    _workers.end_idle()


def _unused(error: BaseException) -> None:
    raise AssertionError(f"a thread could not be started: {error!r}")


def _run(name: str) -> tuple[threading.Event, list[threading.Thread]]:
    ran_on: list[threading.Thread] = []
    finished = _workers.start(lambda: ran_on.append(threading.current_thread()), name)
    assert finished.wait(10)
    return finished, ran_on


def test_a_stream_started_alone_gets_a_thread_that_ends_with_it(fake_clock):
    _, ran_on = _run("litestream-reader-test")
    ran_on[0].join(10)
    assert not ran_on[0].is_alive()
    assert _workers._idle == []


def test_streams_started_back_to_back_share_a_waiting_thread(fake_clock):
    _run("litestream-reader-first")  # cold: its thread ends with it
    _, second = _run("litestream-reader-second")  # started at once after: its thread waits
    assert _workers._idle == [second[0]]  # waiting already when its stream was done
    assert second[0].name == _workers.IDLE_NAME
    _, third = _run("litestream-reader-third")
    assert third[0] is second[0]


def test_a_thread_is_named_after_its_stream_while_it_reads_it(fake_clock):
    names: list[str] = []
    _run("litestream-reader-a")
    finished = _workers.start(lambda: names.append(threading.current_thread().name),
                              "litestream-reader-b")
    assert finished.wait(10)
    assert names == ["litestream-reader-b"]


def test_streams_started_far_apart_get_threads_that_do_not_wait(fake_clock):
    _run("litestream-reader-first")
    fake_clock[0] += 1.0  # much longer apart than LINGER (30 s is only how long one waits)
    _workers.LINGER = 0.5
    _, ran_on = _run("litestream-reader-second")
    ran_on[0].join(10)
    assert not ran_on[0].is_alive()


def test_a_stream_that_ends_long_after_the_latest_start_gets_a_thread_that_does_not_wait(
        fake_clock):
    _run("litestream-reader-first")
    release = threading.Event()
    ran_on: list[threading.Thread] = []

    def read() -> None:
        ran_on.append(threading.current_thread())
        assert release.wait(10)

    finished = _workers.start(read, "litestream-reader-second")  # back to back: may wait
    fake_clock[0] += 60.0  # ...but it ends long after any stream started
    release.set()
    assert finished.wait(10)
    ran_on[0].join(10)
    assert not ran_on[0].is_alive() and _workers._idle == []


def test_end_idle_ends_every_waiting_thread(fake_clock):
    _run("litestream-reader-first")
    _, ran_on = _run("litestream-reader-second")
    assert _workers._idle == [ran_on[0]]
    _workers.end_idle()
    ran_on[0].join(10)
    assert not ran_on[0].is_alive()


def test_a_thread_whose_stream_raised_is_never_handed_another(fake_clock):
    _run("litestream-reader-first")

    def fail() -> None:
        raise RuntimeError("a reader bug")

    hooked: list[BaseException] = []
    previous, threading.excepthook = threading.excepthook, lambda args: hooked.append(
        args.exc_value)
    try:
        assert _workers.start(fail, "litestream-reader-second").wait(10)
        assert _workers._idle == []
        _, ran_on = _run("litestream-reader-third")
        assert ran_on  # a new thread ran it
    finally:
        threading.excepthook = previous


def test_a_waiting_thread_holds_nothing_of_the_stream_it_read(fake_clock):
    import gc
    import weakref

    class Job:
        def run(self) -> None:
            pass

    _run("litestream-reader-first")
    job = Job()
    finished = _workers.start(job.run, "litestream-reader-second")  # its thread will wait
    assert finished.wait(10)
    assert len(_workers._idle) == 1  # waiting for the next stream
    job_ref = weakref.ref(job)
    del job
    gc.collect()
    assert job_ref() is None


def test_a_parked_target_is_not_finished_until_a_resume_finishes_it(fake_clock):
    steps = iter([_workers.PARKED, None])
    ran_on: list[threading.Thread] = []
    stepped = threading.Semaphore(0)

    def step() -> object:
        ran_on.append(threading.current_thread())
        result = next(steps)
        stepped.release()
        return result

    finished = _workers.start(step, "litestream-reader-parked")  # alone: its thread ends
    assert stepped.acquire(timeout=10)
    ran_on[0].join(10)
    assert not ran_on[0].is_alive()
    assert not finished.is_set()  # parked: the stream goes on later

    _workers.resume(step, "litestream-reader-parked", finished, lambda: False, _unused)
    assert finished.wait(10)
    assert len(ran_on) == 2
    # A thread that ran a resumed step waits for the next one, whatever the clock says.
    assert _workers._idle == [ran_on[1]] and ran_on[1].name == _workers.IDLE_NAME


def test_a_thread_that_ran_a_resumed_step_waits_while_busy_then_ends(fake_clock):
    _workers.LINGER = 0.001  # each wait is short; the busy test decides how many
    asked = threading.Semaphore(0)
    answers = iter([True, True, False])

    def busy() -> bool:
        asked.release()
        return next(answers)

    finished = threading.Event()
    ran_on: list[threading.Thread] = []
    _workers.resume(lambda: ran_on.append(threading.current_thread()),
                    "litestream-reader-parked", finished, busy, _unused)
    assert finished.wait(10)
    for _ in range(3):  # it waited again while busy, and ended once it was not
        assert asked.acquire(timeout=10)
    ran_on[0].join(10)
    assert not ran_on[0].is_alive() and _workers._idle == []


def test_a_thread_that_ran_a_resumed_step_waits_no_longer_than_max_linger(fake_clock):
    _workers.LINGER = 0.001
    _workers.MAX_LINGER = 0.005
    finished = threading.Event()
    ran_on: list[threading.Thread] = []
    _workers.resume(lambda: ran_on.append(threading.current_thread()),
                    "litestream-reader-parked", finished, lambda: True, _unused)  # busy for ever
    assert finished.wait(10)
    ran_on[0].join(10)
    assert not ran_on[0].is_alive() and _workers._idle == []


def _resumed(target, finished=None, failed=_unused) -> threading.Event:
    finished = finished or threading.Event()
    _workers.resume(target, "litestream-reader-parked", finished, lambda: False, failed)
    return finished


def test_a_step_resumed_from_a_resumed_step_runs_after_it_in_the_same_thread(fake_clock):
    ran_on: dict[str, threading.Thread] = {}
    order: list[str] = []

    def second() -> None:
        ran_on["second"] = threading.current_thread()
        order.append("second")

    def first() -> None:
        ran_on["first"] = threading.current_thread()
        second_finished.append(_resumed(second))  # as the poller does when the turn passes
        order.append("first")

    second_finished: list[threading.Event] = []
    assert _resumed(first).wait(10)
    assert second_finished[0].wait(10)
    assert order == ["first", "second"]
    assert ran_on["second"] is ran_on["first"]  # no other thread was woken for it


def test_a_step_about_to_wait_hands_the_next_one_to_another_thread(fake_clock):
    release = threading.Event()
    made = threading.Event()
    ran_on: dict[str, threading.Thread] = {}
    second_finished: list[threading.Event] = []

    def second() -> None:
        ran_on["second"] = threading.current_thread()

    def first() -> None:
        ran_on["first"] = threading.current_thread()
        second_finished.append(_resumed(second))
        made.set()
        _workers.hand_over()  # as a step does before a read or a put that may wait
        release.wait(10)

    first_finished = _resumed(first)
    try:
        assert made.wait(10)
        # The first step still waits: the second ran all the same, in another thread.
        assert second_finished[0].wait(10), "the next step waited for this one"
        assert ran_on["second"] is not ran_on["first"]
    finally:
        release.set()
    assert first_finished.wait(10)


def test_a_step_that_raises_still_lets_the_next_one_run(fake_clock):
    hooked: list[BaseException] = []
    previous, threading.excepthook = threading.excepthook, lambda args: hooked.append(
        args.exc_value)
    second_finished: list[threading.Event] = []

    def first() -> None:
        second_finished.append(_resumed(lambda: None))
        raise RuntimeError("a reader bug")

    try:
        assert _resumed(first).wait(10)
        assert second_finished[0].wait(10)
    finally:
        threading.excepthook = previous


def test_a_step_no_thread_can_be_started_for_gets_the_error(fake_clock, monkeypatch):
    def no_thread(job) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(_workers, "_run", no_thread)
    failures: list[BaseException] = []
    finished = threading.Event()
    _workers.resume(lambda: None, "litestream-reader-parked", finished, lambda: False,
                    failures.append)
    assert [str(error) for error in failures] == ["can't start new thread"]
    assert not finished.is_set()  # the failure handler owns the stream's end
