"""Framing: raw response bytes in, wire events out (SSE and NDJSON).

The decoders are incremental: ``feed`` takes whatever one socket read
returned and gives back every event completed by it, so an event is
delivered as soon as its last byte arrives. Bytes are split into events
before UTF-8 decoding, so a character split across reads survives. An event
larger than ``max_event_size`` raises :class:`~litestream.errors.ProtocolError`
before memory grows further.
"""

from __future__ import annotations

from typing import Iterator, Optional, Union

from sseclient import SSEClient

from litestream.errors import ProtocolError
from litestream.wire import Event

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "NDJSONDecoder", "SSEDecoder", "make_decoder"]

#: Default bound on the size of one event (4 MiB).
DEFAULT_MAX_EVENT_SIZE = 4 * 1024 * 1024


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(f"invalid UTF-8 in stream at byte {error.start} of an event") from None


_BOM = b"\xef\xbb\xbf"


class _LineBuffer:
    """Holds bytes until a separator arrives; normalizes CRLF and CR line ends to LF.

    A UTF-8 byte order mark at the very start of the body is dropped, as the
    SSE specification says (it would otherwise hide the first field name).
    """

    def __init__(self, separator: bytes, max_event_size: int) -> None:
        self._separator = separator
        self._max_event_size = max_event_size
        self._buffer = bytearray()
        self._scanned = 0
        self._carriage_return = False
        self._start: Optional[bytes] = b""  # bytes of a possible BOM; None once past it

    def feed(self, data: bytes) -> tuple[list[bytes], Optional[ProtocolError]]:
        """Return the blocks completed by ``data``, and the error if the rest grew too big.

        The error is returned, not raised, so the blocks before it can be
        delivered first.
        """
        if self._start is not None:
            data = self._start + data
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._start = data  # wait for the rest of what may be a BOM
                return [], None
            self._start = None
            if data.startswith(_BOM):
                data = data[len(_BOM):]
        if self._carriage_return:
            data = b"\r" + data
            self._carriage_return = False
        if data.endswith(b"\r"):
            # It may be the first half of a \r\n split across two reads.
            self._carriage_return = True
            data = data[:-1]
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer
        buffer += data
        separator = self._separator
        start = max(0, self._scanned - len(separator) + 1)
        blocks = []
        position = 0
        while True:
            end = buffer.find(separator, start)
            if end < 0:
                break
            blocks.append(bytes(buffer[position:end]))
            position = start = end + len(separator)
        if position:
            del buffer[:position]
        self._scanned = len(buffer)
        overflow = None
        if len(buffer) > self._max_event_size:
            size = len(buffer)
            buffer.clear()
            self._scanned = 0
            overflow = ProtocolError(
                f"a stream event exceeded the maximum event size of "
                f"{self._max_event_size} bytes ({size} bytes and counting)"
            )
        return blocks, overflow

    def close(self) -> Optional[bytes]:
        """Return the unterminated rest, if any."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._carriage_return = False
        return rest if rest.strip() else None


class SSEDecoder:
    """Incremental Server-Sent Events decoder.

    Comment lines (``:`` keepalives) are dropped; ``event:`` names and
    multi-line ``data:`` fields are honoured (parsed by sseclient-py); events
    without data are not dispatched, as the SSE specification says.
    """

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self._lines = _LineBuffer(b"\n\n", max_event_size)

    def feed(self, data: bytes) -> list[Event]:
        """Return the events completed by ``data``; raise ProtocolError for bad data."""
        return list(self.iter_feed(data))

    def iter_feed(self, data: bytes) -> Iterator[Event]:
        """Yield the events completed by ``data``, then raise for bad data after them.

        Unlike :meth:`feed`, the events that precede a malformed one in the
        same read are yielded before the ProtocolError, so that a reader can
        deliver them first.
        """
        blocks, overflow = self._lines.feed(data)
        for block in blocks:
            event = self._parse(block)
            if event is not None:
                yield event
        if overflow is not None:
            raise overflow

    def close(self) -> list[Event]:
        """Return the last event when the body ended without its blank line."""
        rest = self._lines.close()
        if rest is None:
            return []
        event = self._parse(rest)
        return [event] if event is not None else []

    @staticmethod
    def _parse(block: bytes) -> Optional[Event]:
        # The common case, one `data:` line, is parsed here; anything else
        # (event names, several data lines, comments) goes to sseclient-py.
        if block.startswith(b"data: ") and b"\n" not in block:
            return Event(_decode(block[6:]))
        block = block.lstrip(b"\n")
        if not block:
            return None
        if block.startswith(b":") and b"\n" not in block:
            return None
        try:
            parsed = list(SSEClient([block + b"\n\n"]).events())
        except UnicodeDecodeError as error:
            raise ProtocolError(f"invalid UTF-8 in stream at byte {error.start}") from None
        if not parsed:
            return None
        event = parsed[0]
        name = event.event if event.event != "message" else None
        return Event(event.data, name)


class NDJSONDecoder:
    """Incremental newline-delimited JSON decoder: one event per non-blank line."""

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self._lines = _LineBuffer(b"\n", max_event_size)

    def feed(self, data: bytes) -> list[Event]:
        """Return the lines completed by ``data`` as events; raise ProtocolError for bad data."""
        return list(self.iter_feed(data))

    def iter_feed(self, data: bytes) -> Iterator[Event]:
        """Yield the lines completed by ``data`` as events, then raise for bad data after them."""
        lines, overflow = self._lines.feed(data)
        for line in lines:
            if line.strip():
                yield Event(_decode(line))
        if overflow is not None:
            raise overflow

    def close(self) -> list[Event]:
        """Return the last line when the body ended without a newline."""
        rest = self._lines.close()
        return [Event(_decode(rest))] if rest is not None else []


#: Either decoder; both take bytes with ``feed``/``iter_feed`` and end with ``close``.
Decoder = Union[SSEDecoder, NDJSONDecoder]


def make_decoder(framing: str, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> Decoder:
    """Return a decoder for ``"sse"`` or ``"ndjson"`` framing."""
    if framing == "ndjson":
        return NDJSONDecoder(max_event_size)
    return SSEDecoder(max_event_size)
