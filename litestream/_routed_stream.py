"""The handle a routed streaming call returns, and the job its router thread works for.

:class:`RoutedStream` is what :meth:`~litestream.router.Router.completion`
and :meth:`~litestream.router.Router.race` return for a stream; the router
thread fills it through a :class:`RouteJob`, which holds the channel's
private sender and never the user's handle, so an abandoned handle is
garbage-collected and its finalizer cancels the job.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any, Callable, Iterator, Optional

from litestream import errors
from litestream.channels import ReceiveChannel, _Sender
from litestream.options import DEFAULT_BUFFER
from litestream.transport import Stream
from litestream.types import Chunk

__all__ = ["Cancelled", "RouteJob", "RoutedStream", "batches"]


class Cancelled(Exception):
    """The routed stream was closed while the router thread still worked for it."""


def batches(stream: Stream) -> Iterator[list[Chunk]]:
    """Yield what ``stream`` holds, one batch per wake-up, until it ends.

    A stream error is raised after the batch holding the chunks that came before it.
    """
    while True:
        first = stream.get()
        if first is None:
            return
        batch = [first]
        pending: Optional[errors.LitestreamError] = None
        try:
            while True:
                value = stream.get_nowait()
                if value is None:
                    break
                batch.append(value)
        except errors.LitestreamError as error:  # before TimeoutError: StreamTimeout is one
            pending = error
        except TimeoutError:
            pass  # nothing more right now
        yield batch
        if pending is not None:
            raise pending


class RouteJob:
    """The state the router thread shares with a :class:`RoutedStream`.

    Args:
        sender: the writing end of the routed stream's channel.
    """

    def __init__(self, sender: _Sender[Chunk]) -> None:
        self.sender = sender
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.current: Optional[Stream] = None
        self.provider: Optional[str] = None
        self.model: Optional[str] = None
        self.failures: list[str] = []
        self.thread: Optional[threading.Thread] = None
        #: Called once when the job is done with its committed attempt (a
        #: limits lease to release, say); set before :meth:`pump` runs.
        self.on_done: Optional[Callable[[], None]] = None
        #: Called after each batch the committed attempt delivered (lease renewal).
        self.on_batch: Optional[Callable[[], None]] = None
        #: The total tokens the committed attempt's provider reported, if it did.
        self.usage_tokens: Optional[int] = None

    def cancel(self) -> None:
        """Close the routed channel and the attempt in flight; wake the thread from any wait."""
        self.cancelled.set()
        self.sender.close(discard=True)
        with self.lock:
            current = self.current
        if current is not None:
            current.close()

    def adopt(self, stream: Stream) -> None:
        """Make ``stream`` the attempt in flight, or close it when the job was cancelled.

        Raises:
            Cancelled: the job was cancelled meanwhile (``stream`` is closed).
        """
        with self.lock:
            if not self.cancelled.is_set():
                self.current = stream
                return
        stream.close()
        raise Cancelled()

    def release(self, stream: Stream) -> None:
        """Close an attempt stream that the job is done with."""
        with self.lock:
            if self.current is stream:
                self.current = None
        stream.close()

    def start(self, target: Callable[..., None], *args: Any) -> None:
        """Run ``target(*args)`` on the job's router thread."""
        self.thread = threading.Thread(
            target=target, args=args, name="litestream-router", daemon=True
        )
        self.thread.start()

    def commit(self, provider: str, model: str) -> None:
        """Record which attempt the job settled on."""
        self.provider, self.model = provider, model

    def fail(self, error: errors.LitestreamError) -> None:
        """End the routed stream with ``error``."""
        self.sender.close(error)

    def pump(self, stream: Stream, held: list[Chunk]) -> None:
        """Forward the committed attempt's chunks in order; its error keeps ``partial_content``."""
        texts: list[str] = []
        try:
            for batch in itertools.chain([held], batches(stream)):
                for chunk in batch:
                    if chunk.content:
                        texts.append(chunk.content)
                    if chunk.usage is not None:
                        self.usage_tokens = chunk.usage.total_tokens
                if not self.sender.put_many(batch):
                    return  # the handle was closed
                if self.on_batch is not None:
                    self.on_batch()
            self.sender.close()
        except errors.LitestreamError as error:
            error.partial_content = "".join(texts)
            error.attempts = (*self.failures, errors.error_summary(error))
            error.channel = None
            self.sender.close(error)
        finally:
            self.release(stream)
            if self.on_done is not None:
                self.on_done()


class RoutedStream(ReceiveChannel[Chunk]):
    """A stream of chunks from whichever deployment the router settled on.

    It reads like a :class:`~litestream.Stream`: iterate it, ``get`` from it,
    put it in :func:`~litestream.alts`. While no content chunk has come, a
    failed attempt is retried or a fallback tried behind the scenes; once
    content came, a failure is raised from ``get`` (after every earlier
    chunk) with ``partial_content`` set, and nothing is retried.

    ``close()`` stops everything at once: the attempt in flight, any backoff
    wait, the router thread. An unreferenced handle is closed when it is
    garbage-collected.

    Attributes:
        name: the name the call was routed by.
    """

    __slots__ = ("name", "_job", "_finalizer")

    def __init__(self, name: str, buffer: int = DEFAULT_BUFFER) -> None:
        super().__init__(buffer)
        self.name = name
        self._job = RouteJob(_Sender(self._state))
        self._finalizer = weakref.finalize(self, self._job.cancel)

    @property
    def job(self) -> RouteJob:
        """The job the router thread works for (for the router, not for callers)."""
        return self._job

    @property
    def provider(self) -> Optional[str]:
        """The provider of the attempt being streamed (None until one produced content)."""
        return self._job.provider

    @property
    def model(self) -> Optional[str]:
        """The model of the attempt being streamed (None until one produced content)."""
        return self._job.model

    @property
    def attempts(self) -> tuple[str, ...]:
        """One :func:`~litestream.errors.error_summary` line per failed attempt so far."""
        return tuple(self._job.failures)

    def close(self) -> None:
        """Cancel the routed call and close the stream; idempotent, callable from any thread."""
        self._job.cancel()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait until the router thread has ended; True if it has."""
        thread = self._job.thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def __repr__(self) -> str:
        status = "closed" if self._state.closed else "open"
        where = f"{self.provider}/{self.model}" if self.provider else "not committed"
        return f"<RoutedStream {self.name!r} {where} {status} buffered={self.qsize()}>"
