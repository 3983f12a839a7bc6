"""Chunks stay exactly what they were: every transcript against the golden file from main.

The golden file (``tests/fixtures/chunks_golden.json``, written by
``tests/chunk_golden.py`` from main before the parsers' hot paths were made
cheaper) holds each chunk's ``repr`` and ``to_dict()``. Each chunk is also
rebuilt through the public, converting constructors and must equal (and hash
like) the one the parser built.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
import chunk_golden
import pytest

from litestream.types import Choice, Chunk, Delta, ToolCallDelta, Usage, _EventJSON

GOLDEN = json.loads(chunk_golden.GOLDEN.read_text(encoding="utf-8"))
CASES = {f"{provider}/{name}": (provider, body) for provider, name, body in chunk_golden.cases()}


def _rebuilt(chunk: Chunk) -> Chunk:
    """Return ``chunk`` built again the slow way, field by field through the public constructors."""
    choices = [
        Choice(
            index=choice.index,
            delta=Delta(
                role=choice.delta.role,
                content=choice.delta.content,
                tool_calls=[
                    ToolCallDelta(**attrs.asdict(call)) for call in choice.delta.tool_calls
                ],
                reasoning=choice.delta.reasoning,
                refusal=choice.delta.refusal,
                reasoning_details=list(choice.delta.reasoning_details),
                annotations=list(choice.delta.annotations),
            ),
            finish_reason=choice.finish_reason,
        )
        for choice in chunk.choices
    ]
    usage = None if chunk.usage is None else Usage(**attrs.asdict(chunk.usage))
    return Chunk(id=chunk.id, model=chunk.model, provider=chunk.provider, created=chunk.created,
                 choices=choices, usage=usage, provider_event=chunk.provider_event)


@pytest.mark.parametrize("key", sorted(key for key in GOLDEN if key in CASES))
def test_chunks_equal_golden(key: str) -> None:
    """Every chunk has the golden repr and to_dict(); the error after them is the same."""
    provider, body = CASES[key]
    assert chunk_golden.replay(provider, body) == GOLDEN[key]


@pytest.mark.parametrize("key", sorted(key for key in GOLDEN if key in CASES))
def test_split_reads_give_the_same_chunks(key: str) -> None:
    """Feeding the body 7 bytes at a time changes nothing."""
    provider, body = CASES[key]
    assert chunk_golden.replay(provider, body, piece=7) == GOLDEN[key]


@pytest.mark.parametrize("piece", [0, 7])
@pytest.mark.parametrize("key", sorted(CASES))
def test_the_readers_batched_path_gives_the_same_chunks(key: str, piece: int) -> None:
    """``decode`` + ``feed_many`` per read (the reader's way) give what ``feed`` per event gives."""
    provider, body = CASES[key]
    expected = GOLDEN.get(key) or chunk_golden.replay(provider, body, piece=piece)
    assert chunk_golden.replay(provider, body, piece=piece, batched=True) == expected


def _chunks(provider: str, body: str) -> list[Chunk]:
    from litestream.framing import make_decoder
    from litestream.providers import get_provider

    impl = get_provider(provider)
    parser = impl.stream_parser("test-model")
    decoder = make_decoder(impl.framing)
    chunks: list[Chunk] = []
    try:
        for event in [*decoder.feed(body.encode("utf-8")), *decoder.close()]:
            if parser.done:
                break
            chunks.extend(parser.feed(event))
    except Exception:  # noqa: BLE001 - the error is checked by the golden test
        pass
    return chunks


@pytest.mark.parametrize("key", sorted(CASES))
def test_chunks_equal_their_slow_build(key: str) -> None:
    """A parsed chunk equals, hashes like and reprs like its rebuild through the public API."""
    chunks = _chunks(*CASES[key])
    for chunk in chunks:
        slow = _rebuilt(chunk)
        assert chunk == slow and slow == chunk
        assert _unhashable(chunk) or hash(chunk) == hash(slow)
        assert repr(chunk) == repr(slow)
        assert chunk.to_dict() == slow.to_dict()
        assert type(chunk.choices) is tuple
        for choice in chunk.choices:
            assert type(choice.delta.tool_calls) is tuple
            assert type(choice.delta.reasoning_details) is tuple
            assert type(choice.delta.annotations) is tuple
        if chunk.provider_event is not None:
            assert not isinstance(chunk.provider_event, dict)  # read-only view


def _unhashable(chunk: Any) -> bool:
    try:
        hash(chunk)
    except TypeError:
        return True
    return False


def test_golden_covers_every_openai_shaped_provider() -> None:
    """The golden file has cases for every provider whose hot path was changed."""
    providers = {key.split("/")[0] for key in GOLDEN}
    assert {"openai", "openrouter", "mistral", "openai_compatible", "anthropic", "gemini",
            "ollama"} <= providers


def _batched_chunks(provider: str, body: str) -> list[Chunk]:
    """The chunks the reader's way makes of ``body``: one ``feed_many`` for the whole read."""
    from litestream.framing import make_decoder
    from litestream.providers import get_provider

    impl = get_provider(provider)
    parser = impl.stream_parser("test-model")
    decoder = make_decoder(impl.framing)
    chunks: list[Chunk] = []
    try:
        events, _error = decoder.decode(body.encode("utf-8"))
        parser.feed_many([*events, *decoder.close()], chunks)
    except Exception:  # noqa: BLE001 - the error is checked by the golden test
        pass
    return chunks


@pytest.mark.parametrize("batched", [False, True], ids=["feed", "feed_many"])
@pytest.mark.parametrize("key", sorted(CASES))
def test_token_chunks_keep_their_events_json_text_until_it_is_read(
        key: str, batched: bool) -> None:
    """A token chunk stores its event's text, not the decoded dicts; reading decodes it."""
    provider, body = CASES[key]
    for chunk in (_batched_chunks if batched else _chunks)(provider, body):
        stored = Chunk.provider_event.slot.__get__(chunk)
        token = type(Chunk.choices.slot.__get__(chunk)) is str
        if token and stored is not None:
            assert type(stored) is _EventJSON, f"{key}: a token chunk keeps a decoded event"
            assert chunk.provider_event == json.loads(stored)
