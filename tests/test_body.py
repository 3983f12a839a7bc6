from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litestream._body import MAX_INFLATE_PER_READ, BodyReader, read_capped
from litestream.errors import ProtocolError, StreamConnectionError


class _Pieces:
    """A socket file whose read1 returns the given pieces, one per call."""

    def __init__(self, pieces):
        self.pieces = list(pieces)

    def read1(self, size):
        return self.pieces.pop(0) if self.pieces else b""


class _HTTPResponse:
    def __init__(self, pieces, chunked, length=None):
        self.fp = _Pieces(pieces)
        self.chunked = chunked
        self.length = length
        self.closed_by_reader = False

    def _close_conn(self):
        self.closed_by_reader = True


class _Raw:
    def __init__(self, http_response):
        self._fp = http_response


class _Response:
    def __init__(self, pieces, chunked=True, length=None, encoding=None):
        self.http = _HTTPResponse(pieces, chunked, length)
        self.raw = _Raw(self.http)
        self.headers = {"content-encoding": encoding} if encoding else {}


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


def read_all(reader: BodyReader) -> bytes:
    out = []
    while True:
        data = reader.read()
        if not data:
            return b"".join(out)
        out.append(data)


def test_one_read_returns_every_chunk_that_arrived():
    response = _Response([chunked(b"data: a\n\n", b"data: b\n\n")])
    reader = BodyReader(response)
    assert reader.read() == b"data: a\n\ndata: b\n\n"
    assert reader.read() == b""
    assert reader.complete and response.http.closed_by_reader


def test_chunk_extensions_and_trailers_are_skipped():
    body = b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"
    reader = BodyReader(_Response([body]))
    assert read_all(reader) == b"hello"
    assert reader.complete


def test_connection_closed_mid_body_is_a_connection_error():
    reader = BodyReader(_Response([b"5\r\nhel"]))
    assert reader.read() == b"hel"
    with pytest.raises(StreamConnectionError):
        reader.read()


def test_malformed_size_line_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="size line"):
        BodyReader(_Response([b"zz\r\nhello\r\n"])).read()


def test_sized_body_stops_at_its_length():
    reader = BodyReader(_Response([b"abc", b"de"], chunked=False, length=5))
    assert read_all(reader) == b"abcde"
    assert reader.complete


def test_sized_body_cut_short_is_a_connection_error():
    reader = BodyReader(_Response([b"abc"], chunked=False, length=5))
    assert reader.read() == b"abc"
    with pytest.raises(StreamConnectionError, match="2 bytes"):
        reader.read()


def test_body_until_eof_when_no_length():
    reader = BodyReader(_Response([b"abc", b"de"], chunked=False, length=None))
    assert read_all(reader) == b"abcde"
    assert reader.complete


PAYLOAD = [b"data: " + bytes([65 + i]) * (i * 7 + 1) + b"\n\n" for i in range(12)]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(chunked(*PAYLOAD))), max_size=10))
def test_any_split_of_the_wire_gives_the_same_body(cuts):
    wire = chunked(*PAYLOAD)
    points = sorted(set(cuts))
    pieces = [wire[a:b] for a, b in zip([0, *points], [*points, len(wire)], strict=True)]
    reader = BodyReader(_Response([p for p in pieces if p]))
    assert read_all(reader) == b"".join(PAYLOAD)
    assert reader.complete


@pytest.mark.parametrize("encoding, compress", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
])
def test_a_compressed_body_is_decompressed_as_it_arrives(encoding, compress):
    body = compress(b"".join(PAYLOAD))
    wire = chunked(*[body[i:i + 9] for i in range(0, len(body), 9)])
    pieces = [wire[i:i + 13] for i in range(0, len(wire), 13)]
    reader = BodyReader(_Response(pieces, encoding=encoding))
    assert read_all(reader) == b"".join(PAYLOAD)


def test_an_unreadable_encoding_is_a_clear_protocol_error():
    with pytest.raises(ProtocolError, match="'br'"):
        BodyReader(_Response([b"0\r\n\r\n"], encoding="br"))


def test_one_small_compressed_read_inflates_at_most_the_bound_per_call():
    text = b"x" * (MAX_INFLATE_PER_READ * 20 + 7)
    compressed = gzip.compress(text)
    assert len(compressed) < MAX_INFLATE_PER_READ  # one socket read holds it all
    reader = BodyReader(_Response([compressed], chunked=False, length=len(compressed),
                                  encoding="gzip"))
    sizes = []
    out = []
    while True:
        data = reader.read()
        if not data:
            break
        sizes.append(len(data))
        out.append(data)
    assert b"".join(out) == text
    assert max(sizes) == MAX_INFLATE_PER_READ


def test_read_capped_reads_a_body_at_its_cap_and_refuses_one_byte_more():
    body = b"y" * 1000
    assert read_capped(BodyReader(_Response([body], chunked=False, length=1000)), 1000) == body
    with pytest.raises(ProtocolError, match="larger than 999 bytes"):
        read_capped(BodyReader(_Response([body], chunked=False, length=1000)), 999)
    truncated = read_capped(BodyReader(_Response([body], chunked=False, length=1000)), 10,
                            truncate=True)
    assert truncated == b"y" * 10


def test_many_whole_chunks_in_one_read_come_back_in_one_piece():
    events = [b"data: %d\n\n" % number for number in range(500)]
    reader = BodyReader(_Response([chunked(*events)]))
    assert reader.read() == b"".join(events)
    assert reader.read() == b"" and reader.complete


@pytest.mark.parametrize("wire, good, message", [
    (b"5\r\nhelloXX\r\n", b"hello", "no CRLF after a chunk"),
    (b"2\r\nhi\r\n5\r\nhello\r\nzz\r\n", b"hihello", "size line b'zz'"),
    (b"5;ext\r\nhello\r\n;\r\n", b"hello", "size line b';'"),
    (b"2\r\nhi\r\n" + b"1" * 5000, b"hi", "a size line too long"),
    (b"zz\r\nhello\r\n", b"", "size line b'zz'"),
])
def test_a_malformed_chunk_is_a_protocol_error_after_the_good_ones(wire, good, message):
    reader = BodyReader(_Response([wire]))
    if good:
        assert reader.read() == good  # what came before the fault is delivered
    with pytest.raises(ProtocolError, match=message):
        reader.read()
