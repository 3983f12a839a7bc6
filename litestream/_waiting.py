"""Waiting on a stream while staying responsive: the pieces the streaming helpers share."""

from __future__ import annotations

from typing import Any, Optional

from litestream.channels import ReceiveChannel
from litestream.errors import LitestreamError

__all__ = ["IDLE", "drop_traceback", "get_or_idle"]

#: What :func:`get_or_idle` returns when its wait ran out.
IDLE: Any = object()


def get_or_idle(channel: ReceiveChannel[Any], timeout: Optional[float]) -> Any:
    """``channel.get(timeout)``, returning ``IDLE`` when the wait runs out.

    A stream's own deadline errors (``IdleTimeout``...) are also builtin
    ``TimeoutError``s; they are raised, not mistaken for a wait that ran out.
    """
    try:
        return channel.get(timeout)
    except TimeoutError as error:
        if isinstance(error, LitestreamError):
            raise
        return IDLE


def drop_traceback(error: BaseException) -> BaseException:
    """Forget ``error``'s traceback once it has been handled; return it.

    A stream error's traceback holds the reader thread's frames (and with
    them its HTTP response) and the frame that raised it from the channel,
    which refers back to the error: a reference cycle that keeps the
    upstream socket open until the garbage collector runs. An error that is
    reported rather than re-raised needs no traceback.
    """
    error.__traceback__ = None
    return error
