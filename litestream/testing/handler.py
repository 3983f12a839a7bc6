"""The HTTP side of a FakeLLMServer: one handler per connection, keep-alive.

It reads a request, records it, and writes its reply: a whole JSON body, or
a chunked stream of the events the :mod:`~litestream.testing.encoders` made,
pausing, stalling or cutting the connection where the reply's faults say.
"""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any, Mapping, Optional, Sequence
from urllib.parse import parse_qs, urlsplit

import attrs

from litestream.testing import encoders
from litestream.testing.replies import Replay, Script, error_payload
from litestream.testing.state import Connection, RecordedRequest, ServerState, shutdown

__all__ = ["Context", "Handler"]


@attrs.frozen
class Context:
    """What a handler serves for: the server's shared state and its own connection."""

    state: ServerState
    connection: Connection


class Handler(BaseHTTPRequestHandler):
    """Serves the requests of one connection (keep-alive) for a FakeLLMServer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: Context  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: tests read `requests`, not logs."""

    def handle_one_request(self) -> None:
        """Serve one request; an empty read means the client closed the connection."""
        super().handle_one_request()
        if not self.raw_requestline:
            self.server.state.note_client_closed(self.server.connection)

    # -- plumbing ---------------------------------------------------------------

    @property
    def _state(self) -> ServerState:
        return self.server.state

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _write(self, data: bytes) -> bool:
        """Send ``data``; False (and the client marked gone) when the socket is closed."""
        try:
            self.wfile.write(data)
            return True
        except OSError:
            self.close_connection = True
            self._state.note_client_closed(self.server.connection)
            return False

    def _write_chunk(self, data: bytes) -> bool:
        return self._write(b"%x\r\n%b\r\n" % (len(data), data)) if data else True

    def _head(self, status: int, content_type: str, headers: Mapping[str, str],
              length: Optional[int]) -> bool:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
        else:
            self.send_header("Content-Length", str(length))
        request_id = f"req_fake{len(self._state.requests)}"
        self.send_header("x-request-id", request_id)
        self.send_header("request-id", request_id)
        for name, value in headers.items():
            self.send_header(name, str(value))
        try:
            self.end_headers()
            return True
        except OSError:
            self.close_connection = True
            self._state.note_client_closed(self.server.connection)
            return False

    def _cut(self) -> None:
        self.close_connection = True
        shutdown(self.connection)

    def _send_whole(self, status: int, content_type: str, body: bytes,
                    headers: Mapping[str, str], cut_after_bytes: Optional[int] = None) -> None:
        if not self._head(status, content_type, headers, len(body)):
            return
        if cut_after_bytes is not None and cut_after_bytes < len(body):
            self._write(body[:cut_after_bytes])
            self._cut()
            return
        self._write(body)

    def _send_stream(self, status: int, content_type: str, headers: Mapping[str, str],
                     events: Sequence[encoders.Event], delay: float,
                     cut_after_bytes: Optional[int] = None,
                     keepalive: bytes = b"", keepalive_interval: Optional[float] = None) -> None:
        if not self._head(status, content_type, headers, None):
            return
        budget = cut_after_bytes
        for event in events:
            if event.kind == encoders.STALL:
                self._stall(keepalive, keepalive_interval)
                return
            if delay > 0 and event.kind == encoders.CONTENT:
                if not self._state.pause(self.server.connection, delay):
                    self.close_connection = True
                    return
            data = event.data
            if budget is not None and len(data) >= budget:
                # Announce the whole event, send only part of it, then hang up.
                self._write(b"%x\r\n%b" % (len(data), data[:budget]))
                self._cut()
                return
            if not self._write_chunk(data):
                return
            if budget is not None:
                budget -= len(data)
        self._write(b"0\r\n\r\n")

    def _stall(self, keepalive: bytes, interval: Optional[float]) -> None:
        self.close_connection = True
        connection = self.server.connection
        if not (keepalive and interval):
            self._state.pause(connection, None)
            return
        while self._state.pause(connection, interval) and self._write_chunk(keepalive):
            pass

    # -- requests -------------------------------------------------------------

    def do_GET(self) -> None:
        """Answer the model-list paths; 404 elsewhere."""
        self._serve("GET")

    def do_POST(self) -> None:
        """Answer a chat request with the next queued reply."""
        self._serve("POST")

    def _serve(self, method: str) -> None:
        split = urlsplit(self.path)
        body = self._read_body()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        ctx = encoders.route(method, split.path, parsed)
        # Recorded and given its reply in one step (see ServerState.record).
        reply = self._state.record(RecordedRequest(
            method=method, path=split.path, query=parse_qs(split.query),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body, json=parsed, provider=ctx.provider if ctx else None,
        ), self.server.connection, takes_reply=ctx is not None)
        if ctx is None:
            listing = encoders.model_list(split.path) if method == "GET" else None
            status = 200 if listing is not None else 404
            payload = listing if listing is not None else {"error": {
                "message": f"FakeLLMServer: no route for {method} {split.path}",
                "type": "invalid_request_error", "code": "not_found"}}
            self._send_whole(status, "application/json", json.dumps(payload).encode(), {})
            return
        if isinstance(reply, Replay):
            self._serve_replay(reply, ctx)
        else:
            self._serve_script(reply, ctx)

    def _serve_replay(self, reply: Replay, ctx: encoders.RequestContext) -> None:
        content_type = reply.content_type or encoders.content_type_for(ctx.provider)
        size = reply.piece_size or len(reply.body) or 1
        pieces = [reply.body[i:i + size] for i in range(0, len(reply.body), size)]
        events = [encoders.Event(piece, encoders.CONTENT if i else encoders.HEAD)
                  for i, piece in enumerate(pieces)]
        self._send_stream(reply.status, content_type, reply.headers, events, reply.piece_delay,
                          reply.cut_after_bytes)

    def _serve_script(self, reply: Script, ctx: encoders.RequestContext) -> None:
        state, connection = self._state, self.server.connection
        provider_wire = encoders.WIRES[ctx.provider]
        if reply.no_response:
            self.close_connection = True
            state.pause(connection, None)
            return
        if reply.head_delay > 0 and not state.pause(connection, reply.head_delay):
            self.close_connection = True
            return
        headers = dict(reply.headers)
        if reply.error_status is not None:
            if reply.retry_after is not None:
                headers["Retry-After"] = str(reply.retry_after)
            content_type, body = error_payload(
                reply.error_body, provider_wire.error_body(reply.error_status, ctx))
            self._send_whole(reply.error_status, content_type, body, headers)
            return
        if reply.not_event_stream:
            page = b"<html><head><title>Gateway</title></head><body>Welcome</body></html>"
            self._send_whole(200, "text/html; charset=utf-8", page, headers,
                             reply.cut_after_bytes)
            return
        if not ctx.stream:
            body = json.dumps(provider_wire.body(reply.spec, ctx)).encode()
            self._send_whole(200, "application/json", body, headers, reply.cut_after_bytes)
            return
        events = encoders.stream_events(provider_wire, reply.spec, ctx, reply.faults)
        self._send_stream(200, provider_wire.content_type, headers, events, reply.delay,
                          reply.cut_after_bytes, provider_wire.stall_keepalive(),
                          reply.keepalive_interval)
