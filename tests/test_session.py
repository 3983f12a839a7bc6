"""Tests for litestream._session: the cached environment settings of the shared session."""

from __future__ import annotations

import pytest
import requests

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
