"""Tests for litestream._session: the cached environment settings of the shared session."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from litestream._body import BodyReader, read_capped
from litestream._session import _Session


def _reference(url: str) -> dict:
    plain = requests.Session()
    try:
        return plain.merge_environment_settings(url, {}, True, True, None)
    finally:
        plain.close()


def test_environment_settings_match_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    session = _Session()
    try:
        for url in ("https://api.example.invalid/v1/chat", "http://127.0.0.1:9/v1",
                    "https://api.example.invalid/v1/other"):
            assert session.merge_environment_settings(url, {}, True, True, None) == \
                _reference(url)
    finally:
        session.close()


def test_a_variable_set_later_takes_effect_on_the_next_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HTTPS_PROXY", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    session = _Session()
    url = "https://api.example.invalid/v1/chat"
    try:
        before = session.merge_environment_settings(url, {}, True, True, None)
        assert "https" not in before["proxies"]
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
        after = session.merge_environment_settings(url, {}, True, True, None)
        assert after["proxies"]["https"] == "http://proxy.invalid:3128"
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
        assert session.merge_environment_settings(url, {}, True, True, None)["verify"] == \
            "/nonexistent/ca.pem"
    finally:
        session.close()


def test_what_a_caller_changes_does_not_reach_the_cache() -> None:
    session = _Session()
    url = "https://api.example.invalid/v1/chat"
    try:
        first = session.merge_environment_settings(url, {}, True, True, None)
        first["proxies"]["https"] = "http://changed.invalid"
        first["verify"] = False
        second = session.merge_environment_settings(url, {}, True, True, None)
        assert second == _reference(url)
    finally:
        session.close()


@pytest.mark.parametrize("request_kwargs", [
    {"method": "post", "url": "https://api.example.invalid/v1/chat?x=1",
     "headers": {"Authorization": "Bearer k", "User-Agent": None, "X-Extra": "é"},
     "json": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}},
    {"method": "GET", "url": "http://127.0.0.1:9/v1/models", "headers": {}},
    {"method": "POST", "url": "http://127.0.0.1:9/v1", "headers": {"A": "b"},
     "params": {"q": "1"}, "data": {"f": "v"}},
])
def test_prepared_requests_match_requests(request_kwargs: dict) -> None:
    session, plain = _Session(), requests.Session()
    try:
        ours = session.prepare_request(requests.Request(**request_kwargs))
        theirs = plain.prepare_request(requests.Request(**request_kwargs))
        assert (ours.method, ours.url, ours.body) == (theirs.method, theirs.url, theirs.body)
        assert dict(ours.headers) == dict(theirs.headers)
        assert list(ours.headers) == list(theirs.headers)
        assert ours.hooks == theirs.hooks
        assert list(ours._cookies) == list(theirs._cookies)
    finally:
        session.close()
        plain.close()


def test_session_cookies_are_sent_as_requests_sends_them() -> None:
    session, plain = _Session(), requests.Session()
    try:
        for each in (session, plain):
            each.cookies.set("sid", "abc", domain="api.example.invalid", path="/")
        kwargs = {"method": "POST", "url": "https://api.example.invalid/v1", "json": {"a": 1}}
        ours = session.prepare_request(requests.Request(**kwargs))
        theirs = plain.prepare_request(requests.Request(**kwargs))
        assert ours.headers["Cookie"] == theirs.headers["Cookie"] == "sid=abc"
    finally:
        session.close()
        plain.close()


def test_netrc_credentials_apply_as_with_requests(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.example.invalid login user password pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    session, plain = _Session(), requests.Session()
    try:
        kwargs = {"method": "POST", "url": "https://api.example.invalid/v1", "json": {"a": 1}}
        ours = session.prepare_request(requests.Request(**kwargs))
        theirs = plain.prepare_request(requests.Request(**kwargs))
        assert ours.headers["Authorization"] == theirs.headers["Authorization"]
        assert ours.headers["Authorization"].startswith("Basic ")
    finally:
        session.close()
        plain.close()


def test_a_netrc_file_created_later_applies_on_the_next_request(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    netrc = tmp_path / "netrc"
    monkeypatch.setenv("NETRC", str(netrc))
    session = _Session()
    try:
        kwargs = {"method": "POST", "url": "https://api.example.invalid/v1", "json": {"a": 1}}
        before = session.prepare_request(requests.Request(**kwargs))
        assert "Authorization" not in before.headers
        netrc.write_text("machine api.example.invalid login user password pass\n")
        netrc.chmod(0o600)
        after = session.prepare_request(requests.Request(**kwargs))
        assert after.headers["Authorization"].startswith("Basic ")
    finally:
        session.close()


def test_a_url_prepared_twice_is_prepared_as_requests_does() -> None:
    session, plain = _Session(), requests.Session()
    try:
        url = "https://API.example.invalid:443/v1/chat completions?x=ä"
        for _ in range(2):  # the second time from the kept preparation
            ours = session.prepare_request(requests.Request("POST", url, json={"a": 1}))
            theirs = plain.prepare_request(requests.Request("POST", url, json={"a": 1}))
            assert ours.url == theirs.url
            assert ours.path_url == theirs.path_url
    finally:
        session.close()
        plain.close()


def test_send_keeps_a_cookie_the_server_sets_as_requests_does() -> None:
    import http.server
    import threading

    from litestream import _session

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Set-Cookie", "sid=abc; Path=/")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        response = _session.send("POST", url, {"Accept-Encoding": "identity"}, {"a": 1}, 5.0, True)
        assert response.status_code == 200
        assert read_capped(BodyReader(response), 100) == b"{}"
        response.close()
        assert _session.session().cookies.get("sid") == "abc"
    finally:
        thread.join(5.0)
        server.server_close()
        _session.session().cookies.clear()
        _session.close_idle_connections()
