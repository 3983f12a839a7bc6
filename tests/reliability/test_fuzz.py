"""Fuzzing the framing decoders and every provider's stream parser.

Whatever bytes arrive, split however the socket splits them, the decoder and
parser produce only Chunks or raise a LitestreamError: never another
exception type and never a hang (each example has a deadline). Valid
transcripts give the same result however they are split.

This is a pure harness (decoder -> parser, as the reader thread drives them);
the transport would wrap a stray parser exception into ProtocolError, but the
parsers should not need that.
"""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, Optional

import attrs
import pytest
from _harness import MODELS, PROVIDERS, Outcome, replay_pieces, transcript, transcripts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from litestream import errors
from litestream._body import BodyReader
from litestream.framing import NDJSONDecoder, SSEDecoder, make_decoder
from litestream.providers import get_provider
from litestream.types import Chunk
from litestream.wire import Event

FUZZ = settings(
    max_examples=120,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def comparable(outcome: Outcome) -> tuple[Any, ...]:
    """An outcome without what a parser makes up itself: its creation time, Ollama's ids."""
    chunks = [attrs.evolve(chunk, created=None, id=None) for chunk in outcome.chunks]
    error = outcome.error
    return chunks, (type(error).__name__, error.message) if error is not None else None


# ---------------------------------------------------------------------------
# Framing
# ---------------------------------------------------------------------------

wire_bytes = st.one_of(
    st.binary(max_size=400),
    # Bytes built from the pieces SSE and NDJSON are made of hit the interesting paths.
    st.lists(
        st.sampled_from([
            b"data: ", b"data:", b"event: ", b"id: 1", b"retry: 5", b": keepalive", b"\n", b"\r",
            b"\r\n", b"\n\n", b'{"a": 1}', b"[DONE]", b"\xff", b"\xc3", b"\xa9", b"x" * 50, b" ",
        ]),
        max_size=40,
    ).map(b"".join),
)


@FUZZ
@given(data=wire_bytes, cuts=st.lists(st.integers(min_value=0), max_size=8),
       max_event_size=st.sampled_from([16, 256, 1 << 20]),
       decoder_class=st.sampled_from([SSEDecoder, NDJSONDecoder]))
def test_decoders_yield_events_or_raise_protocol_error(data, cuts, max_event_size, decoder_class):
    decoder = decoder_class(max_event_size)
    try:
        for piece in split_at(data, cuts):
            for event in decoder.iter_feed(piece):
                assert isinstance(event, Event)
                assert isinstance(event.data, str)
        for event in decoder.close():
            assert isinstance(event, Event)
    except errors.ProtocolError:
        pass


@FUZZ
@given(data=wire_bytes, cuts=st.lists(st.integers(min_value=0), max_size=8),
       decoder_class=st.sampled_from([SSEDecoder, NDJSONDecoder]))
def test_decoders_give_the_same_events_however_the_bytes_are_split(data, cuts, decoder_class):
    def decode(pieces: list[bytes]) -> Any:
        decoder = decoder_class(1 << 20)
        events: list[Event] = []
        try:
            for piece in pieces:
                events.extend(decoder.iter_feed(piece))
            events.extend(decoder.close())
        except errors.ProtocolError as error:
            return events, type(error)
        return events, None

    whole_events, whole_error = decode([data])
    split_events, split_error = decode(split_at(data, cuts))
    assert split_error == whole_error
    if whole_error is None:
        assert split_events == whole_events
    else:
        # Where the error is found may differ by the events of one read, never more.
        assert split_events == whole_events[: len(split_events)] or whole_events == split_events[
            : len(whole_events)
        ]


# ---------------------------------------------------------------------------
# Parsers: arbitrary bytes
# ---------------------------------------------------------------------------


@FUZZ
@given(provider=st.sampled_from(PROVIDERS), data=wire_bytes,
       cuts=st.lists(st.integers(min_value=0), max_size=6))
def test_parsers_survive_arbitrary_bytes(provider, data, cuts):
    replay_pieces(provider, split_at(data, cuts))


# ---------------------------------------------------------------------------
# Parsers: real transcripts with parts of their JSON replaced
# ---------------------------------------------------------------------------

_WORDS = [
    "", "stop", "length", "end_turn", "tool_use", "max_tokens", "STOP", "MAX_TOKENS", "SAFETY",
    "tool_calls", "content_filter", "error", "text", "text_delta", "input_json_delta",
    "thinking_delta", "signature_delta", "message_start", "content_block_start",
    "content_block_delta", "message_delta", "message_stop", "ping", "assistant", "function",
    "overloaded_error", "server_error", "rate_limit_error", "[DONE]", "{", "\u00e9\U0001f600",
]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(_WORDS), st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(_WORDS + ["index", "type", "delta", "content"]),
                        children, max_size=3),
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            paths.extend(_paths(child, prefix + (key,)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths.extend(_paths(child, prefix + (index,)))
    return paths


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
    else:
        copy = list(value)
    copy[head] = _replace(value[head], rest, new)
    return copy


def _events_of(provider: str, body: bytes) -> list[Event]:
    decoder = make_decoder(get_provider(provider).framing)
    return decoder.feed(body) + decoder.close()


@st.composite
def mutated_transcripts(draw: st.DrawFn) -> tuple[str, list[Event], list[Event], bool]:
    """A real transcript, then a copy with some JSON replaced, and whether anything changed."""
    provider, name = draw(st.sampled_from(
        [case for case in transcripts() if case[0] in PROVIDERS]))
    events = _events_of(provider, transcript(provider, name))
    mutated = []
    changed = False
    for event in events:
        try:
            payload = json.loads(event.data)
        except ValueError:
            mutated.append(event)
            continue
        if draw(st.integers(0, 3)) == 0:
            path = draw(st.sampled_from(_paths(payload)))
            replaced = _replace(payload, path, draw(json_values))
            changed = changed or replaced != payload
            payload = replaced
        if draw(st.integers(0, 20)) == 0:
            mutated.append(Event(json.dumps(draw(json_values)), event.event))
            changed = True
        mutated.append(Event(json.dumps(payload), event.event))
    return provider, events, mutated, changed


@settings(FUZZ, max_examples=400)
@given(case=mutated_transcripts())
def test_parsers_survive_wrongly_shaped_json(case):
    provider, original, events, changed = case
    chunks, error = _parse_events(provider, events)
    assert all(isinstance(chunk, Chunk) for chunk in chunks)
    if error is not None:
        assert error.provider == provider, f"{type(error).__name__} without its provider"
    if not changed:
        # The control: an unchanged transcript parses as it always does, so a
        # parser that rejects everything (or drops everything) fails here.
        expected_chunks, expected_error = _parse_events(provider, original)
        assert _comparable(chunks) == _comparable(expected_chunks)
        assert type(error) is type(expected_error)


def _comparable(chunks: list[Chunk]) -> list[dict[str, Any]]:
    """Chunks as dicts without what each parse makes anew (a generated id, the clock)."""
    return [{key: value for key, value in chunk.to_dict().items() if key not in ("id", "created")}
            for chunk in chunks]


def _parse_events(
    provider: str, events: list[Event]
) -> tuple[list[Chunk], Optional[errors.LitestreamError]]:
    parser = get_provider(provider).stream_parser(MODELS[provider])
    chunks: list[Chunk] = []
    try:
        for event in events:
            if parser.done:
                break
            chunks.extend(parser.feed(event))
        if not parser.done:
            chunks.extend(parser.finish())
    except errors.LitestreamError as error:
        return chunks, error
    return chunks, None


# ---------------------------------------------------------------------------
# Valid transcripts: the split does not matter
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", transcripts(), ids=lambda case: "/".join(case))
@settings(FUZZ, max_examples=40)
@given(cuts=st.lists(st.integers(min_value=0), min_size=1, max_size=12))
def test_transcripts_split_anywhere_give_the_same_result(case, cuts):
    provider, name = case
    body = transcript(provider, name)
    whole = replay_pieces(provider, [body])
    split = replay_pieces(provider, split_at(body, cuts))
    assert comparable(split) == comparable(whole)


@pytest.mark.parametrize("case", transcripts(), ids=lambda case: "/".join(case))
def test_transcripts_byte_by_byte_give_the_same_result(case):
    provider, name = case
    body = transcript(provider, name)
    whole = replay_pieces(provider, [body])
    assert whole.chunks, "a recorded transcript yields chunks"
    one_byte = replay_pieces(provider, [body[i:i + 1] for i in range(len(body))])
    assert comparable(one_byte) == comparable(whole)


# ---------------------------------------------------------------------------
# The body reader: chunked transfer encoding undone across arbitrary reads
# ---------------------------------------------------------------------------


class _SocketFile:
    """Stands in for the socket file: ``read1`` returns the prepared pieces, then EOF."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = [piece for piece in pieces if piece]

    def read1(self, size: int) -> bytes:
        if not self._pieces:
            return b""
        piece = self._pieces[0]
        self._pieces[0] = piece[size:]
        if not self._pieces[0]:
            self._pieces.pop(0)
        return piece[:size]


def _response(pieces: list[bytes], chunked: bool, length: Any = None) -> Any:
    http_response = SimpleNamespace(fp=_SocketFile(pieces), chunked=chunked, length=length,
                                    _close_conn=lambda: None)
    return SimpleNamespace(raw=SimpleNamespace(_fp=http_response))


def _read_body(response: Any) -> tuple[bytes, Optional[type[BaseException]]]:
    reader = BodyReader(response)
    received = []
    try:
        for _ in range(100_000):
            data = reader.read()
            if not data:
                return b"".join(received), None
            received.append(data)
        raise AssertionError("the body reader never ended")
    except errors.LitestreamError as error:
        return b"".join(received), type(error)


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    body = draw(st.binary(max_size=300))
    sizes = draw(st.lists(st.integers(1, 40), max_size=20))
    encoded, position = [], 0
    for size in sizes + [len(body)]:
        piece = body[position:position + size]
        if not piece:
            break
        extension = draw(st.sampled_from([b"", b";name=value"]))
        encoded.append(b"%x%b\r\n%b\r\n" % (len(piece), extension, piece))
        position += len(piece)
    trailers = draw(st.sampled_from([b"", b"X-Trailer: 1\r\n"]))
    return body, b"".join(encoded) + b"0\r\n" + trailers + b"\r\n"


@FUZZ
@given(case=chunked_bodies(), cuts=st.lists(st.integers(min_value=0), max_size=10))
def test_body_reader_undoes_chunked_encoding_however_it_is_split(case, cuts):
    body, encoded = case
    received, error = _read_body(_response(split_at(encoded, cuts), chunked=True))
    assert error is None
    assert received == body


@FUZZ
@given(case=chunked_bodies(), cut=st.integers(min_value=0), cuts=st.lists(st.integers(0)))
def test_body_reader_reports_a_chunked_body_cut_short(case, cut, cuts):
    body, encoded = case
    cut %= len(encoded)  # strictly inside: the final CRLF never arrives
    received, error = _read_body(_response(split_at(encoded[:cut], cuts), chunked=True))
    assert error is not None and issubclass(error, errors.StreamConnectionError)
    assert body.startswith(received)


@FUZZ
@given(data=wire_bytes, cuts=st.lists(st.integers(min_value=0), max_size=8),
       chunked=st.booleans(), length=st.one_of(st.none(), st.integers(0, 500)))
def test_body_reader_gives_bytes_or_a_typed_error_for_any_input(data, cuts, chunked, length):
    received, error = _read_body(_response(split_at(data, cuts), chunked, length))
    assert isinstance(received, bytes)
    assert error is None or issubclass(error, errors.LitestreamError)
    if not chunked and length is not None and error is None:
        assert received == data[:length]
