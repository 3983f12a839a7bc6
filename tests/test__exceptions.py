"""The one table from requests/urllib3/socket/ssl exceptions to litestream's errors."""

from __future__ import annotations

import http.client
import inspect
import socket
import ssl

import requests.exceptions
import urllib3.exceptions

from litestream import errors
from litestream._exceptions import TABLE, entry_for, map_exception


def _exception_classes(module):
    return [value for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, BaseException)
            and not issubclass(value, Warning)]  # warnings are issued, never raised at us


def test_every_library_exception_maps_to_a_deliberate_row():
    catch_all = TABLE[-1]
    classes = (_exception_classes(requests.exceptions) + _exception_classes(urllib3.exceptions)
               + _exception_classes(http.client)
               + [socket.timeout, socket.gaierror, socket.herror, ssl.SSLError,
                  ssl.SSLCertVerificationError, ssl.SSLEOFError, ssl.SSLZeroReturnError,
                  ConnectionResetError, ConnectionRefusedError, BrokenPipeError])
    library = [cls for cls in classes if cls.__module__.split(".")[0] in
               ("requests", "urllib3", "socket", "ssl", "_socket", "_ssl", "builtins",
                "http", "json", "email")]
    assert len(library) > 40
    for cls in library:
        assert entry_for(cls) is not catch_all, cls


def test_rows_go_from_most_specific_to_least():
    for index, (cls, _) in enumerate(TABLE):
        for earlier, _ in TABLE[:index]:
            assert not issubclass(earlier, cls) or earlier is not cls
            # No earlier row may be shadowed by a later, broader one it subclasses.
            assert not issubclass(cls, earlier), (cls, earlier)


def test_timeouts_map_to_their_deadline_errors():
    assert isinstance(map_exception(requests.exceptions.ConnectTimeout(), "p", "m"),
                      errors.ConnectTimeout)
    assert isinstance(map_exception(requests.exceptions.ReadTimeout(), "p", "m"),
                      errors.FirstChunkTimeout)


def test_a_tls_failure_is_not_retryable_and_a_reset_is():
    tls = map_exception(requests.exceptions.SSLError("bad certificate"), "p", "m")
    reset = map_exception(ConnectionResetError("reset"), "p", "m")
    assert isinstance(tls, errors.StreamConnectionError) and not tls.retryable
    assert isinstance(reset, errors.StreamConnectionError) and reset.retryable
    assert (reset.provider, reset.model) == ("p", "m")


def test_a_deadline_that_passed_is_the_answer_whatever_the_read_raised():
    deadline = errors.IdleTimeout("idle")
    assert map_exception(OSError("shut down"), "p", "m", deadline) is deadline


def test_anything_else_is_a_litestream_error_naming_its_type():
    mapped = map_exception(KeyError("x"), "p", "m")
    assert type(mapped) is errors.LitestreamError and "KeyError" in str(mapped)
