"""Reading a streamed response body in batches, as fast as the socket delivers it.

urllib3's ``read1`` on a chunked body returns at most one HTTP chunk per
call, and servers send one event per HTTP chunk: that would mean one read,
one parse call and one cross-thread hand-off per token. :class:`BodyReader`
reads whatever the socket buffer holds (one ``recv`` at most per call) and
undoes the chunked transfer encoding itself, so one call returns every event
that has arrived. It never waits for more bytes than are already there.
"""

from __future__ import annotations

import socket
import zlib
from typing import Any, Callable, Optional

from litestream import _poller, errors

__all__ = ["BodyReader", "MAX_INFLATE_PER_READ", "read_capped"]

_READ_SIZE = 65536
#: The most bytes one ``read()`` of a compressed body inflates to.
MAX_INFLATE_PER_READ = 65536
_MAX_SIZE_LINE = 4096


class BodyReader:
    """Incremental reader of one response body (chunked, sized, or until EOF).

    ``read()`` returns the next body bytes, ``b""`` once the body is complete,
    and raises :class:`~litestream.errors.StreamConnectionError` when the
    connection ends before the body does. ``complete`` tells whether the
    body's end was reached, so the connection may be reused.

    With ``poll`` true, a read over a plain (not TLS) socket may wait for
    its bytes through the process's poller (:mod:`litestream._poller`, used
    while many streams read at once); the caller then calls
    :meth:`end_turn` once a read's bytes are parsed, and :meth:`close`
    before the connection is released or closed.
    """

    def __init__(self, response: Any, poll: bool = False) -> None:
        # litestream._http's Response holds http.client's response; a
        # requests.Response holds urllib3's, which holds http.client's.
        http_response = getattr(response, "http_response", None)
        raw = response if http_response is not None else response.raw
        if http_response is None:
            http_response = getattr(raw, "_fp", None)
        socket_file = getattr(http_response, "fp", None)
        self._fallback: Optional[Any] = None
        if socket_file is None or not hasattr(socket_file, "read1"):
            self._fallback = raw  # not the urllib3/http.client pair we know: read through it
        self._http_response = http_response
        self._file = socket_file
        self._chunked = bool(getattr(http_response, "chunked", False))
        self._remaining: Optional[int] = getattr(http_response, "length", None)
        self._chunk_left = 0
        self._need_line_end = False
        self._in_trailers = False
        self._pending = b""
        #: A framing error met after some of a read's bytes: raised by the next read.
        self._error: Optional[errors.ProtocolError] = None
        self.complete = False
        self._decompressor: Any = None
        self._ticket: Optional[_poller.Ticket] = None
        #: Whether the socket file's buffer may hold bytes (no wait for the socket then).
        self._buffered = True
        #: Whether the next read goes on without the poller (its caller parked for it).
        self._parked = False
        if poll and self._fallback is None:
            sock = getattr(getattr(socket_file, "raw", None), "_sock", None)
            # TLS sockets stay out: a readable socket may hold part of a record
            # only, and the read would then block holding a turn.
            if type(sock) is socket.socket and sock.fileno() >= 0:
                self._ticket = _poller.ticket(sock.fileno())
        if self._fallback is None:
            headers = getattr(response, "headers", None) or {}
            encoding = (headers.get("content-encoding") or "").strip().lower()
            self._decompressor = _decompressor_for(encoding)

    def read(self) -> bytes:
        """Return the body bytes that have arrived (at least one), or ``b""`` at its end.

        A body a server compressed although we asked for ``identity`` (gzip
        or deflate) is decompressed as it arrives, at most
        :data:`MAX_INFLATE_PER_READ` bytes per call: a small compressed read
        may stand for gigabytes, and what it has not yet given out waits in
        the decompressor until the next call.
        """
        decompressor = self._decompressor
        if decompressor is None:
            return self._read_encoded()
        while True:
            data = decompressor.unconsumed_tail
            if not data:
                data = self._read_encoded()
                if not data:
                    self._decompressor = None
                    return decompressor.flush()
            try:
                text = decompressor.decompress(data, MAX_INFLATE_PER_READ)
            except zlib.error as error:
                raise errors.ProtocolError(
                    f"a compressed body that does not decompress: {error}"
                ) from None
            if text:
                return text

    def park_ticket(self) -> Optional[_poller.Ticket]:
        """Return the ticket to park on before the next read, or None to read at once.

        None when the next read needs no wait through the poller (bytes are
        buffered, the body is done, the poller is not in use): then just
        read. Otherwise the caller parks on the ticket (or, when parking is
        refused, does not) and then reads: that read waits for nothing more.
        """
        ticket = self._ticket
        if (ticket is None or self._buffered or self.complete or self._error is not None
                or self._decompressor is not None or not _poller.crowded()):
            return None
        ticket.end_turn()
        self._parked = True
        return ticket

    def end_turn(self) -> None:
        """Let the next polled reader run: the last read's bytes are parsed."""
        ticket = self._ticket
        if ticket is not None:
            ticket.end_turn()

    def close(self) -> None:
        """Stop using the poller; call it before the connection is released or closed."""
        ticket = self._ticket
        if ticket is not None:
            self._ticket = None
            ticket.close()

    def _read1(self, size: int) -> bytes:
        """One read of the socket file, through the poller when it is in use."""
        ticket = self._ticket
        if ticket is not None:
            if self._parked:
                self._parked = False  # the turn came (or the poller is not in use)
            else:
                ticket.end_turn()  # never hold a turn across a read that may block
                if not self._buffered:
                    ticket.wait()
            data = self._file.read1(size)
            # read1 empties the buffer unless it held at least ``size`` bytes
            # (a BufferedReader's first read1 after the headers may return bytes
            # it buffered with them; later ones read the socket once).
            self._buffered = len(data) >= size
            return data
        return self._file.read1(size)

    def _read_encoded(self) -> bytes:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        if self.complete:
            return b""
        if self._fallback is not None:
            data = self._fallback.read1(_READ_SIZE)
            self.complete = not data
            return data
        if not self._chunked:
            return self._read_sized()
        while True:
            raw = self._read1(_READ_SIZE)
            if not raw:
                raise errors.StreamConnectionError(
                    "the connection closed in the middle of the response body"
                )
            data = self._decode_chunks(raw)
            if data or self.complete:
                if self.complete:
                    self._mark_done()
                return data

    def _read_sized(self) -> bytes:
        remaining = self._remaining
        if remaining == 0:
            self.complete = True
            self._mark_done()
            return b""
        size = _READ_SIZE if remaining is None else min(_READ_SIZE, remaining)
        data = self._read1(size)
        if not data:
            if remaining is not None:
                raise errors.StreamConnectionError(
                    f"the connection closed with {remaining} bytes of the body missing"
                )
            self.complete = True  # a body delimited by the end of the connection
            return b""
        if remaining is not None:
            self._remaining = remaining - len(data)
        return data

    def _decode_chunks(self, raw: bytes) -> bytes:
        """Undo chunked transfer encoding for the bytes of one read.

        The common case, a size line with its whole chunk and the CRLF after
        it in this read, takes one turn of the loop: a server that writes
        one event per HTTP chunk sends hundreds of them per read. Malformed
        encoding after some good chunks returns those first; the next read
        raises its :class:`~litestream.errors.ProtocolError`.
        """
        data = self._pending + raw if self._pending else raw
        position, end_of_data = 0, len(data)
        pieces = []
        chunk_left = self._chunk_left
        need_line_end = self._need_line_end
        try:
            while position < end_of_data:
                if chunk_left:
                    take = min(chunk_left, end_of_data - position)
                    pieces.append(data[position:position + take])
                    position += take
                    chunk_left -= take
                    need_line_end = not chunk_left
                    continue
                line_end = data.find(b"\r\n", position)
                if line_end < 0:
                    if end_of_data - position > _MAX_SIZE_LINE:
                        raise errors.ProtocolError(
                            "malformed chunked encoding: a size line too long")
                    break
                line_start, position = position, line_end + 2
                if need_line_end:
                    if line_end != line_start:
                        raise errors.ProtocolError(
                            "malformed chunked encoding: no CRLF after a chunk")
                    need_line_end = False
                    continue
                if self._in_trailers:
                    if line_end == line_start:
                        self.complete = True
                        break
                    continue
                size = _chunk_size(data[line_start:line_end])
                if size == 0:
                    self._in_trailers = True
                    continue
                stop = position + size
                if data[stop:stop + 2] == b"\r\n":
                    pieces.append(data[position:stop])
                    position = stop + 2
                else:
                    chunk_left = size
        except errors.ProtocolError as error:
            if not pieces:
                raise
            self._error = error
        finally:
            self._chunk_left = chunk_left
            self._need_line_end = need_line_end
        self._pending = data[position:] if not self.complete else b""
        return b"".join(pieces)

    def _mark_done(self) -> None:
        # http.client refuses the next request on this connection until it
        # sees the previous response closed; the socket itself stays open.
        close = getattr(self._http_response, "_close_conn", None)
        if close is not None:
            close()


def _chunk_size(line: bytes) -> int:
    """Return the size a chunk's size line gives (its extensions ignored)."""
    try:
        return int(line, 16)
    except ValueError:
        pass
    try:
        return int(line.split(b";", 1)[0], 16)
    except ValueError:
        raise errors.ProtocolError(
            f"malformed chunked encoding: size line {line[:40]!r}"
        ) from None


def _decompressor_for(encoding: str) -> Any:
    """Return a streaming decompressor for a Content-Encoding, or None for none."""
    if encoding in ("", "identity"):
        return None
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    raise errors.ProtocolError(
        f"the server compressed the stream with {encoding!r}, which litestream cannot read "
        f"(it asks for identity and reads gzip and deflate)"
    )


def read_capped(body: BodyReader, limit: int, truncate: bool = False,
                on_bytes: Optional[Callable[[], None]] = None) -> bytes:
    """Read a whole body of at most ``limit`` bytes (after decompression).

    Args:
        body: the reader.
        limit: the most bytes kept.
        truncate: past ``limit``, return the first ``limit`` bytes (an error
            body only needs its start) instead of raising.
        on_bytes: called after each read that returned bytes (the idle deadline).

    Raises:
        ProtocolError: the body is larger than ``limit`` and ``truncate`` is false.
    """
    pieces = bytearray()
    while True:
        data = body.read()
        if not data:
            return bytes(pieces)
        if on_bytes is not None:
            on_bytes()
        if len(pieces) + len(data) > limit:
            if truncate:
                pieces += data[:limit - len(pieces)]
                return bytes(pieces)
            raise errors.ProtocolError(
                f"the response body is larger than {limit} bytes, the most litestream reads")
        pieces += data
