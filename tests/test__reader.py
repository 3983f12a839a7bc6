"""The reader: what it leaves behind when a request fails; when it lets a parked stream go on."""

from __future__ import annotations

import gc
import weakref

from litestream import errors
from litestream._reader import _forget_frames


def _failing_read(holder: list) -> None:
    holder.append(object())  # stands for the response a frame would hold
    raise ConnectionResetError("peer reset")


def test_a_delivered_error_keeps_no_frame_and_no_chained_exception():
    holder: list = []
    try:
        try:
            _failing_read(holder)
        except ConnectionResetError:
            raise errors.StreamConnectionError("cut") from None
    except errors.StreamConnectionError as caught:
        error = caught
    assert error.__traceback__ is not None and error.__context__ is not None
    cause = error.__context__
    _forget_frames(error)
    assert error.__traceback__ is None and error.__context__ is None
    assert cause.__traceback__ is None and cause.__context__ is None


class _Response:
    """Stands for a response a frame of the reader holds (with its socket)."""


def _read_and_fail(refs: list) -> None:
    response = _Response()  # held only by this frame
    refs.append(weakref.ref(response))
    raise ConnectionResetError("peer reset")


def test_a_forgotten_error_frees_what_its_frames_held_without_the_collector():
    refs: list = []
    gc.disable()
    try:
        try:
            _read_and_fail(refs)
        except ConnectionResetError as caught:
            error: BaseException = caught
        assert refs[0]() is not None  # the traceback keeps the frame, the frame the response
        _forget_frames(error)
        assert refs[0]() is None  # freed at once, not at the next collection
    finally:
        gc.enable()


class _FullChannel:
    """A channel that has no room: records what happens around the put."""

    def __init__(self, log: list) -> None:
        self.log = log

    def has_room(self) -> bool:
        return False

    def put_many(self, chunks: list) -> bool:
        self.log.append("put")
        return True


def _reader(state: object) -> object:
    from litestream._reader import Reader
    from litestream.options import CallOptions
    from litestream.providers import get_provider
    from litestream.wire import HTTPRequest

    request = HTTPRequest("POST", "http://127.0.0.1:9/v1/chat/completions", {}, {})
    return Reader(state, request, get_provider("openai"), "m", CallOptions())


def test_a_put_that_may_wait_hands_the_next_parked_stream_over_first(monkeypatch):
    from litestream import _workers

    log: list = []
    monkeypatch.setattr(_workers, "hand_over", lambda: log.append("hand_over"))
    reader = _reader(_FullChannel(log))
    assert reader._put_many([object()])
    assert log == ["hand_over", "put"]


def test_listeners_run_only_after_the_next_parked_stream_is_handed_over(monkeypatch):
    from litestream import _workers

    class _Monitor:
        def chunks(self, chunks: list) -> None:
            log.append("listeners")

    class _RoomyChannel(_FullChannel):
        def has_room(self) -> bool:
            return True

    log: list = []
    monkeypatch.setattr(_workers, "hand_over", lambda: log.append("hand_over"))
    reader = _reader(_RoomyChannel(log))
    assert reader._put_many([object()])
    assert log == ["put"]  # room, no listener: nothing may wait, the next step stays
    log.clear()
    reader.monitor = _Monitor()
    assert reader._put_many([object()])
    assert log == ["hand_over", "listeners", "put"]
