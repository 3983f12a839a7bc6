from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litestream.errors import ProtocolError
from litestream.framing import NDJSONDecoder, SSEDecoder
from litestream.providers.base import Event


def feed_all(decoder, pieces):
    events = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.close())
    return events


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def test_sse_single_data_lines():
    events = feed_all(SSEDecoder(), [b"data: one\n\ndata: two\n\n"])
    assert events == [Event("one"), Event("two")]


def test_sse_event_names_and_multiline_data():
    raw = b"event: message_start\ndata: {\"a\":\ndata: 1}\n\n"
    assert feed_all(SSEDecoder(), [raw]) == [Event('{"a":\n1}', "message_start")]


def test_sse_comments_are_skipped():
    raw = b": OPENROUTER PROCESSING\n\n: keep-alive\n\ndata: x\n\n"
    assert feed_all(SSEDecoder(), [raw]) == [Event("x")]


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_sse_line_endings(newline):
    raw = b"event: e" + newline + b"data: x" + newline + newline + b"data: y" + newline * 2
    assert feed_all(SSEDecoder(), [raw]) == [Event("x", "e"), Event("y")]


def test_sse_crlf_split_between_reads():
    assert feed_all(SSEDecoder(), [b"data: x\r", b"\n\r", b"\ndata: y\r\n\r\n"]) == [
        Event("x"), Event("y")]


def test_sse_event_delivered_as_soon_as_complete():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n\ndata: sec") == [Event("first")]
    assert decoder.feed(b"ond\n\n") == [Event("second")]


@pytest.mark.parametrize("text", ["héllo 👋 世界", "🎉" * 3])
def test_utf8_split_at_every_byte_offset(text):
    raw = f"data: {text}\n\n".encode()
    for offset in range(len(raw) + 1):
        assert feed_all(SSEDecoder(), [raw[:offset], raw[offset:]]) == [Event(text)]


def test_invalid_utf8_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="UTF-8"):
        feed_all(SSEDecoder(), [b"data: \xff\xfe\n\n"])


def test_oversized_event_is_a_protocol_error_with_bounded_memory():
    decoder = SSEDecoder(max_event_size=1000)
    with pytest.raises(ProtocolError, match="maximum event size"):
        for _ in range(100):
            decoder.feed(b"data: " + b"x" * 100)


def test_unterminated_last_event_is_returned_at_close():
    assert feed_all(SSEDecoder(), [b"data: tail"]) == [Event("tail")]


def test_ndjson_lines():
    raw = b'{"a": 1}\n\n{"b": 2}\r\n{"c"'
    decoder = NDJSONDecoder()
    assert decoder.feed(raw) == [Event('{"a": 1}'), Event('{"b": 2}')]
    assert decoder.feed(b": 3}") == []
    assert decoder.close() == [Event('{"c": 3}')]


SSE_SAMPLE = (
    "event: message_start\r\ndata: {\"x\": \"😀\"}\r\n\r\n: ping\r\n\r\n"
    "data: {\"y\": \"世界\"}\n\ndata: line1\ndata: line2\n\n"
).encode()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SSE_SAMPLE)), max_size=8))
def test_sse_any_split_gives_the_same_events(cuts):
    whole = feed_all(SSEDecoder(), [SSE_SAMPLE])
    assert feed_all(SSEDecoder(), split_at(SSE_SAMPLE, cuts)) == whole


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=6))
def test_arbitrary_bytes_give_events_or_protocol_error(data, cuts):
    for decoder in (SSEDecoder(max_event_size=200), NDJSONDecoder(max_event_size=200)):
        try:
            events = feed_all(decoder, split_at(data, cuts))
        except ProtocolError:
            continue
        assert all(isinstance(event, Event) for event in events)
