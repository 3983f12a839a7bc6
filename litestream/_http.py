"""The short way for a plain request: http.client connections kept alive by litestream.

requests and urllib3 cost about 0.3 ms of CPU a request above what
http.client itself does (preparing, merging and validating the request in
three layers, urllib3's retry and timeout objects, building two response
objects): the largest part of a stream's time to first chunk. The request
litestream sends is always the same kind -- a JSON POST (or a GET) with a
few headers, no redirects, no auth of requests' own, no cookies -- so when
nothing in the environment asks for more (a proxy, a netrc entry, a cookie
the session holds), :func:`send` writes it with http.client on a kept-alive
connection and answers with a :class:`Response` that the transport reads
exactly as it reads a ``requests.Response``. Anything else goes through
requests (:mod:`litestream._session` decides).

The headers sent are requests' own (its default headers merged with the
request's, validated the same way), so a server sees the same request
either way.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import ssl
import threading
import warnings
from types import SimpleNamespace
from typing import Any, Optional, Union

import requests.utils
import urllib3.exceptions
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict

from litestream import errors

__all__ = ["Response", "close_idle_connections", "send"]

#: The most idle connections kept per host (more are closed when they come back).
MAX_IDLE_PER_HOST = 256

Connection = Union[http.client.HTTPConnection, http.client.HTTPSConnection]
#: (scheme, host, port, verify or None for http) -> the idle connections, most recently used last.
_idle: dict[tuple[Any, ...], list[Connection]] = {}
_idle_lock = threading.Lock()
_tls_contexts: dict[Any, ssl.SSLContext] = {}


class Response:
    """An answer read through http.client, with what the transport reads of a requests.Response.

    Attributes:
        status_code: the HTTP status.
        headers: the response headers (case-insensitive; repeated ones joined by ``, ``).
        url: the URL the request went to.
        http_response: http.client's response, whose ``fp`` is the socket file.
    """

    __slots__ = ("status_code", "headers", "url", "http_response", "_connection", "_key")

    def __init__(self, http_response: http.client.HTTPResponse, connection: Connection,
                 key: tuple[Any, ...], url: str) -> None:
        self.http_response = http_response
        self.status_code = http_response.status
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict()
        for name, value in http_response.msg.items():
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.headers = headers
        self.url = url
        self._connection: Optional[Connection] = connection
        self._key = key

    def release(self, reusable: bool) -> None:
        """Give the connection back for the next request when ``reusable``, else close it.

        A connection is reusable only when its body was read to the end and
        the server did not say it would close it.
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return
        http_response = self.http_response
        if reusable and not http_response.will_close and http_response.isclosed():
            _check_in(self._key, connection)
            return
        http_response.close()
        connection.close()

    def close(self) -> None:
        """Close the connection (the body is not read any further)."""
        self.release(False)

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def usable(url_parts: Any) -> bool:
    """Tell whether a URL (``urlsplit``'s parts) needs nothing that only requests does.

    No userinfo (requests turns it into Basic auth), an ASCII host (no IDNA),
    and a path and query of printable ASCII without spaces (requests would
    quote anything else).
    """
    if url_parts.scheme not in ("http", "https") or "@" in url_parts.netloc:
        return False
    target = url_parts.path + url_parts.query
    return (url_parts.netloc.isascii() and target.isascii() and target.isprintable()
            and " " not in target and "%" not in target)


def send(method: str, url: str, url_parts: Any, headers: CaseInsensitiveDict[str], body: Any,
         connect_timeout: Optional[float], verify: Any, guard: Any,
         cookie_jar: Any) -> Response:
    """Send one request on a kept-alive (or new) connection and read the response's headers.

    Args:
        method: the HTTP method.
        url: the full URL, for the response and for cookies.
        url_parts: ``urlsplit(url)``, checked by :func:`usable`.
        headers: every header to send but ``Host``, ``Content-Length`` and
            ``Content-Type`` (which follow from the URL and the body); a
            dict made for this request, completed here in place.
        body: the JSON body, or None.
        connect_timeout: seconds to connect, None for no limit (never a read timeout).
        verify: True, False or a CA bundle path, as requests takes it.
        guard: the SocketGuard of the request, or None.
        cookie_jar: the jar a ``Set-Cookie`` of the answer goes into.

    Raises:
        LitestreamError: the connection could not be made.
        OSError, http.client.HTTPException: sending or reading the headers
            failed (the transport's exception table maps them).
    """
    for name in [name for name, value in headers.items() if value is None]:
        del headers[name]
    data: Optional[bytes] = None
    if body is not None:
        try:
            data = json.dumps(body, allow_nan=False).encode("utf-8")
        except ValueError as error:
            raise requests.exceptions.InvalidJSONError(error) from None
        if "content-type" not in headers:
            headers["Content-Type"] = "application/json"
    if data is not None or method not in ("GET", "HEAD"):
        headers["Content-Length"] = str(len(data or b""))
    for header in headers.items():
        requests.utils.check_header_validity(header)
    if url_parts.scheme == "https" and verify is False:
        warnings.warn(f"Unverified HTTPS request is being made to host "
                      f"'{url_parts.hostname}'.", urllib3.exceptions.InsecureRequestWarning,
                      stacklevel=2)
    port = url_parts.port or (443 if url_parts.scheme == "https" else 80)
    key = (url_parts.scheme, url_parts.hostname, port,
           verify if url_parts.scheme == "https" else None)
    connection = _check_out(key)
    if connection is None:
        connection = _connect(key, url_parts.netloc, connect_timeout)
    if guard is not None:
        guard.attach(connection)
    target = url_parts.path or "/"
    if url_parts.query:
        target = f"{target}?{url_parts.query}"
    try:
        connection.putrequest(method, target, skip_host="host" in headers,
                              skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(data)
        http_response = connection.getresponse()
    except BaseException:
        connection.close()
        raise
    response = Response(http_response, connection, key, url)
    if "set-cookie" in response.headers:
        extract_cookies_to_jar(cookie_jar, SimpleNamespace(url=url, headers=headers),
                               SimpleNamespace(_original_response=http_response))
    return response


def _connect(key: tuple[Any, ...], netloc: str, timeout: Optional[float]) -> Connection:
    """Open a new connection; failing, raise the error requests' path would have given."""
    scheme, host, port, verify = key
    connection: Connection
    if scheme == "https":
        connection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                 context=_tls_context(verify))
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.connect()
    except ssl.SSLError:
        connection.close()
        raise  # the table's TLS row
    except TimeoutError:
        connection.close()
        raise errors.ConnectTimeout("timed out connecting to the provider") from None
    except OSError as error:
        connection.close()
        raise errors.StreamConnectionError(
            f"could not connect to {netloc}: {error}") from None
    assert connection.sock is not None
    connection.sock.settimeout(None)  # reads are bounded by the deadlines, not a timeout
    return connection


def _tls_context(verify: Any) -> ssl.SSLContext:
    """Return the TLS context for requests' ``verify`` value (made once per value)."""
    context = _tls_contexts.get(verify)
    if context is None:
        if verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            bundle = requests.utils.DEFAULT_CA_BUNDLE_PATH if verify is True else verify
            if os.path.isdir(bundle):
                context = ssl.create_default_context(capath=bundle)
            else:
                context = ssl.create_default_context(cafile=bundle)
        _tls_contexts[verify] = context
    return context


def _check_out(key: tuple[Any, ...]) -> Optional[Connection]:
    """Return an idle connection to ``key``'s host that the server has not closed, or None."""
    while True:
        with _idle_lock:
            connections = _idle.get(key)
            if not connections:
                return None
            connection = connections.pop()
        if not _dropped(connection):
            return connection
        connection.close()


def _check_in(key: tuple[Any, ...], connection: Connection) -> None:
    with _idle_lock:
        connections = _idle.setdefault(key, [])
        if len(connections) < MAX_IDLE_PER_HOST:
            connections.append(connection)
            return
    connection.close()


def _dropped(connection: Connection) -> bool:
    """Tell whether the server closed an idle connection (or sent something unasked)."""
    sock = connection.sock
    if sock is None:
        return True
    if hasattr(select, "poll"):  # select() cannot watch a descriptor above 1023
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([sock], [], [], 0)[0])


def close_idle_connections() -> None:
    """Close every idle kept-alive connection; requests in flight are not affected."""
    with _idle_lock:
        connections = [connection for idle in _idle.values() for connection in idle]
        _idle.clear()
    for connection in connections:
        connection.close()


def _forget_after_fork() -> None:
    # The child shares the parent's sockets: it must not use them, only drop them.
    global _idle_lock
    _idle.clear()
    _idle_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
