"""Wire types: what passes between framing, transport and providers.

This module sits at the bottom of the package (it imports only
:mod:`litestream.errors` and :mod:`litestream.types`), so that the framing
and the transport can speak of events, requests and parsers without
loading a single provider.

- :class:`Event`: one framed wire event (an SSE event or one NDJSON line).
- :class:`HTTPRequest`: everything the transport needs to send one request.
- :class:`EventParser`: the per-stream object that turns events into chunks.
- :class:`Dialect`: what the transport asks of a provider (a parser
  factory and an error parser), so that it never imports one.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, Sequence

import attrs

from litestream import errors
from litestream.types import Chunk

__all__ = ["Dialect", "Event", "EventParser", "HTTPRequest"]


@attrs.frozen
class Event:
    """One framed wire event: an SSE event (``event`` name and joined ``data``) or one NDJSON line.

    ``event`` is ``None`` for NDJSON lines and for SSE events without an
    ``event:`` field. ``unframed`` marks one line of JSON that came inside an
    SSE body without any SSE field (Gemini sends errors that way); parsers
    that expect none ignore such events.
    """

    data: str
    event: Optional[str] = None
    unframed: bool = False


def _redacted_headers(headers: Mapping[str, str]) -> str:
    return repr({
        name: "[REDACTED]" if errors.is_credential_header(name) else errors.redact(str(value))
        for name, value in headers.items()
    })


def _redacted_url(url: str) -> str:
    return repr(errors.redact(url))


@attrs.frozen
class HTTPRequest:
    """Everything the transport needs to send one request.

    ``framing`` is ``"sse"`` or ``"ndjson"`` for streams, ``"json"`` for a
    whole body. The repr hides credentials (``Authorization``, ``x-api-key``
    and every other header :func:`~litestream.errors.is_credential_header`
    names, a ``key=`` in the URL), since a repr may end up in a log or a
    traceback.
    """

    method: str
    url: str = attrs.field(repr=_redacted_url)
    headers: Mapping[str, str] = attrs.field(repr=_redacted_headers)
    json: Optional[Mapping[str, Any]] = None
    framing: str = "sse"


class EventParser(Protocol):
    """Per-stream state that turns wire events into chunks (one per stream).

    ``feed`` returns the chunks one event produces (possibly none) and raises
    a :class:`~litestream.errors.LitestreamError` for an in-band error event
    or malformed data. ``done`` becomes true once the provider's terminal
    event arrived; the transport stops reading then. ``finish`` is called at
    the end of the body and returns any last chunks, or raises when the body
    ended before the provider said it was complete.
    """

    done: bool

    def feed(self, event: Event) -> list[Chunk]:
        """Return the chunks ``event`` produces."""

    def feed_many(self, events: Sequence[Event], chunks: list[Chunk]) -> None:
        """Append the chunks of ``events`` to ``chunks``, stopping after the final event."""

    def finish(self) -> list[Chunk]:
        """Return the last chunks at the end of the body; raise when it was cut short."""


class Dialect(Protocol):
    """What the transport needs of a provider: its name, a parser per stream, its errors.

    :class:`~litestream.providers.base.Provider` is one; the transport is
    typed by this protocol, so it never imports a provider.
    """

    name: str

    def stream_parser(self, model: str) -> EventParser:
        """Return a fresh parser for one streamed answer."""

    def error_for_answer(
        self, status_code: int, body: str, headers: Mapping[str, str], model: str
    ) -> errors.LitestreamError:
        """Return the typed error for an HTTP error answer; never raise."""
