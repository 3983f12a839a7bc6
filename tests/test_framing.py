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


@pytest.mark.parametrize("tail", [b"data: tail", b"data: tail\n", b"event: e\ndata: tail\n"])
def test_unterminated_last_event_is_discarded_at_close(tail):
    # WHATWG: an event is dispatched only at its blank line; a cut body's
    # last event is incomplete, however whole its data lines look.
    assert feed_all(SSEDecoder(), [b"data: one\n\n" + tail]) == [Event("one")]


@pytest.mark.parametrize("newline", [b"\r", b"\r\n", b"\n"])
def test_blank_line_at_the_very_end_dispatches_the_last_event(newline):
    # A final CR is held back in case an LF follows; at the end it is a line end.
    assert feed_all(SSEDecoder(), [b"data: x" + newline + newline]) == [Event("x")]


def test_json_lines_outside_sse_fields_are_unframed_events():
    raw = (b'data: {"a": 1}\n\n{\n  "error": {\n    "code": 429\n  }\n}\n\n'
           b"data: after\n\n")
    assert feed_all(SSEDecoder(), [raw]) == [
        Event('{"a": 1}'),
        Event("{", unframed=True),
        Event('  "error": {', unframed=True),
        Event('    "code": 429', unframed=True),
        Event("  }", unframed=True),
        Event("}", unframed=True),
        Event("after"),
    ]


def test_unframed_lines_at_the_end_of_the_body_are_delivered():
    raw = b'data: {"a": 1}\n\n{"error": {"code": 500}}'
    assert feed_all(SSEDecoder(), [raw]) == [
        Event('{"a": 1}'), Event('{"error": {"code": 500}}', unframed=True)]


def test_unknown_fields_that_start_no_json_are_ignored():
    raw = b"foo: bar\nnot json\ndata: x\n\n"
    assert feed_all(SSEDecoder(), [raw]) == [Event("x")]


def test_ndjson_lines():
    raw = b'{"a": 1}\n\n{"b": 2}\r\n{"c"'
    decoder = NDJSONDecoder()
    assert decoder.feed(raw) == [Event('{"a": 1}'), Event('{"b": 2}')]
    assert decoder.feed(b": 3}") == []
    assert decoder.close() == [Event('{"c": 3}')]


def test_ndjson_final_line_without_newline_is_delivered():
    assert feed_all(NDJSONDecoder(), [b'{"a": 1}\n{"done": true}']) == [
        Event('{"a": 1}'), Event('{"done": true}')]
