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
#: What ``bytes.strip()`` strips; ``str.strip()`` strips more (NBSP, U+2028...).
_ASCII_SPACE = " \t\n\r\x0b\x0c"

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
        # The byte a separator repeats (\n of \n\n): rfind alone may then
        # not find the separator a left-to-right split finds. -1: none.
        self._run_byte = separator[0] if len(separator) > 1 else -1
        self._max_event_size = max_event_size
        self._buffer = bytearray()
        self._scanned = 0
        self._carriage_return = False
        self._start: Optional[bytes] = b""  # bytes of a possible BOM; None once past it

    def feed(self, data: bytes) -> tuple[Optional[bytes], Optional[ProtocolError]]:
        """Return the blocks completed by ``data`` and the error if the rest grew too big.

        The blocks come as one ``region``: the bytes up to the last separator,
        so ``region.split(separator)`` gives them (None when ``data``
        completes none). One region lets a decoder decode a whole read at
        once rather than block by block. The error is returned, not raised,
        so the blocks before it can be delivered first.
        """
        if self._start is not None:
            data = self._start + data
            if len(data) < len(_BOM) and _BOM.startswith(data):
                self._start = data  # wait for the rest of what may be a BOM
                return None, None
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
        if buffer:
            # Scan only bytes not yet scanned: the buffer holds no separator.
            start = max(0, self._scanned - len(separator) + 1)
            buffer += data
            end = buffer.rfind(separator, start)
            if end < 0:
                return None, self._check_size()
            if end > start and buffer[end - 1] == self._run_byte:
                end = _split_end(buffer, separator, start)
            region = bytes(buffer[:end])
            del buffer[:end + len(separator)]
            return region, self._check_size()
        end = data.rfind(separator)
        if end < 0:
            buffer += data
            return None, self._check_size()
        if end > 0 and data[end - 1] == self._run_byte:
            end = _split_end(data, separator, 0)
        if end + len(separator) < len(data):
            buffer += data[end + len(separator):]
        return data[:end], self._check_size()

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
            region, _ = self.feed(b"\n")  # the CR ended a line; no LF will follow now
            if region is not None:
                blocks = region.split(self._separator)
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        self._carriage_return = False
        return blocks, (rest if rest.strip() else None)


def _split_end(data: Union[bytes, bytearray], separator: bytes, start: int) -> int:
    """Return where the last separator that splitting ``data[start:]`` finds begins.

    Needed when ``rfind``'s answer is preceded by the separator's byte (a
    run of three newlines for a blank-line separator): splitting reads left to right and
    cuts such a run elsewhere.
    """
    rest = data[start:].split(separator)[-1]
    return len(data) - len(rest) - len(separator)


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
        events, error = self.decode(data)
        if error is not None:
            raise error
        return events

    def iter_feed(self, data: bytes) -> Iterator[Event]:
        """Yield the events completed by ``data``, then raise for bad data after them.

        Unlike :meth:`feed`, the events that precede a malformed one in the
        same read are yielded before the ProtocolError, so that a reader can
        deliver them first.
        """
        events, error = self.decode(data)
        yield from events
        if error is not None:
            raise error

    def decode(self, data: bytes) -> tuple[list[Event], Optional[ProtocolError]]:
        """Return the events completed by ``data`` and the error met after them, if any.

        The reader's form of :meth:`iter_feed`: the events that precede
        malformed data (invalid UTF-8, an oversized event) come with the
        error instead of being lost to it. The blocks of a read are decoded
        as one string when they are valid UTF-8 (the common case, one
        ``decode`` and one ``split`` per read); otherwise block by block, so
        the error names the byte of the event it is in.
        """
        region, overflow = self._lines.feed(data)
        if region is None:
            return [], overflow
        events: list[Event] = []
        try:
            text = region.decode("utf-8")
        except UnicodeDecodeError:
            error = self._add_raw_blocks(region.split(b"\n\n"), events)
        else:
            if text.startswith("data: ") and "\n" not in text:
                # One `data:` line alone: a server writing one event per HTTP chunk.
                return [_event(text[6:], None)], overflow
            error = self._add_blocks(text.split("\n\n"), events)
        return events, error or overflow

    def _add_blocks(self, blocks: list[str], events: list[Event]) -> Optional[ProtocolError]:
        """Append the events of decoded blocks to ``events``; return the error that stopped it."""
        append = events.append
        try:
            for block in blocks:
                if block.startswith("data: ") and "\n" not in block:
                    # The common case, one `data:` line, takes the short way.
                    append(_event(block[6:], None))
                elif block.startswith("event: ") and block.count("\n") == 1:
                    # The other common one, `event:` then one `data:` line (Anthropic).
                    name_end = block.index("\n")
                    if block.startswith("data: ", name_end + 1):
                        name = block[7:name_end]
                        append(_event(block[name_end + 7:],
                                      name if name and name != "message" else None))
                    else:
                        events.extend(self._parse(block.encode("utf-8"), complete=True))
                else:
                    events.extend(self._parse(block.encode("utf-8"), complete=True))
        except ProtocolError as error:
            return error
        return None

    def _add_raw_blocks(self, blocks: list[bytes], events: list[Event]) -> Optional[ProtocolError]:
        """Append the events of blocks some of which are not UTF-8; return the first error."""
        for raw in blocks:
            try:
                block = raw.decode("utf-8")
            except UnicodeDecodeError:
                try:
                    if raw.startswith(b"data: ") and b"\n" not in raw:
                        _decode(raw[6:])  # raises, naming the byte within the event's data
                    events.extend(self._parse(raw, complete=True))
                except ProtocolError as error:
                    return error
                continue
            error = self._add_blocks([block], events)
            if error is not None:
                return error
        return None

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
        events, error = self.decode(data)
        if error is not None:
            raise error
        return events

    def iter_feed(self, data: bytes) -> Iterator[Event]:
        """Yield the lines completed by ``data`` as events, then raise for bad data after them."""
        events, error = self.decode(data)
        yield from events
        if error is not None:
            raise error

    def decode(self, data: bytes) -> tuple[list[Event], Optional[ProtocolError]]:
        """Return the lines completed by ``data`` as events, and the error met after them."""
        region, overflow = self._lines.feed(data)
        if region is None:
            return [], overflow
        events: list[Event] = []
        try:
            text = region.decode("utf-8")
        except UnicodeDecodeError:
            for line in region.split(b"\n"):
                if line.strip():
                    try:
                        events.append(_event(_decode(line), None))
                    except ProtocolError as error:
                        return events, error
            return events, overflow
        for line in text.split("\n"):
            # Blank means ASCII white space only, as for the bytes the line was.
            if line.strip(_ASCII_SPACE):
                events.append(_event(line, None))
        return events, overflow

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
