"""The reader thread: what it leaves behind when a request fails."""

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
