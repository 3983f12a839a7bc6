"""``litestream demo``: the library's main uses, offline, in a few seconds.

Every section talks to a :class:`~litestream.testing.FakeLLMServer` on
``127.0.0.1`` through the real HTTP path (sockets, the reader thread, each
provider's wire format), so what it shows is what a real provider does,
minus the network and the key. Each section is one small function; read
them as worked examples.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any, Callable, Optional, TextIO

from litestream import Stream, errors
from litestream._cli.meter import StreamMeter
from litestream.channels import Channel, alts, timeout
from litestream.core import completion, extract_content
from litestream.router import provider_info
from litestream.streaming import collect_stream, consume_stream_with_callbacks
from litestream.testing import FakeLLMServer, LocalModelServer
from litestream.types import Chunk, Response

__all__ = ["LOCAL_DEMO_QUESTION", "SECTIONS", "local_demo", "run"]

#: How long the second stream of the alts section may take before it is closed.
STALLED_STREAM_TIMEOUT = 0.5
#: A deadline the fast stream of the alts section easily meets.
FAST_STREAM_TIMEOUT = 2.0
_WAIT = 5.0  # a bound on every wait that should take milliseconds


def _open(server: FakeLLMServer, provider: str, prompt: str, **config: Any) -> Stream:
    """Stream ``provider``'s answer from the fake server and wait until it has the request.

    The server hands out scripted replies in the order requests arrive;
    waiting for each request keeps that order the order of the calls.
    """
    seen = len(server.requests)
    stream = completion(
        provider,
        provider_info(provider)["default_model"],
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        api_key="demo-key",
        api_base=server.api_base(provider),
        **config,
    )
    assert isinstance(stream, Stream)
    server.wait_for_requests(seen + 1, _WAIT)
    return stream


def _say(out: TextIO, text: str = "", end: str = "\n") -> None:
    out.write(text + end)
    out.flush()


def stream_answer(server: FakeLLMServer, out: TextIO) -> None:
    """Print an answer chunk by chunk as it arrives (the plain ``for`` loop)."""
    server.script(
        text="Channels carry each chunk from a reader thread to your loop as soon as it arrives.",
        delay=0.02,
    )
    with _open(server, "openai", "How does litestream stream?") as stream:
        for chunk in stream:
            text = extract_content(chunk)
            if text:
                _say(out, text, end="")
    _say(out)


def measure_throughput(server: FakeLLMServer, out: TextIO) -> None:
    """Count tokens and time while streaming, like the seed's metrics example.

    The tokens are the ones the provider reported in its usage; a stream
    without usage would show an estimate, marked as one.
    """
    server.script(
        text="Anthropic's events arrive as the same Chunk objects, so one loop measures any "
             "provider: tokens, milliseconds and tokens per second.",
        delay=0.01,
    )
    meter = _print_metered(out, _open(server, "anthropic", "Measure this stream."))
    _say(out)
    _say(out, f"{meter.summary()} | first text after {meter.first_text_ms}ms")


def select_with_timeouts(server: FakeLLMServer, out: TextIO) -> None:
    """Read two streams at once with ``alts``; each has its own ``timeout()`` channel.

    The second stream stalls after two words: its deadline channel closes
    first, and the stream is closed (which cancels its HTTP request).
    """
    server.script(text="The fast stream answers in full.", delay=0.02)
    server.script(text="The stalled stream says two words and then nothing.", stall_after=2)
    fast = _open(server, "openai", "Answer quickly.")
    stalled = _open(server, "mistral", "Answer slowly.")
    names = {fast: "fast", stalled: "stalled"}
    limits = {fast: FAST_STREAM_TIMEOUT, stalled: STALLED_STREAM_TIMEOUT}
    deadlines: dict[Channel[Any], Stream] = {timeout(limits[s]): s for s in (fast, stalled)}
    texts: dict[Stream, list[str]] = {fast: [], stalled: []}
    live = {fast, stalled}
    try:
        while live:
            waiting = [*live, *(d for d, s in deadlines.items() if s in live)]
            try:
                value, channel = alts(waiting)
            except errors.LitestreamError as error:  # a stream failed: drop it, go on
                live.discard(error.channel)
                _say(out, f"{names[error.channel]}: failed: {errors.error_summary(error)}")
                continue
            if channel in deadlines:
                stream = deadlines[channel]
                stream.close()
                live.discard(stream)
                _say(out, f"{names[stream]}: timed out after {limits[stream]} s with "
                          f"{''.join(texts[stream])!r}; stream closed")
            elif value is None:
                live.discard(channel)
                _say(out, f"{names[channel]}: finished: {''.join(texts[channel])!r}")
            else:
                texts[channel].append(extract_content(value) or "")
    finally:
        fast.close()
        stalled.close()
    closed = server.wait_for_disconnect(_WAIT)
    _say(out, f"server saw the stalled connection closed: {closed}")


def callbacks_and_errors(server: FakeLLMServer, out: TextIO) -> None:
    """Consume with callbacks; then a simulated HTTP 429 reaches ``on_error``."""
    server.script(text="Callbacks run in order on one worker thread.",
                  usage={"prompt_tokens": 12, "completion_tokens": 8})
    server.script(error_status=429, retry_after=2)

    def on_chunk(chunk: Chunk) -> None:
        text = extract_content(chunk)
        if text:
            _say(out, text, end="")

    def on_complete(response: Response) -> None:
        usage = response.usage.total_tokens if response.usage else "?"
        _say(out, f"\non_complete: finish_reason={response.finish_reason}, "
                  f"total tokens={usage}")

    def on_error(error: BaseException) -> None:
        summary = errors.error_summary(error)
        if errors.is_litestream_error(error):
            _say(out, f"on_error: {summary}")
            _say(out, f"  retryable={errors.is_retryable(error)}: by default completion() "
                      f"waits {getattr(error, 'retry_after', None)} s and tries again "
                      "(max_retries=2); this call asked for max_retries=0")
        else:
            _say(out, f"on_error (not a litestream error): {summary}")

    for prompt, retries in (("Explain callbacks.", 2), ("This one is rate limited.", 0)):
        future = consume_stream_with_callbacks(
            _open(server, "openai", prompt, max_retries=retries), on_chunk, on_complete,
            on_error)
        _wait_quietly(future)


def _wait_quietly(future: concurrent.futures.Future[Response]) -> Optional[Response]:
    """Wait for a callbacks future; its error was already reported by ``on_error``."""
    try:
        return future.result(_WAIT)
    except errors.LitestreamError:
        return None


def collect(server: FakeLLMServer, out: TextIO) -> None:
    """Collect a whole stream, tool-call fragments included, into one Response."""
    server.script(
        text="Let me check the weather.",
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}],
        usage={"prompt_tokens": 20, "completion_tokens": 15},
    )
    response = collect_stream(_open(server, "openai", "Weather in Paris?"), timeout=_WAIT)
    _say(out, f"content: {response.content!r}")
    for call in response.tool_calls:
        _say(out, f"tool call: {call.name}({call.arguments})")
    _say(out, f"finish_reason: {response.finish_reason}")
    if response.usage is not None:
        _say(out, f"usage: {response.usage.prompt_tokens} prompt + "
                  f"{response.usage.completion_tokens} completion = "
                  f"{response.usage.total_tokens} tokens")


#: The demo's sections, in order: a heading and the function that shows it.
SECTIONS: tuple[tuple[str, Callable[[FakeLLMServer, TextIO], None]], ...] = (
    ("Streaming: print each chunk as it arrives", stream_answer),
    ("Metrics: tokens, time and tokens/sec with estimate_tokens", measure_throughput),
    ("alts over two streams, each with its own timeout() channel", select_with_timeouts),
    ("Callbacks: on_chunk, on_complete, and on_error for an HTTP 429", callbacks_and_errors),
    ("collect_stream: the whole stream as one Response", collect),
)


def run(out: TextIO) -> int:
    """Run every section against a fresh FakeLLMServer, writing to ``out``; return 0."""
    with FakeLLMServer() as server:
        _say(out, f"litestream demo: a fake LLM server on {server.url} "
                  "stands in for the providers (no network, no API key).")
        for number, (title, section) in enumerate(SECTIONS, 1):
            _say(out)
            _say(out, f"== {number}. {title} ==")
            section(server, out)
    _say(out)
    _say(out, "Done. With a key set (see `litestream providers`), try: "
              "litestream chat \"Tell me a joke\"")
    return 0


#: What ``litestream demo --local`` asks the local model.
LOCAL_DEMO_QUESTION = "In two sentences, why do streamed answers feel faster?"


def local_demo(server: LocalModelServer, out: TextIO) -> int:
    """Stream the local model's answer to :data:`LOCAL_DEMO_QUESTION`, then its metrics line."""
    _say(out, f"litestream demo --local: SmolLM2-135M served by llama.cpp at {server.url}\n\n"
              f"> {LOCAL_DEMO_QUESTION}")
    meter = _print_metered(out, completion(
        "openai_compatible", server.model,
        messages=[{"role": "user", "content": LOCAL_DEMO_QUESTION}],
        stream=True, max_tokens=96, api_base=server.api_base))
    if meter.text and not meter.text.endswith("\n"):
        _say(out)
    _say(out, f"\n{meter.summary()}")
    return 0


def _print_metered(out: TextIO, stream: Stream) -> StreamMeter:
    """Print a stream's text as it comes; return its finished meter (tokens, timings)."""
    meter = StreamMeter()
    with stream:
        for chunk in stream:
            text = extract_content(chunk)
            meter.add(text)
            meter.add_usage(chunk.usage)
            if text:
                _say(out, text, end="")
    meter.finish()
    return meter
