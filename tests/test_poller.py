"""The poller (litestream._poller): streams read through it give what they give read directly.

With the threshold forced to 0 every reader waits for its bytes through the
poller thread. Each test checks behaviour only: the same chunks and errors,
close() and deadlines still waking a reader that waits there, and (conftest)
no reader or poller thread and no socket outliving the test.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Optional
from unittest import mock

import pytest
from reliability._raw_server import RawServer, read_request

import litestream as ls
from litestream import _poller, _workers, errors
from litestream.testing import FakeLLMServer

MESSAGES = [{"role": "user", "content": "Hi"}]
FIXTURES = Path(__file__).parent / "fixtures" / "streams"
TRANSCRIPTS = sorted(FIXTURES.glob("*/*.txt"))


class _Successes:
    """Wraps a method that returns whether it did its job; counts the times it did."""

    def __init__(self, original: Any) -> None:
        self.count = 0
        self.condition = threading.Condition()

        def counting(*args: Any) -> bool:
            succeeded = original(*args)
            if succeeded:
                with self.condition:
                    self.count += 1
                    self.condition.notify_all()
            return succeeded

        #: The stand-in for ``original`` that counts.
        self.method = counting

    def wait_for(self, count: int = 1) -> bool:
        """Wait up to 10 s until it did its job ``count`` times; tell whether it did."""
        with self.condition:
            return self.condition.wait_for(lambda: self.count >= count, timeout=10)


@pytest.fixture
def polled(monkeypatch: pytest.MonkeyPatch) -> _Successes:
    """Every stream of the test reads through the poller, one turn at a time."""
    arms = _Successes(_poller._Poller.arm)  # readers that started waiting in the poller
    monkeypatch.setattr(_poller, "POLL_THRESHOLD", 0)
    monkeypatch.setattr(_poller, "TURNS", 1)
    monkeypatch.setattr(_poller._Poller, "arm", arms.method)
    return arms


def open_stream(server: FakeLLMServer, provider: str = "openai", **config: Any) -> Any:
    return ls.completion(provider, "test-model", messages=MESSAGES, stream=True,
                         api_key="poller-test-key", api_base=server.api_base(provider),
                         **config)


def _streamed(provider: str, body: bytes, piece_size: Optional[int]) -> dict[str, Any]:
    """Stream ``body`` over loopback; return the chunks' dicts and the error, if any."""
    chunks: list[Any] = []
    error = None
    with FakeLLMServer() as server, \
            mock.patch("time.time", return_value=1_700_000_000.0), \
            mock.patch("uuid.uuid4", return_value=uuid.UUID(int=16)):
        server.replay(body, piece_size=piece_size)
        try:
            with open_stream(server, provider, timeout=30) as stream:
                for chunk in stream:
                    chunks.append(chunk.to_dict())
        except errors.LitestreamError as caught:
            error = f"{type(caught).__name__}: {caught}"
    return {"chunks": chunks, "error": error}


@pytest.mark.parametrize("piece_size", [None, 7])
@pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_transcripts_give_the_same_chunks_polled_as_read_directly(
        path: Path, piece_size: Optional[int], monkeypatch: pytest.MonkeyPatch) -> None:
    provider = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))["provider"]
    body = path.read_bytes()
    direct = _streamed(provider, body, piece_size)
    arms = _Successes(_poller._Poller.arm)
    with monkeypatch.context() as patch:
        patch.setattr(_poller, "POLL_THRESHOLD", 0)
        patch.setattr(_poller, "TURNS", 1)
        patch.setattr(_poller._Poller, "arm", arms.method)
        polled = _streamed(provider, body, piece_size)
    assert polled == direct
    assert direct["chunks"] or direct["error"]


def test_a_stream_in_pieces_waits_in_the_poller(polled: _Successes) -> None:
    with FakeLLMServer() as server:
        words = [f" w{index}" for index in range(40)]
        server.script(chunks=words, delay=0.002)
        with open_stream(server) as stream:
            text = "".join(ls.extract_content(chunk) or "" for chunk in stream)
    assert text == "".join(words)
    assert polled.count > 0


@pytest.mark.parametrize("how", ["close", "cancel_through_merge"])
def test_close_wakes_a_reader_waiting_in_the_poller(polled: _Successes, how: str) -> None:
    with FakeLLMServer() as server:
        server.script(text="a b c d", chunks=4, stall_after=1)
        stream = open_stream(server)
        assert ls.extract_content(stream.get(timeout=10)) or stream.get(timeout=10)
        assert polled.wait_for(1), "the reader never waited in the poller"
        if how == "close":
            stream.close()
        else:
            merged = ls.merge([stream], close_sources=True)
            merged.close()
        assert stream.join(10)
        assert server.wait_for_disconnect(5.0)


@pytest.mark.parametrize("deadline", ["idle_timeout", "first_chunk_timeout"])
def test_a_deadline_wakes_a_reader_waiting_in_the_poller(polled: _Successes, deadline: str) -> None:
    with FakeLLMServer() as server:
        # The headers and one piece (or only the preamble) come, then nothing.
        stall_after = 1 if deadline == "idle_timeout" else 0
        server.script(text="a b c", chunks=3, stall_after=stall_after, keepalive_interval=0.05)
        stream = open_stream(server, **{deadline: 0.3})
        expected = errors.IdleTimeout if deadline == "idle_timeout" else errors.FirstChunkTimeout
        with pytest.raises(expected):
            for _chunk in stream:
                pass
        assert polled.count > 0  # the keepalives were waited for through the poller
        assert stream.join(10)
        assert server.wait_for_disconnect(5.0)


def test_a_thousand_streams_through_merge_leave_no_thread_or_socket(polled: _Successes) -> None:
    count = 1000
    with FakeLLMServer() as server:
        for index in range(count):
            server.script(chunks=[f"s{index}", " end"])
        streams = [open_stream(server, max_retries=3) for _ in range(count)]
        received: dict[int, str] = {id(stream): "" for stream in streams}
        with ls.merge(streams, close_sources=True) as merged:
            for stream, chunk in merged:
                received[id(stream)] += ls.extract_content(chunk) or ""
        assert all(stream.join(10) for stream in streams)
    assert sorted(received.values()) == sorted(f"s{index} end" for index in range(count))
    assert polled.count > 0
    # conftest checks that no reader or poller thread and no socket outlives the test.


def test_the_poller_thread_ends_when_nobody_waits(polled: _Successes) -> None:
    with FakeLLMServer() as server:
        server.script(chunks=["a", "b", "c"], delay=0.01)
        with open_stream(server) as stream:
            assert [ls.extract_content(c) for c in stream if ls.extract_content(c)] == \
                ["a", "b", "c"]
        assert stream.join(10)
    poller = _poller._poller
    thread = poller.thread
    if thread is not None:
        thread.join(5)
        assert not thread.is_alive()
    assert poller.epoll is None and not poller.tickets and poller.open == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
# Python 3.12+ warns of any fork in a threaded process; forking one is this test's point.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_gets_a_poller_of_its_own(polled: _Successes) -> None:
    """The parent's epoll set and lock (held at fork time) are not the child's."""
    with FakeLLMServer() as server:
        server.script(text="a b c", chunks=3, stall_after=1)
        with open_stream(server) as stream:
            assert stream.get(timeout=10) is not None
            assert polled.wait_for(1)
            parent = _poller._poller
            with parent.lock:
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the child
                    child = _poller._poller
                    fresh = child is not parent and child.epoll is None and child.open == 0
                    os._exit(0 if fresh and child.lock.acquire(timeout=5) else 1)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            assert _poller._poller is parent
        assert stream.join(10)


def test_the_poller_is_crowded_only_while_more_readers_than_the_threshold_are_open(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_poller, "POLL_THRESHOLD", 2)
    reads, writes = zip(*(os.pipe() for _ in range(3)), strict=True)
    tickets = []
    try:
        for fd in reads:
            assert not _poller.crowded()
            tickets.append(_poller.ticket(fd))
        assert _poller.crowded()
        tickets.pop().close()
        assert not _poller.crowded()
    finally:
        for ticket in tickets:
            ticket.close()
        for fd in (*reads, *writes):
            os.close(fd)


def _event(delta: dict[str, Any], finish_reason: Optional[str] = None) -> bytes:
    chunk = {"id": "chatcmpl-park", "object": "chat.completion.chunk", "created": 1,
             "model": "test-model",
             "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@pytest.fixture
def parks(polled: _Successes, monkeypatch: pytest.MonkeyPatch) -> _Successes:
    """Every stream of the test reads through the poller; streams that parked are counted."""
    counter = _Successes(_poller.Ticket.park)
    monkeypatch.setattr(_poller.Ticket, "park", counter.method)
    return counter


def _two_part_server(go: threading.Event,
                     rest_of: Optional[Callable[[bytes], list[str]]] = None) -> RawServer:
    """Answers with one content event "first", then (once ``go`` is set) the rest and the end.

    The rest is " second", or the pieces ``rest_of(request)`` gives.
    """

    def handler(connection: Any, stop: threading.Event) -> None:
        request = read_request(connection)
        if not request:
            return
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                           b"Connection: close\r\n\r\n" + _event({"content": "first"}))
        while not go.wait(0.05):
            if stop.is_set():
                return
        pieces = rest_of(request) if rest_of is not None else [" second"]
        connection.sendall(b"".join(_event({"content": piece}) for piece in pieces)
                           + _event({}, "stop") + b"data: [DONE]\n\n")
        connection.shutdown(socket.SHUT_WR)
        while connection.recv(65536):
            pass

    return RawServer(handler)


def _open_raw(server: RawServer) -> Any:
    return ls.completion("openai", "test-model", messages=MESSAGES, stream=True,
                         api_key="poller-test-key", api_base=server.url + "/v1", max_retries=0)


def _reader_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate()
            if thread.name.startswith("litestream-reader") or thread.name == _workers.IDLE_NAME]


def test_streams_waiting_for_bytes_hold_no_thread_and_go_on_once_bytes_come(
        parks: _Successes) -> None:
    count = 20
    go = threading.Event()
    with _two_part_server(go) as server:
        streams = [_open_raw(server) for _ in range(count)]
        try:
            assert [ls.extract_content(stream.get(timeout=10)) for stream in streams] == \
                ["first"] * count
            assert parks.wait_for(count), f"only {parks.count} of {count} streams parked"
            # Every stream waits without a thread: the threads that read them all end.
            _workers.end_idle()
            for thread in _reader_threads():
                thread.join(10)
            assert not _reader_threads()
            go.set()
            rests = ["".join(ls.extract_content(chunk) or "" for chunk in stream)
                     for stream in streams]
            assert rests == [" second"] * count
            assert all(stream.join(10) for stream in streams)
        finally:
            go.set()
            for stream in streams:
                stream.close()


def test_a_parked_stream_that_gets_no_thread_ends_with_the_error_after_its_chunks(
        parks: _Successes, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread(job: Any) -> None:
        raise RuntimeError("can't start new thread")

    go = threading.Event()
    with _two_part_server(go) as server:
        with _open_raw(server) as stream:
            assert ls.extract_content(stream.get(timeout=10)) == "first"
            assert parks.wait_for(1)
            _workers.end_idle()
            monkeypatch.setattr(_workers, "_run", no_thread)  # no thread to be had any more
            go.set()
            with pytest.raises(errors.LitestreamError, match="can't start new thread"):
                stream.get(timeout=10)
            assert stream.join(10)


def test_a_parked_stream_dropped_unread_is_cancelled_and_freed(parks: _Successes) -> None:
    import gc

    go = threading.Event()
    with _two_part_server(go) as server:
        stream = _open_raw(server)
        assert ls.extract_content(stream.get(timeout=10)) == "first"
        assert parks.wait_for(1)
        reader = stream._reader
        del stream
        gc.collect()  # the finalizer cancels it: the parked stream wakes and ends
        assert reader.finished.wait(10)
        assert reader.cancelled and reader.response is None
        go.set()


def test_a_resumed_stream_waiting_on_its_full_buffer_lets_the_others_go_on(
        parks: _Successes) -> None:
    go = threading.Event()
    # Several reads' worth (a read takes at most 64 KiB): the buffer fills before the last.
    many = "".join(f" w{index}{'x' * 4000}" for index in range(50))

    def rest_of(request: bytes) -> list[str]:
        return [f" {word}" for word in many.split(" ")[1:]] if b"unread" in request \
            else [" second"]

    def open_one(server: RawServer, content: str) -> Any:
        return ls.completion("openai", "test-model", stream=True, buffer=2, max_retries=0,
                             messages=[{"role": "user", "content": content}],
                             api_key="poller-test-key", api_base=server.url + "/v1")

    with _two_part_server(go, rest_of) as server:
        with open_one(server, "unread") as unread, open_one(server, "read") as read:
            assert ls.extract_content(unread.get(timeout=10)) == "first"
            assert ls.extract_content(read.get(timeout=10)) == "first"
            assert parks.wait_for(2)
            go.set()
            # One turn only (the fixture): the unread stream's reader waits on its
            # full buffer without it, so the other stream is read all the same.
            rest = []
            while (chunk := read.get(timeout=10)) is not None:  # TimeoutError if it starved
                rest.append(ls.extract_content(chunk) or "")
            assert "".join(rest) == " second"
            assert read.join(10)
            assert not unread.join(0)  # still waiting for room in its buffer
            text = "first" + "".join(ls.extract_content(chunk) or "" for chunk in unread)
            assert text == "first" + many
