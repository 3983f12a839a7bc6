"""Helpers of the reliability suite: streams, outcomes, transcripts, resource probes."""

from __future__ import annotations

import gc
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import attrs

import litestream
from litestream import errors
from litestream.framing import DEFAULT_MAX_EVENT_SIZE, make_decoder
from litestream.providers import get_provider
from litestream.types import Chunk
from litestream.wire import Event

#: The six providers that FakeLLMServer speaks, each with a model its router recognises.
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-3-5-haiku-latest",
    "gemini": "gemini-2.0-flash",
    "mistral": "mistral-small-latest",
    "openrouter": "openai/gpt-4o-mini",
    "ollama": "llama3.2",
}
PROVIDERS = list(MODELS)
# Read from recorded transcripts too, but not part of the scripted fault matrix.
MODELS["openai_responses"] = "gpt-5-mini"

FIXTURES = Path(__file__).parents[1] / "fixtures" / "streams"
PLAIN_TRANSCRIPTS = {"openrouter": "keepalive_plain"}
MESSAGES = [{"role": "user", "content": "Hi"}]


def framing(provider: str) -> str:
    """``"sse"`` or ``"ndjson"``: how the provider frames its stream."""
    return get_provider(provider).framing


def open_stream(provider: str, api_base: str, **config: Any) -> litestream.Stream:
    """Start a streaming completion against ``api_base``; no retries unless asked."""
    config.setdefault("api_key", "test-key")
    config.setdefault("max_retries", 0)  # one scripted fault, one attempt
    stream = litestream.completion(
        provider, MODELS[provider], messages=MESSAGES, stream=True, api_base=api_base, **config
    )
    assert isinstance(stream, litestream.Stream)
    return stream


@attrs.define
class Outcome:
    """What a consumer saw: the chunks in order, then the error (if any)."""

    chunks: list[Chunk] = attrs.field(factory=list)
    error: Optional[BaseException] = None

    @property
    def content(self) -> str:
        return "".join(chunk.content or "" for chunk in self.chunks)

    @property
    def finish_reasons(self) -> list[str]:
        return [chunk.finish_reason for chunk in self.chunks if chunk.finish_reason]


def consume(stream: litestream.Stream, wait: float = 10.0) -> Outcome:
    """Read ``stream`` to its end; each ``get`` is bounded so a hang fails instead of blocking."""
    outcome = Outcome()
    try:
        while True:
            chunk = stream.get(timeout=wait)
            if chunk is None:
                break
            outcome.chunks.append(chunk)
    except errors.LitestreamError as error:
        outcome.error = error
    except TimeoutError:
        stream.close()  # contain the failure: no thread left to trip the next tests
        raise AssertionError(f"the stream hung after {len(outcome.chunks)} chunks") from None
    return outcome


def assert_finished(stream: litestream.Stream) -> None:
    """The stream reads as closed and drained, and its reader thread has ended."""
    assert stream.closed
    assert stream.get(timeout=1.0) is None, "the error must be raised once, then None"
    assert stream.join(5.0), "the reader thread must end"


def closed_port() -> int:
    """Return a loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------
# Transcripts and a pure (no HTTP) replay harness
# ---------------------------------------------------------------------------


def transcript(provider: str, name: Optional[str] = None) -> bytes:
    """Return a recorded stream body for ``provider`` (by default a plain text answer)."""
    name = name or PLAIN_TRANSCRIPTS.get(provider, "plain_text")
    return (FIXTURES / provider / f"{name}.txt").read_bytes()


def transcripts() -> list[tuple[str, str]]:
    """Every recorded transcript as ``(provider, name)``."""
    return [(path.parent.name, path.stem) for path in sorted(FIXTURES.glob("*/*.txt"))]


def replay_pieces(
    provider: str, pieces: list[bytes], *, finish: bool = True,
    max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
) -> Outcome:
    """Feed byte pieces through the framing decoder and the provider's parser, like the reader.

    Stops at the provider's final event, as the transport does. With
    ``finish`` the end of the body is signalled too (``decoder.close`` and
    ``parser.finish``). Only LitestreamErrors are caught; the types of what
    the decoder and the parser return are checked on the way.
    """
    provider_object = get_provider(provider)
    decoder = make_decoder(provider_object.framing, max_event_size)
    parser = provider_object.stream_parser(MODELS[provider])
    outcome = Outcome()

    def feed(events: list[Event]) -> None:
        # One read's events at once, as the reader thread hands them over.
        assert isinstance(events, list)
        assert all(isinstance(event, Event) and isinstance(event.data, str) for event in events)
        produced: list[Chunk] = []
        try:
            parser.feed_many(events, produced)
        finally:
            assert all(isinstance(chunk, Chunk) for chunk in produced), produced
            outcome.chunks.extend(produced)

    try:
        for piece in pieces:
            events, decode_error = decoder.decode(piece)
            feed(events)
            if parser.done:
                return outcome
            if decode_error is not None:
                raise decode_error
        if finish:
            feed(decoder.close())
            if not parser.done:
                outcome.chunks.extend(parser.finish())
    except errors.LitestreamError as error:
        outcome.error = error
    return outcome


def event_boundaries(provider: str, body: bytes) -> list[int]:
    """Byte offsets just after each complete event of ``body``."""
    separator = b"\n" if framing(provider) == "ndjson" else b"\n\n"
    normalized = body.replace(b"\r\n", b"\n")
    if normalized != body:
        separator = separator.replace(b"\n", b"\r\n")
    offsets, start = [], 0
    while True:
        found = body.find(separator, start)
        if found < 0:
            return offsets
        start = found + len(separator)
        offsets.append(start)


def mid_stream_boundary(provider: str, body: bytes) -> int:
    """The first event boundary after which some content has arrived but the stream is not done."""
    for offset in event_boundaries(provider, body):
        partial = replay_pieces(provider, [body[:offset]], finish=False)
        whole = replay_pieces(provider, [body])
        if partial.content and partial.content != whole.content:
            return offset
    raise AssertionError(f"no mid-stream boundary in the {provider} transcript")


# ---------------------------------------------------------------------------
# Process resources
# ---------------------------------------------------------------------------


def rss_bytes() -> int:
    """The process's resident set size now."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def open_fds() -> int:
    """How many file descriptors the process holds."""
    return len(os.listdir("/proc/self/fd"))


def litestream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("litestream-reader")]


def wait_until(condition: Callable[[], bool], timeout: float, step: Callable[[], None]) -> bool:
    """Evaluate ``condition`` after each ``step`` (a bounded wait) until true or ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        step()
    return True


def join_readers(timeout: float = 10.0) -> None:
    """Collect garbage and join every reader thread (each join is a bounded wait)."""
    gc.collect()
    deadline = time.monotonic() + timeout
    for thread in litestream_threads():
        thread.join(max(0.0, deadline - time.monotonic()))
