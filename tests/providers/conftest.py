"""Helpers shared by the provider tests: recorded transcripts, framing, and chunk assembly.

A test module sets ``PROVIDER = "<name>"`` and asks for the ``stream_case``
fixture to be run once per transcript in ``tests/fixtures/streams/<name>/``
(copied from the shared fixtures so a fresh clone works on its own).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from litestream import errors
from litestream.providers import get_provider
from litestream.types import FINISH_REASONS, Chunk
from litestream.wire import Event

FIXTURES = Path(__file__).parents[1] / "fixtures" / "streams"


def split_sse(text: str) -> list[Event]:
    """Split an SSE body into events: blank-line separated, comments skipped, CRLF allowed."""
    events = []
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    for block in text.split("\n\n"):
        name = None
        data = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        if data:
            events.append(Event("\n".join(data), name))
    return events


def split_ndjson(text: str) -> list[Event]:
    """Split an NDJSON body into one event per non-empty line."""
    return [Event(line) for line in text.splitlines() if line.strip()]


@dataclass
class Replay:
    """What a parser made of a whole transcript."""

    chunks: list[Chunk] = field(default_factory=list)
    error: Optional[errors.LitestreamError] = None

    @property
    def content(self) -> str:
        return "".join(chunk.content or "" for chunk in self.chunks)

    @property
    def reasoning(self) -> str:
        return "".join(
            choice.delta.reasoning or "" for chunk in self.chunks for choice in chunk.choices
        )

    @property
    def finish_reasons(self) -> list[str]:
        return [chunk.finish_reason for chunk in self.chunks if chunk.finish_reason]

    @property
    def finish_reason(self) -> Optional[str]:
        reasons = self.finish_reasons
        return reasons[-1] if reasons else None

    @property
    def usage(self) -> Optional[dict[str, int]]:
        usages = [chunk.usage for chunk in self.chunks if chunk.usage is not None]
        if not usages:
            return None
        return {
            "prompt_tokens": usages[-1].prompt_tokens,
            "completion_tokens": usages[-1].completion_tokens,
        }

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        """Tool calls merged by index: first id and name win, arguments concatenate."""
        calls: dict[int, dict[str, Any]] = {}
        for chunk in self.chunks:
            for choice in chunk.choices:
                for fragment in choice.delta.tool_calls:
                    call = calls.setdefault(
                        fragment.index, {"id": None, "name": None, "arguments": ""}
                    )
                    call["id"] = call["id"] or fragment.id
                    call["name"] = call["name"] or fragment.name
                    call["arguments"] += fragment.arguments or ""
        return [calls[index] for index in sorted(calls)]


def replay_events(provider_name: str, events: list[Event], model: str = "test-model") -> Replay:
    """Feed events to a fresh parser the way the transport does, stopping once it is done."""
    parser = get_provider(provider_name).stream_parser(model)
    result = Replay()
    try:
        for event in events:
            if parser.done:
                break
            result.chunks.extend(parser.feed(event))
        if not parser.done:
            result.chunks.extend(parser.finish())
    except errors.LitestreamError as error:
        result.error = error
    return result


def replay_text(provider_name: str, text: str, model: str = "test-model") -> Replay:
    """Frame a raw body for the provider and replay it."""
    framing = get_provider(provider_name).framing
    events = split_ndjson(text) if framing == "ndjson" else split_sse(text)
    return replay_events(provider_name, events, model)


def sse_events(*payloads: Any, event: Optional[str] = None) -> list[Event]:
    """Return SSE events whose data is each payload as JSON (strings are sent as they are)."""
    return [
        Event(payload if isinstance(payload, str) else json.dumps(payload), event)
        for payload in payloads
    ]


@dataclass
class StreamCase:
    """One recorded transcript and what it must produce."""

    provider: str
    name: str
    body: str
    expected: dict[str, Any]


def _cases(provider: str) -> list[StreamCase]:
    cases = []
    for body_path in sorted((FIXTURES / provider).glob("*.txt")):
        spec = json.loads(body_path.with_suffix(".json").read_text(encoding="utf-8"))
        cases.append(
            StreamCase(
                provider=spec["provider"],
                name=body_path.stem,
                body=body_path.read_text(encoding="utf-8"),
                expected=spec["expected"],
            )
        )
    return cases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests asking for ``stream_case`` once per transcript of the module's PROVIDER."""
    if "stream_case" in metafunc.fixturenames:
        provider = metafunc.module.PROVIDER
        cases = _cases(provider)
        assert cases, f"no transcripts for {provider} in {FIXTURES}"
        metafunc.parametrize("stream_case", cases, ids=[case.name for case in cases])


def check_against_expected(case: StreamCase) -> None:
    """Replay a transcript and compare it with its expected outcome."""
    result = replay_text(case.provider, case.body)
    expected = case.expected
    assert result.content == expected["content"]
    assert result.finish_reason == expected["finish_reason"]
    assert result.usage == expected["usage"]
    assert [
        (call["id"], call["name"], json.loads(call["arguments"])) for call in result.tool_calls
    ] == [
        (call["id"], call["name"], json.loads(call["arguments"])) for call in expected["tool_calls"]
    ]
    if expected["error"] is None:
        assert result.error is None
    else:
        assert isinstance(result.error, errors.LitestreamError)
        assert result.error.message == expected["error"]["message"]
        assert result.error.provider_code == expected["error"]["type"]
        assert result.error.provider == case.provider
    for chunk in result.chunks:
        assert chunk.provider == case.provider
        assert chunk.model
        assert chunk.created
    assert len(result.finish_reasons) <= 1, "a finish reason must be delivered once"


@pytest.fixture
def check_transcript() -> Callable[[StreamCase], None]:
    """The transcript checker, as a fixture so test modules need not import conftest."""
    return check_against_expected


@pytest.fixture
def replay() -> Callable[..., Replay]:
    """Replay a list of events through a provider's parser: ``replay("openai", events)``."""
    return replay_events


@pytest.fixture
def replay_body() -> Callable[..., Replay]:
    """Replay a raw body through a provider's parser: ``replay_body("openai", text)``."""
    return replay_text


# ---------------------------------------------------------------------------
# Fuzzing: any event sequence gives only chunks or a LitestreamError
# ---------------------------------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)

_EVENT_NAMES = st.sampled_from(
    [
        None,
        "error",
        "message_start",
        "content_block_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
        "ping",
    ]
)


def _replace_somewhere(draw: Any, value: Any) -> Any:
    """Return ``value`` with one nested value (or key's value) swapped for arbitrary JSON."""
    if isinstance(value, dict) and value and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: _replace_somewhere(draw, value[key])}
    if isinstance(value, list) and value and draw(st.booleans()):
        position = draw(st.integers(0, len(value) - 1))
        return (
            value[:position] + [_replace_somewhere(draw, value[position])] + value[position + 1 :]
        )
    return draw(_JSON)


def _seed_payloads(provider: str) -> list[Any]:
    payloads = []
    for case in _cases(provider):
        framing = get_provider(provider).framing
        events = split_ndjson(case.body) if framing == "ndjson" else split_sse(case.body)
        for event in events:
            try:
                payloads.append((json.loads(event.data), event.event))
            except ValueError:
                continue
    return payloads


def fuzz(provider_name: str, examples: int = 300) -> None:
    """Feed arbitrary and mutated-real events to the provider's parser; only chunks or errors."""
    seeds = _seed_payloads(provider_name)

    @st.composite
    def events(draw: Any) -> Event:
        kind = draw(st.integers(0, 3))
        if kind == 0:
            return Event(draw(st.text(max_size=40)), draw(_EVENT_NAMES))
        if kind == 1:
            return Event(json.dumps(draw(_JSON)), draw(_EVENT_NAMES))
        payload, name = draw(st.sampled_from(seeds))
        if kind == 2:
            payload = _replace_somewhere(draw, payload)
        return Event(json.dumps(payload), name)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(events(), max_size=8))
    def run(event_list: list[Event]) -> None:
        parser = get_provider(provider_name).stream_parser("fuzz-model")
        try:
            for event in event_list:
                if parser.done:
                    break
                produced = parser.feed(event)
                assert isinstance(produced, list)
                assert all(isinstance(chunk, Chunk) for chunk in produced)
                for chunk in produced:
                    chunk.to_dict()
                    for choice in chunk.choices:
                        assert choice.finish_reason in (None, *FINISH_REASONS)
            produced = parser.finish()
            assert all(isinstance(chunk, Chunk) for chunk in produced)
        except errors.LitestreamError:
            pass

    run()


@pytest.fixture
def fuzz_parser() -> Callable[..., None]:
    """Run the hypothesis fuzz of a provider's parser: ``fuzz_parser("openai")``."""
    return fuzz


def stream_over_http(
    provider_name: str, body: bytes, model: str = "test-model", piece_size: Optional[int] = None
) -> Replay:
    """Serve ``body`` from a loopback server and stream it through ``litestream.completion``.

    The whole path runs: transport, framing and the provider's parser.
    """
    import litestream
    from litestream.testing import FakeLLMServer

    result = Replay()
    with FakeLLMServer() as server:
        server.replay(body, piece_size=piece_size)
        stream = litestream.completion(
            provider_name, model, messages=[{"role": "user", "content": "Hi"}], stream=True,
            api_key="test-key", api_base=server.api_base(provider_name), timeout=30,
        )
        try:
            with stream:
                for chunk in stream:
                    result.chunks.append(chunk)
        except errors.LitestreamError as error:
            result.error = error
    return result


@pytest.fixture
def stream_http() -> Callable[..., Replay]:
    """Stream a raw body over loopback HTTP: ``stream_http("gemini", body, piece_size=5)``."""
    return stream_over_http
