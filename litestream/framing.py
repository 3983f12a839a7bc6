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

import attrs
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

_set_data, _set_name, _set_unframed = (
    Event.__dict__[field.name].__set__ for field in attrs.fields(Event)
)


def _event(data: str, name: Optional[str]) -> Event:
    """Return ``Event(data, name)`` without attrs' ``__init__`` (one per event on the hot path)."""
    event = object.__new__(Event)
    _set_data(event, data)
    _set_name(event, name)
    _set_unframed(event, False)
    return event


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
        separator = self._separator
        blocks: list[bytes] = []
        if buffer:
            # Finish the held-back block first, scanning only bytes not yet scanned.
            start = max(0, self._scanned - len(separator) + 1)
            buffer += data
            end = buffer.find(separator, start)
            if end < 0:
                return blocks, self._check_size()
            blocks.append(bytes(buffer[:end]))
            data = bytes(buffer[end + len(separator):])
            buffer.clear()
        # One split gives the same blocks as finding separators left to right.
        parts = data.split(separator)
        rest = parts.pop()
        if blocks:
            blocks.extend(parts)
        else:
            blocks = parts
        if rest:
            buffer += rest
        return blocks, self._check_size()

    def _check_size(self) -> Optional[ProtocolError]:
        """Note what is scanned; drop the buffer and return the error when it grew too big."""
        buffer = self._buffer
        self._scanned = len(buffer)
        if len(buffer) <= self._max_event_size:
            return None
        size = len(buffer)
        buffer.clear()
        self._scanned = 0
        return ProtocolError(
            f"a stream event exceeded the maximum event size of "
            f"{self._max_event_size} bytes ({size} bytes and counting)"
        )

    def close(self) -> tuple[list[bytes], Optional[bytes]]:
        """Return the blocks a held-back final CR completes, and the unterminated rest, if any."""
        blocks: list[bytes] = []
        if self._carriage_return:
            blocks, _ = self.feed(b"\n")  # the CR ended a line; no LF will follow now
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        self._carriage_return = False
        return blocks, (rest if rest.strip() else None)


#: The SSE field names; any other line of an SSE body is a field the spec ignores.
_SSE_FIELDS = frozenset({b"data", b"event", b"id", b"retry"})
_FIELD_PREFIXES = (b"data", b"event", b"id", b"retry", b":")


class SSEDecoder:
    """Incremental Server-Sent Events decoder.

    Comment lines (``:`` keepalives) are dropped; ``event:`` names and
    multi-line ``data:`` fields are honoured (parsed by sseclient-py); events
    without data are not dispatched, as the SSE specification says.

    An event is dispatched only at its closing blank line. When the body
    ends without one, the unfinished event is discarded, as the WHATWG
    specification says ("if the file ends in the middle of an event, before
    the final empty line, the incomplete event is not dispatched"): a body
    cut mid-event is then a truncation the provider's parser reports, unless
    its protocol had already said the end was reached.

    Lines that are no SSE field and start a JSON value (``{`` or ``[``),
    with the field-less lines that follow them in the same block, are not
    dropped as the spec would: each becomes an ``unframed`` event, delivered
    before the block's own event and also at the end of the body, since
    some servers (Gemini) write an error into an SSE stream that way.
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
            if block.startswith(b"data: ") and b"\n" not in block:
                # The common case, one `data:` line, takes the short way.
                yield _event(_decode(block[6:]), None)
            elif block.startswith(b"event: ") and block.count(b"\n") == 1:
                # The other common one, `event:` then one `data:` line (Anthropic).
                name_end = block.index(b"\n")
                if block.startswith(b"data: ", name_end + 1):
                    try:
                        name = block[7:name_end].decode("utf-8")
                        text = block[name_end + 7:].decode("utf-8")
                    except UnicodeDecodeError:
                        yield from self._parse(block, complete=True)
                        continue
                    yield _event(text, name if name and name != "message" else None)
                else:
                    yield from self._parse(block, complete=True)
            else:
                yield from self._parse(block, complete=True)
        if overflow is not None:
            raise overflow

    def close(self) -> list[Event]:
        """Return the unframed lines of an unterminated rest; its SSE event is discarded."""
        blocks, rest = self._lines.close()
        events = [event for block in blocks for event in self._parse(block, complete=True)]
        if rest is not None:
            events.extend(self._parse(rest, complete=False))
        return events

    @staticmethod
    def _parse(block: bytes, complete: bool) -> list[Event]:
        """Return the unframed lines of ``block``, then its event when ``complete``."""
        events: list[Event] = []
        block = block.lstrip(b"\n")
        if not block:
            return events
        lines = block.split(b"\n")
        if not all(line.startswith(_FIELD_PREFIXES) for line in lines):
            fields, unframed = _split_unframed(lines)
            events.extend(Event(_decode(line), unframed=True) for line in unframed)
            block = b"\n".join(fields)
        if not complete or not block or (block.startswith(b":") and b"\n" not in block):
            return events
        try:
            parsed = list(SSEClient([block + b"\n\n"]).events())
        except UnicodeDecodeError as error:
            raise ProtocolError(f"invalid UTF-8 in stream at byte {error.start}") from None
        if parsed:
            name = parsed[0].event if parsed[0].event != "message" else None
            events.append(Event(parsed[0].data, name))
        return events


def _split_unframed(lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Return ``(field lines, unframed lines)`` of one block's lines."""
    fields: list[bytes] = []
    unframed: list[bytes] = []
    in_json = False
    for line in lines:
        name = line.split(b":", 1)[0]
        if not line or line.startswith(b":") or name in _SSE_FIELDS:
            in_json = False
            fields.append(line)
        elif in_json or line.lstrip()[:1] in (b"{", b"["):
            in_json = True
            unframed.append(line)
        # Any other line is a field the SSE spec ignores.
    return fields, unframed


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
                yield _event(_decode(line), None)
        if overflow is not None:
            raise overflow

    def close(self) -> list[Event]:
        """Return the last line, also when the body ended without a newline.

        An unterminated last line is delivered, as ollama-python and
        httpx's line readers do: a whole JSON object needs no newline to be
        read, and a line cut mid-object fails to parse in the provider.
        """
        lines, rest = self._lines.close()
        if rest is not None:
            lines.append(rest)
        return [Event(_decode(line)) for line in lines if line.strip()]


#: Either decoder; both take bytes with ``feed``/``iter_feed`` and end with ``close``.
Decoder = Union[SSEDecoder, NDJSONDecoder]


def make_decoder(framing: str, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> Decoder:
    """Return a decoder for ``"sse"`` or ``"ndjson"`` framing."""
    if framing == "ndjson":
        return NDJSONDecoder(max_event_size)
    return SSEDecoder(max_event_size)
