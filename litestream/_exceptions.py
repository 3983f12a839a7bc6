"""One table from the exceptions of the libraries under the transport to litestream's errors.

requests, urllib3, socket and ssl raise their own exceptions; the transport
lets none of them out. :data:`TABLE` maps each to a class of
:mod:`litestream.errors`, most specific first (as httpx's
``map_exceptions`` does), and :func:`map_exception` is the one place that
applies it. HTTP answers that are errors (a 3xx, a 4xx, a 5xx) become
errors here too, in :func:`error_from_response`.
"""

from __future__ import annotations

import email.errors
import http.client
import json
import re
import socket
import ssl
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from litestream import errors
from litestream._body import BodyReader, read_capped
from litestream.wire import Dialect

__all__ = ["MAX_ERROR_BODY", "TABLE", "entry_for", "error_from_response", "map_exception",
           "parse_failure"]

#: The most of an error (or redirect) body read, in bytes after decompression.
MAX_ERROR_BODY = 1024 * 1024

Fields = dict[str, Any]
Factory = Callable[[BaseException, Fields], errors.LitestreamError]


def _connection_failure(error: BaseException, fields: Fields) -> errors.LitestreamError:
    """Say which host could not be reached and why, without urllib3's retry wording."""
    reason: Any = error.args[0] if error.args else error
    reason = getattr(reason, "reason", reason)  # a MaxRetryError wraps the real cause
    text = str(reason)
    # urllib3 prefixes the connection object: "HTTPConnection(host=..., port=...): ..."
    text = re.sub(r"^<?[\w.]*HTTPS?Connection[^:]*:\s*", "", text)
    request = getattr(error, "request", None)
    host = urlsplit(request.url).netloc if request is not None and request.url else "the host"
    host = host.rpartition("@")[2]  # never the userinfo of the URL
    return errors.StreamConnectionError(f"could not connect to {host}: {text}", **fields)


def _message(error_class: type[errors.LitestreamError], text: str,
             **extra: Any) -> Factory:
    def make(error: BaseException, fields: Fields) -> errors.LitestreamError:
        return error_class(text.format(error=error), **extra, **fields)
    return make


def _unchanged(error: BaseException, fields: Fields) -> errors.LitestreamError:
    assert isinstance(error, errors.LitestreamError)
    return error


#: (exception class, factory of our error), most specific first; the first
#: row whose class matches is used. The last row is the catch-all.
TABLE: tuple[tuple[type[BaseException], Factory], ...] = (
    (errors.LitestreamError, _unchanged),
    (requests.exceptions.ConnectTimeout,
     _message(errors.ConnectTimeout, "timed out connecting to the provider")),
    (requests.exceptions.ReadTimeout,
     _message(errors.FirstChunkTimeout, "timed out waiting for the response")),
    (urllib3.exceptions.ConnectTimeoutError,
     _message(errors.ConnectTimeout, "timed out connecting to the provider")),
    (urllib3.exceptions.ReadTimeoutError,
     _message(errors.FirstChunkTimeout, "timed out waiting for the response")),
    (requests.exceptions.SSLError,
     _message(errors.StreamConnectionError, "TLS error: {error}", retryable=False)),
    (ssl.SSLError, _message(errors.StreamConnectionError, "TLS error: {error}", retryable=False)),
    (urllib3.exceptions.SSLError,
     _message(errors.StreamConnectionError, "TLS error: {error}", retryable=False)),
    (requests.exceptions.ConnectionError, _connection_failure),
    (requests.exceptions.ChunkedEncodingError,
     _message(errors.StreamConnectionError, "the connection broke: {error}")),
    # requests' other errors (a bad URL, too many redirects, a body that does
    # not decode) are requests.RequestException, which is an OSError: only
    # the wording differs from a socket's failure.
    (requests.exceptions.RequestException, _message(errors.StreamConnectionError, "{error}")),
    (socket.timeout, _message(errors.FirstChunkTimeout, "timed out waiting for the response")),
    (OSError, _message(errors.StreamConnectionError, "connection failed: {error}")),
    (urllib3.exceptions.HTTPError,
     _message(errors.StreamConnectionError, "the connection broke: {error}")),
    (http.client.HTTPException,
     _message(errors.StreamConnectionError, "the connection broke: {error}")),
    (urllib3.exceptions.ProxySchemeUnsupported,
     _message(errors.StreamConnectionError, "unusable proxy: {error}", retryable=False)),
    (email.errors.MessageDefect,
     _message(errors.ProtocolError, "malformed response headers: {error}")),
    (json.JSONDecodeError, _message(errors.ProtocolError, "malformed JSON: {error}")),
    (RecursionError, _message(errors.ProtocolError, "JSON nested too deeply: {error}")),
    (BaseException,
     _message(errors.LitestreamError, "unexpected {error.__class__.__name__}: {error}")),
)


def entry_for(error_class: type[BaseException]) -> tuple[type[BaseException], Factory]:
    """Return the row of :data:`TABLE` that maps ``error_class``."""
    for row in TABLE:
        if issubclass(error_class, row[0]):
            return row
    raise AssertionError("the last row maps every exception")


def map_exception(error: BaseException, provider: str, model: str,
                  deadline_error: Optional[errors.LitestreamError] = None
                  ) -> errors.LitestreamError:
    """Return the litestream error for ``error``.

    When a deadline passed (``deadline_error``), whatever the read then
    raised is a symptom of the socket being shut down: the deadline's
    error is the answer.
    """
    if deadline_error is not None:
        return deadline_error
    fields = {"provider": provider, "model": model}
    mapped = entry_for(type(error))[1](error, fields)
    if mapped.provider is None:
        mapped.provider = provider
    if mapped.model is None:
        mapped.model = model
    return mapped


def parse_failure(error: BaseException, what: str, provider: str,
                  model: str) -> errors.LitestreamError:
    """Return the ProtocolError for data that broke a parser (``what``: which data)."""
    if isinstance(error, errors.LitestreamError):
        return error
    return errors.ProtocolError(f"could not parse {what}: {type(error).__name__}: {error}",
                                provider=provider, model=model)


def error_from_response(response: requests.Response, provider: Dialect,
                        model: str) -> Optional[errors.LitestreamError]:
    """Return the error a 3xx, 4xx or 5xx answer stands for; None for any other.

    A redirect is not followed (an LLM API never needs one, and following
    it would send the credentials and the prompt elsewhere): it is a
    ProtocolError naming the status and where it pointed, without the
    query. An error body is read up to :data:`MAX_ERROR_BODY` bytes and
    given to the provider's error parser (which falls back to what the
    status alone says when the body breaks it). A 404 that is not about the
    model names the URL path that was not found (a wrong ``api_base``).
    """
    status = response.status_code
    if 300 <= status < 400:
        location = urlsplit(response.headers.get("location", ""))
        target = f"{location.scheme}://{location.hostname}{location.path}" if location.netloc \
            else location.path
        return errors.ProtocolError(
            f"the server answered {status} (a redirect to {target or 'nowhere'}); litestream "
            f"does not follow redirects: set api_base to the final URL",
            provider=provider.name, model=model, status_code=status, retryable=False)
    if status < 400:
        return None
    body = read_capped(BodyReader(response), MAX_ERROR_BODY, truncate=True)
    text = body.decode("utf-8", errors="replace")
    error = provider.error_for_answer(status, text, response.headers, model)
    error.provider = error.provider or provider.name
    error.model = error.model or model
    if type(error) is errors.NotFoundError:
        path = urlsplit(response.url or "").path or "/"
        error.message = errors.redact(f"nothing at {path}: {error.message}")
        error.args = (error.message,)
    return error
