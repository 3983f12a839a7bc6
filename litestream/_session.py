"""The process-wide HTTP session, and the socket guard that lets another thread stop a request.

One :class:`requests.Session` serves the whole process (connection reuse,
thread-safe use). Its connections report themselves to the
:class:`SocketGuard` of the thread sending a request, so that ``close()``
or a deadline (running on another thread) can shut the socket down: that
is what wakes a thread blocked in ``recv`` (closing the file object would
not).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any, Optional, Union
from urllib.parse import urlsplit

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar, merge_cookies
from requests.hooks import default_hooks
from requests.structures import CaseInsensitiveDict
from requests.utils import NETRC_FILES, get_netrc_auth

from litestream import _http

__all__ = ["AnyResponse", "SocketGuard", "close_idle_connections", "current", "release", "send",
           "session"]

logger = logging.getLogger("litestream")

#: What :func:`send` answers with: requests' response, or litestream._http's on the short way.
AnyResponse = Union[requests.Response, _http.Response]

#: ``current.guard``: the SocketGuard of the request this thread is sending.
current = threading.local()


class SocketGuard:
    """The socket of one request, which another thread may shut down.

    The guard keeps the socket object itself, taken when the connection is
    made or used: http.client drops its own reference (``connection.sock``)
    as soon as a response will end with the connection (``Connection:
    close``, HTTP/1.0, a body delimited by the connection's end), and a
    guard that looked there would find nothing to shut down.

    Once the request's thread has let the connection go (back to the pool,
    where another request may use it), nothing may shut it down any more,
    hence the lock.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sock: Optional[socket.socket] = None
        self.stopped = False

    def attach(self, connection: Any) -> None:
        """Remember the socket of ``connection`` (called in the request's thread)."""
        sock = getattr(connection, "sock", None)
        if sock is None:
            return  # not connected yet: connect() attaches again
        with self.lock:
            self.sock = sock
            stopped = self.stopped
        if stopped:  # a stop came while the socket did not exist yet
            self.shutdown()

    def stop(self) -> None:
        """Shut the socket down now, and as soon as it exists if it does not yet."""
        with self.lock:
            self.stopped = True
        self.shutdown()

    def shutdown(self) -> None:
        """Shut the socket down if the request still holds it."""
        with self.lock:
            if self.sock is not None:
                try:
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:  # already closed: nothing to wake
                    pass

    def release(self) -> None:
        """Let the connection go: from now on nothing shuts it down."""
        with self.lock:
            self.sock = None


class _TrackedConnectionMixin:
    """Reports each request's socket to the guard of the thread sending it.

    The socket must be reachable while the request still waits for response
    headers, so that ``close()`` or a deadline can shut it down from another
    thread.
    """

    def request(self, *args: Any, **kwargs: Any) -> Any:
        guard = getattr(current, "guard", None)
        if guard is not None:
            guard.attach(self)
        return super().request(*args, **kwargs)  # type: ignore[misc]

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        guard = getattr(current, "guard", None)
        if guard is not None:
            # A deadline or close() may have come while the socket did not exist yet.
            guard.attach(self)


class _HTTPConnection(_TrackedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_TrackedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _HTTPConnectionPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _HTTPConnectionPool,
            "https": _HTTPSConnectionPool,
        }
        # urllib3 2 closes a dropped pool's idle connections only when the pool
        # is garbage-collected, and a response object kept anywhere (in an
        # error's traceback, say) keeps it alive: close pools when they are
        # dropped, so close_idle_connections() really closes the sockets.
        self.poolmanager.pools.dispose_func = _close_pool


def _close_pool(pool: urllib3.connectionpool.HTTPConnectionPool) -> None:
    pool.close()


class _Session(requests.Session):
    """A session that looks the environment's proxy and CA settings up once per host.

    requests reads them on every request, scanning the whole process
    environment (about 0.15 ms a request, the largest piece of a stream's
    time to first chunk). The answer depends only on the environment and on
    the URL's scheme and host, so it is kept until the environment changes:
    every call still compares the environment with the one it was computed
    from (a dict comparison, microseconds), so a variable set at run time
    takes effect on the next request exactly as before.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: Optional[dict[Any, Any]] = None
        self._settings: dict[tuple[Any, ...], dict[str, Any]] = {}
        #: URL as given -> URL as prepared (requests' ``prepare_url`` depends on nothing else).
        self._urls: dict[str, str] = {}
        #: Where requests looks for a netrc file, as the environment says (None: not known yet).
        self._netrc_paths: Optional[tuple[str, ...]] = None

    def _environment_now(self) -> Optional[dict[Any, Any]]:
        """Return the process environment, first dropping what was derived from an older one."""
        environment = getattr(os.environ, "_data", None)
        if not isinstance(environment, dict):
            return None
        if environment != self._environment:
            self._settings = {}
            self._netrc_paths = None
            self._environment = dict(environment)
        return environment

    def _netrc_auth(self, url: Any) -> Any:
        """Return ``get_netrc_auth(url)``, skipping its work when no netrc file exists.

        requests expands the candidate paths from the environment on every
        request (~20 µs); they are kept until the environment changes, and
        the files' existence is still checked every time.
        """
        if self._environment_now() is None:
            return get_netrc_auth(url)
        paths = self._netrc_paths
        if paths is None:
            netrc_file = os.environ.get("NETRC")
            names = (netrc_file,) if netrc_file is not None else tuple(
                f"~/{name}" for name in NETRC_FILES)
            paths = self._netrc_paths = tuple(os.path.expanduser(name) for name in names)
        if not any(os.path.exists(path) for path in paths):
            return None
        return get_netrc_auth(url)

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        """Prepare ``request`` as requests does, with a short path for what litestream sends.

        requests merges each setting through ``isinstance`` checks against
        runtime-checkable protocols, which cost about 20 µs each on Python
        3.11 (0.15 ms a request). For a request with headers and a JSON body
        only -- no params, files, form data, cookies or auth of its own, on
        a session without params or auth -- the merges below give the same
        prepared request; anything else goes through requests.
        """
        if (request.files or request.data or request.params or request.auth is not None
                or request.cookies is not None or self.params or self.auth is not None
                or self.hooks != default_hooks()):
            return super().prepare_request(request)
        headers = CaseInsensitiveDict(self.headers)
        headers.update(request.headers or {})
        for name in [name for name, value in headers.items() if value is None]:
            del headers[name]
        auth = self._netrc_auth(request.url) if self.trust_env else None
        cookies = merge_cookies(merge_cookies(RequestsCookieJar(), self.cookies),
                                RequestsCookieJar())
        # PreparedRequest.prepare() step by step, with the URL's preparation
        # (parsing, IDNA, quoting: ~30 µs) kept per URL string.
        prepared = requests.PreparedRequest()
        prepared.prepare_method(request.method.upper())
        url = request.url
        known = self._urls.get(url) if isinstance(url, str) else None
        if known is not None:
            prepared.url = known
        else:
            prepared.prepare_url(url, None)
            if isinstance(url, str) and len(self._urls) < 256:
                self._urls[url] = prepared.url
        prepared.prepare_headers(headers)
        prepared.prepare_cookies(cookies)
        prepared.prepare_body(None, None, request.json)
        prepared.prepare_auth(auth, url)
        prepared.prepare_hooks(request.hooks)
        return prepared

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any,
                                   cert: Any) -> dict[str, Any]:
        if proxies or self.proxies or not self.trust_env or self._environment_now() is None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, stream, verify, cert)
        settings = self._settings.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if len(self._settings) < 256:
                self._settings[key] = settings
        # A fresh dict each time: requests may change what it is given.
        return {**settings, "proxies": dict(settings["proxies"])}


_session: Optional[_Session] = None
_session_lock = threading.Lock()


def session() -> _Session:
    """Return the process-wide session (created on first use)."""
    global _session
    with _session_lock:
        if _session is None:
            new_session = _Session()
            adapter = _Adapter(pool_connections=16, pool_maxsize=256, max_retries=0)
            new_session.mount("http://", adapter)
            new_session.mount("https://", adapter)
            _session = new_session
        return _session


def send(method: str, url: str, headers: dict[str, str], json: Any,
         connect_timeout: Optional[float], verify: Any) -> AnyResponse:
    """Send a request as ``session().request(..., stream=True, allow_redirects=False)`` does.

    A plain request (see :func:`litestream._http.usable`) with nothing in
    the session or the environment that only requests applies -- a proxy,
    a netrc entry, a cookie, a client certificate -- goes out through
    :mod:`litestream._http`'s kept-alive http.client connections, with the
    same headers and body (about 0.3 ms of CPU less a request). Otherwise
    the same prepared request goes to requests' adapter with the same
    settings, and the same requests exceptions come out; what is left out
    is ``Session.send``'s bookkeeping that a request without redirects,
    hooks or proxies does not need. A proxy from the environment, or a
    session given hooks or proxies, takes requests' own path. Cookies a
    server sets go into the session's jar either way.

    Args:
        method: the HTTP method.
        url: the full URL.
        headers: the request's own headers.
        json: the JSON body, or None.
        connect_timeout: seconds to connect, None for no limit (no read timeout).
        verify: requests' ``verify``: True, False or a CA bundle path.

    Returns:
        The response, its body not read yet.

    Raises:
        requests.RequestException: as ``Session.request`` raises it.
    """
    http = session()
    parts = urlsplit(url)
    if _http.usable(parts) and not http.cookies and not http.params and http.auth is None:
        settings = http.merge_environment_settings(url, {}, True, verify, None)
        if not (settings["proxies"] or http.proxies or http.hooks != default_hooks()
                or settings["cert"] or (http.trust_env and http._netrc_auth(url))):
            merged = CaseInsensitiveDict(http.headers)
            merged.update(headers)
            return _http.send(method, url, parts, merged, json, connect_timeout,
                              settings["verify"], getattr(current, "guard", None), http.cookies)
    prepared = http.prepare_request(requests.Request(method=method, url=url, headers=headers,
                                                     json=json))
    settings = http.merge_environment_settings(prepared.url, {}, True, verify, None)
    timeout = (connect_timeout, None)
    if settings["proxies"] or http.proxies or http.hooks != default_hooks() \
            or prepared.hooks != default_hooks():
        return http.send(prepared, timeout=timeout, allow_redirects=False, **settings)
    adapter = http.get_adapter(prepared.url)
    response = adapter.send(prepared, stream=True, timeout=timeout, verify=settings["verify"],
                            cert=settings["cert"], proxies=settings["proxies"])
    if "set-cookie" in response.headers:
        extract_cookies_to_jar(http.cookies, prepared, response.raw)
    return response


def release(response: AnyResponse, reusable: bool) -> None:
    """Give a response's connection back for the next request when ``reusable``, else close it.

    ``reusable`` says that the body was read to its end; nothing the
    connection does now (a socket already gone) is raised.
    """
    try:
        if isinstance(response, _http.Response):
            response.release(reusable)
        elif reusable:
            response.raw.release_conn()
        else:
            response.raw.close()
            response.close()
    except Exception:  # the socket may already be gone; nothing to give back
        logger.debug("closing a response failed", exc_info=True)


def close_idle_connections() -> None:
    """Close the pooled keep-alive connections; the next request opens new ones.

    Streams in flight are not affected: their connections are not in the pool.
    """
    global _session
    with _session_lock:
        old, _session = _session, None
    if old is not None:
        old.close()
    _http.close_idle_connections()
