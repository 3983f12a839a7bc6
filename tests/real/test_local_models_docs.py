"""Every ``python`` example of docs/local_models.md runs.

The page's ``{doctest}`` blocks run in the Sphinx doctest build against a
FakeLLMServer (tests/test_docs.py); the ``python`` blocks start a real
llama.cpp server, so they are run here, each in a fresh interpreter.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real

_ROOT = Path(__file__).resolve().parents[2]
_PAGE = _ROOT / "docs" / "local_models.md"
_EXAMPLES = re.findall(r"^```python\n(.*?)^```", _PAGE.read_text(encoding="utf-8"), re.S | re.M)


def _env() -> dict[str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.endswith(("_API_KEY", "_BASE_URL")) and name != "OLLAMA_HOST"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    return env


def test_the_page_has_python_examples() -> None:
    assert len(_EXAMPLES) >= 2


@pytest.mark.parametrize("source", _EXAMPLES, ids=[f"example{n}" for n in range(len(_EXAMPLES))])
def test_python_example_runs(llama_cpp_installed: None, source: str) -> None:
    result = subprocess.run([sys.executable, "-c", source], env=_env(), capture_output=True,
                            text=True, timeout=120, stdin=subprocess.DEVNULL)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), result.stderr
