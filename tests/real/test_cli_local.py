"""``litestream demo --local`` and ``chat --local``: a real model, started per command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real

_ROOT = Path(__file__).resolve().parents[2]


def _litestream(*args: str) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items()
           if not name.endswith(("_API_KEY", "_BASE_URL")) and name != "OLLAMA_HOST"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "litestream", *args], env=env,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_chat_local_prints_the_local_models_reply(llama_cpp_installed: None) -> None:
    result = _litestream("chat", "--local", "Reply with one short sentence: what is rain?")

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), result.stderr


def test_chat_local_with_a_model_is_a_usage_error() -> None:
    result = _litestream("chat", "--local", "-m", "openai/gpt-4o-mini", "Hi")

    assert result.returncode == 2
    assert "--local" in result.stderr


def test_demo_local_streams_an_answer_and_its_metrics(llama_cpp_installed: None) -> None:
    result = _litestream("demo", "--local")

    assert result.returncode == 0, result.stderr
    assert "llama.cpp at http://127.0.0.1:" in result.stdout
    answer = result.stdout.split("?\n", 1)[1]
    assert answer.split("Tokens:")[0].strip()
    assert "Tokens/sec:" in result.stdout
