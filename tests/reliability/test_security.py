"""Secrets, TLS and logging: the key never leaks, TLS is verified, the library stays quiet.

A canary key goes through every error path (an error body that echoes it, an
in-band error that echoes it, a malformed event that contains it, connection
refused, a timeout); it must not appear in any message, repr, summary,
details, formatted traceback, log record of the ``litestream`` logger, or
SSE error event.
"""

from __future__ import annotations

import ast
import datetime
import json
import logging
import socket
import ssl
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from _harness import (
    MESSAGES,
    MODELS,
    PROVIDERS,
    assert_finished,
    closed_port,
    consume,
    mid_stream_boundary,
    open_stream,
    transcript,
)

import litestream
from litestream import errors
from litestream.options import CallOptions
from litestream.providers import get_provider
from litestream.streaming import to_sse_stream
from litestream.testing import FakeLLMServer

ROOT = Path(__file__).parents[2]

# One key shaped like a real one, one that only registration can hide.
CANARIES = {
    "sk_shaped": "sk-canary-" + uuid.uuid4().hex,
    "plain": "canary" + uuid.uuid4().hex,
}


def _error_event(provider: str, message: str) -> bytes:
    """The provider's own in-band error event, with ``message``."""
    if provider == "anthropic":
        data = {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        return b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    if provider == "gemini":
        data = {"error": {"code": 500, "message": message, "status": "INTERNAL"}}
        return b"data: " + json.dumps(data).encode() + b"\r\n\r\n"
    if provider == "ollama":
        return json.dumps({"error": message}).encode() + b"\n"
    data = {"error": {"message": message, "type": "server_error"}}
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def _mid_stream(provider: str, inserted: bytes) -> bytes:
    body = transcript(provider)
    boundary = mid_stream_boundary(provider, body)
    return body[:boundary] + inserted


# Each fault: (name, prepare(server, provider, key) -> extra config).
def _echoing_401(server: FakeLLMServer, provider: str, key: str) -> dict[str, Any]:
    server.script(error_status=401, error_body={"error": {
        "message": f"Incorrect API key provided: {key}. Bearer {key}",
        "type": "invalid_request_error", "code": "invalid_api_key"}})
    return {}


def _echoing_html_403(server: FakeLLMServer, provider: str, key: str) -> dict[str, Any]:
    server.script(error_status=403, error_body=f"<html><body>Forbidden for key {key}</body></html>")
    return {}


def _echoing_inband(server: FakeLLMServer, provider: str, key: str) -> dict[str, Any]:
    event = _error_event(provider, f"upstream rejected x-api-key: {key}")
    server.replay(_mid_stream(provider, event))
    return {}


def _malformed_with_key(server: FakeLLMServer, provider: str, key: str) -> dict[str, Any]:
    line = f"key={key} is not JSON".encode()
    framed = line + b"\n" if provider == "ollama" else b"data: " + line + b"\n\n"
    server.replay(_mid_stream(provider, framed))
    return {}


def _not_event_stream_with_key(server: FakeLLMServer, provider: str, key: str) -> dict[str, Any]:
    server.replay(f"<html>your key is {key}</html>".encode(), content_type="text/html")
    return {}


def _refused(server: FakeLLMServer, provider: str, key: str) -> dict[str, Any]:
    return {"api_base": f"http://127.0.0.1:{closed_port()}"}


def _timeout(server: FakeLLMServer, provider: str, key: str) -> dict[str, Any]:
    server.script(no_response=True)
    return {"first_chunk_timeout": 0.2}


FAULTS: dict[str, Callable[[FakeLLMServer, str, str], dict[str, Any]]] = {
    "401_echoes_key": _echoing_401,
    "html_403_echoes_key": _echoing_html_403,
    "inband_error_echoes_key": _echoing_inband,
    "malformed_event_holds_key": _malformed_with_key,
    "not_event_stream_holds_key": _not_event_stream_with_key,
    "connection_refused": _refused,
    "first_chunk_timeout": _timeout,
}


def _leaks(key: str, text: str) -> bool:
    """True when ``text`` holds the key, or any 8 characters of it in a row."""
    return any(key[start:start + 8] in text for start in range(len(key) - 7))


def _texts_of(error: BaseException) -> Iterator[str]:
    yield str(error)
    yield repr(error)
    yield errors.error_summary(error)
    yield json.dumps(errors.error_details(error), default=str)
    yield "".join(traceback.format_exception(error))
    yield repr(error.args)


@pytest.mark.parametrize("canary", sorted(CANARIES))
@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_api_key_never_leaks_from_an_error(provider, fault, canary, server, caplog):
    key = CANARIES[canary]
    caplog.set_level(logging.DEBUG, logger="litestream")
    config = {"api_base": server.api_base(provider), "api_key": key}

    config.update(FAULTS[fault](server, provider, key))
    stream = open_stream(provider, **config)
    outcome = consume(stream)
    assert isinstance(outcome.error, errors.LitestreamError)
    assert_finished(stream)

    config.update(FAULTS[fault](server, provider, key))
    sse = b"".join(to_sse_stream(open_stream(provider, **config), heartbeat=None))
    assert b"event: error" in sse

    if fault not in ("connection_refused",):
        # A request given up on (first_chunk_timeout) may still be on its way.
        assert server.wait_for_requests(1, 5.0)
        sent = server.requests[-1]
        assert key in json.dumps(sent.headers), "the key must really have been sent"
    for text in _texts_of(outcome.error):
        assert not _leaks(key, text), text
    assert not _leaks(key, sse.decode())
    formatter = logging.Formatter("%(message)s %(exc_info)s")
    for record in caplog.records:
        if record.name.startswith("litestream"):
            assert not _leaks(key, formatter.format(record))
            assert not _leaks(key, str(record.args))


# Messages quote excerpts cut at 80 (malformed event), 200 (not an event
# stream) or 300 (error page) characters; the cut may fall inside the key.
_EXCERPT_FAULTS = {
    "malformed_event": lambda server, padding, key: server.replay(_mid_stream(
        "openai", b"data: " + (padding + key).encode() + b"\n\n")),
    "not_event_stream": lambda server, padding, key: server.replay(
        ("<html>" + padding + key).encode(), content_type="text/html"),
    "error_page": lambda server, padding, key: server.script(
        error_status=502, error_body="<html>" + padding + key + "</html>"),
}
_CUTS = {"malformed_event": 80, "not_event_stream": 200 - len("<html>"), "error_page": 300}


@pytest.mark.parametrize("fault", sorted(_EXCERPT_FAULTS))
@pytest.mark.parametrize("kept", [8, 12, 20, 30])
def test_a_key_cut_short_by_an_excerpt_is_hidden_too(fault, kept, server):
    key = CANARIES["plain"]
    _EXCERPT_FAULTS[fault](server, "y" * (_CUTS[fault] - kept), key)
    stream = open_stream("openai", server.api_base("openai"), api_key=key)
    error = consume(stream).error
    assert isinstance(error, errors.LitestreamError)
    assert "yyyy" in error.message, "the excerpt must reach the key"
    for text in _texts_of(error):
        assert not _leaks(key, text), text


_WHOLE_BODY_FAULTS = {
    "401_echoes_key": lambda server, key: server.script(
        error_status=401, error_body={"error": {"message": f"bad key {key}"}}),
    "html_500_echoes_key": lambda server, key: server.script(
        error_status=500, error_body=f"<html>upstream {key} failed</html>"),
    "200_page_holds_key": lambda server, key: server.replay(
        f"<html>{'z' * 150}{key}</html>".encode(), content_type="text/html"),
    "refused": lambda server, key: None,
    "timeout": lambda server, key: server.script(no_response=True),
}


@pytest.mark.parametrize("fault", sorted(_WHOLE_BODY_FAULTS))
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "ollama"])
def test_the_api_key_never_leaks_from_a_non_streaming_call(provider, fault, server, caplog):
    key = CANARIES["plain"]
    caplog.set_level(logging.DEBUG, logger="litestream")
    _WHOLE_BODY_FAULTS[fault](server, key)
    api_base = (f"http://127.0.0.1:{closed_port()}" if fault == "refused"
                else server.api_base(provider))
    with pytest.raises(errors.LitestreamError) as raised:
        litestream.completion(provider, MODELS[provider], messages=MESSAGES,
                              api_key=key, api_base=api_base, max_retries=0,
                              timeout=0.3 if fault == "timeout" else 10)
    for text in _texts_of(raised.value):
        assert not _leaks(key, text), text
    for record in caplog.records:
        assert not _leaks(key, logging.Formatter("%(message)s %(exc_info)s").format(record))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_reprs_of_the_request_and_the_stream_hide_the_key(provider, server):
    key = "unregistered" + uuid.uuid4().hex  # straight to the provider: never registered
    request = {"messages": [{"role": "user", "content": "Hi"}], "stream": True}
    http_request = get_provider(provider).build_request(
        MODELS[provider], request, CallOptions(api_key=key, api_base=server.api_base(provider)))
    assert key in json.dumps(dict(http_request.headers)) + http_request.url, "sent somewhere"
    assert not _leaks(key, repr(http_request))
    server.script(text="fine")
    stream = open_stream(provider, server.api_base(provider), api_key=key)
    assert not _leaks(key, repr(stream))
    assert consume(stream).content == "fine"


def test_headers_carrying_credentials_are_hidden_too(server):
    token = "tok-" + uuid.uuid4().hex
    server.script(error_status=401, error_body={"error": {"message": f"bad token {token}"}})
    stream = litestream.completion(
        "openai", MODELS["openai"], messages=[{"role": "user", "content": "Hi"}], stream=True,
        api_key="test-key", api_base=server.api_base("openai"),
        headers={"X-Custom-Auth": token})
    error = consume(stream).error
    assert isinstance(error, errors.AuthenticationError)
    assert all(token not in text for text in _texts_of(error))


# ---------------------------------------------------------------------------
# TLS
# ---------------------------------------------------------------------------


def _self_signed(directory: Path) -> tuple[Path, Path]:
    crypto = pytest.importorskip("cryptography")
    del crypto
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


class _TLSServer:
    """Answers every HTTPS request on a loopback port with one OpenAI stream, then hangs up."""

    def __init__(self, cert: Path, key: Path, body: bytes) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.body = body
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, name="tls-test-server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return  # closed
            with raw:
                try:
                    with self.context.wrap_socket(raw, server_side=True) as conn:
                        self._answer(conn)
                except (ssl.SSLError, OSError):
                    continue  # the client refused our certificate

    def _answer(self, conn: ssl.SSLSocket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        head, _, body = request.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        while len(body) < length:
            body += conn.recv(4096)
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(self.body))
        conn.sendall(head + self.body)

    def close(self) -> None:
        # Closing alone would not wake the thread blocked in accept(); shutting down does.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.fixture
def tls_server(tmp_path) -> Iterator[_TLSServer]:
    cert, key = _self_signed(tmp_path)
    server = _TLSServer(cert, key, transcript("openai"))
    yield server
    server.close()


def test_tls_is_verified_by_default(tls_server):
    stream = open_stream("openai", f"https://127.0.0.1:{tls_server.port}/v1")
    outcome = consume(stream)
    assert isinstance(outcome.error, errors.StreamConnectionError)
    assert "TLS" in outcome.error.message or "certificate" in outcome.error.message.lower()
    assert not outcome.error.retryable
    assert_finished(stream)


def test_turning_tls_verification_off_needs_verify_false_and_logs_a_warning(tls_server, caplog):
    caplog.set_level(logging.WARNING, logger="litestream")
    with pytest.warns(Warning):  # urllib3's InsecureRequestWarning, too
        stream = open_stream("openai", f"https://127.0.0.1:{tls_server.port}/v1", verify=False)
        outcome = consume(stream)
    assert outcome.error is None
    assert outcome.content == "Hello! How can I assist you today?"
    assert any("verification is off" in record.getMessage() for record in caplog.records
               if record.name == "litestream" and record.levelno == logging.WARNING)


@pytest.mark.parametrize("verify", [0, "", 0.0, [], 1])
def test_only_false_turns_tls_verification_off(verify):
    # requests reads any falsy value as "do not verify": only False may do that.
    with pytest.raises(errors.ConfigurationError, match="verify"):
        open_stream("openai", "https://127.0.0.1:1/v1", verify=verify)


@pytest.mark.parametrize("value", ["big", 0, -1, 1.5, True])
def test_max_event_size_must_be_a_positive_integer(value):
    with pytest.raises(errors.ConfigurationError, match="max_event_size"):
        open_stream("openai", "http://127.0.0.1:1/v1", max_event_size=value)


@pytest.mark.parametrize("api_base", [
    "ftp://127.0.0.1/v1", "file:///etc/passwd", "ws://127.0.0.1:8080/v1", "localhost:8080/v1",
    "javascript:alert(1)", "gopher://127.0.0.1:70/",
])
def test_api_base_must_be_http_or_https(api_base):
    with pytest.raises(errors.ConfigurationError, match="http"):
        open_stream("openai", api_base)


# ---------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------


def test_library_installs_no_log_handlers():
    handlers = logging.getLogger("litestream").handlers
    assert all(isinstance(handler, logging.NullHandler) for handler in handlers), handlers


def test_library_modules_log_only_through_the_litestream_logger_and_never_print():
    offenders = []
    for path in sorted((ROOT / "litestream").rglob("*.py")):
        if path.name in ("cli.py", "__main__.py", "demo.py"):
            continue  # command-line entry points write to the terminal on purpose
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            function = node.func
            if isinstance(function, ast.Name) and function.id == "print":
                offenders.append(f"{path.name}:{node.lineno} print()")
            if (isinstance(function, ast.Attribute) and function.attr == "getLogger"
                    and not (node.args and isinstance(node.args[0], ast.Constant)
                             and str(node.args[0].value).startswith("litestream"))):
                offenders.append(f"{path.name}:{node.lineno} getLogger(...)")
    assert offenders == []


def test_streams_and_failures_print_nothing(server, capsys):
    server.script(text="quiet please")
    server.script(error_status=500)
    server.script(malformed_after=1)
    for _ in range(3):
        consume(open_stream("openai", server.api_base("openai")))
    consume(open_stream("openai", f"http://127.0.0.1:{closed_port()}"))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""
