"""SSE and NDJSON framing: bytes in, events out.

Split-anywhere fuzzing of the decoders lives in tests/reliability/test_fuzz.py.
"""

from __future__ import annotations

import pytest

from litestream.errors import ProtocolError
from litestream.framing import NDJSONDecoder, SSEDecoder
from litestream.wire import Event


def feed_all(decoder, pieces):
    events = []
    for piece in pieces:
        events.extend(decoder.feed(piece))
    events.extend(decoder.close())
    return events


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
