"""Every example script runs offline (no API key set) and prints what it promises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from litestream.testing import FakeLLMServer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: Web apps are tested by their own tests (they serve instead of exiting).
WEB_EXAMPLES = {"flask_app.py"}

#: What each example must print on stdout, in this order.
EXPECTED = {
    "streaming_cli.py": [
        "Assistant:\n",
        "Machine learning finds patterns in data and uses them to make predictions.\n",
    ],
    "collect.py": [
        "AI is the study of machines that learn, reason and act.\n",
        "finish_reason: stop\n",
        "total tokens: 21\n",
    ],
    "metrics.py": [
        "Streaming shows the first words at once",
        "so a long answer feels fast.\n\nTokens: ",
        " | Time: ",
        "ms | Tokens/sec: ",
    ],
    "timeout_with_alts.py": [
        "A short answer that arrives in time.\nComplete!\n",
        "A long answer\nTimeout after 0.5 s!\n",
    ],
    "multiple_configs.py": [
        "=== fast ===\nFast: a quick, short answer.\n(openai/gpt-4o-mini)\n",
        "=== smart ===\nSmart: a considered answer, from another wire format.\n"
        "(anthropic/claude-3-5-haiku-latest)\n",
    ],
    "error_handling.py": [
        "Litestream error: RateLimitError: openai/gpt-4o-mini HTTP 429",
        "(retry after 2.0s)",
        "category=provider retryable=True",
        "Litestream error: AuthenticationError: openai/gpt-4o-mini HTTP 401",
        "category=client retryable=False",
        "This answer breaks\nLitestream error: ProviderError: openai/gpt-4o-mini",
        "partial_content='This answer breaks'",
        "Setup error: unknown provider 'no-such-provider'",
        "Setup error: malformed request",
        "And this one works.\nSuccess!\n",
    ],
    "best_practices.py": [
        "Each request gets its own stream, consumed by the handler.\n[complete]\n",
        "'Only the first'\nstream closed: True\n",
        "This provider\n[failed] IdleTimeout: openai/gpt-4o-mini",
    ],
}


def offline_env() -> dict[str, str]:
    """The environment with every provider key and base URL removed."""
    env = {
        name: value for name, value in os.environ.items()
        if not name.endswith(("_API_KEY", "_BASE_URL")) and name != "OLLAMA_HOST"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_every_example_script_is_tested():
    scripts = {
        path.name for path in EXAMPLES.glob("*.py")
        if not path.name.startswith("_") and path.name not in WEB_EXAMPLES
    }
    assert scripts == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_offline_and_prints_its_results(name):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)], env=offline_env(), cwd=ROOT,
        capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "talking to FakeLLMServer" in result.stderr
    position = 0
    for expected in EXPECTED[name]:
        found = result.stdout.find(expected, position)
        assert found >= 0, f"{expected!r} missing (in order) from:\n{result.stdout}"
        position = found + len(expected)


def test_readme_ten_line_example_runs_against_the_providers_named_in_it():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    code = re.search(r"## Ten lines\n\n```python\n(.*?)```", readme, re.DOTALL).group(1)
    with FakeLLMServer() as server:
        server.script(text="Water finds its way", chunks=3)
        server.script(text="Hello!", usage={"prompt_tokens": 3, "completion_tokens": 2})
        env = offline_env()
        for provider in ("openai", "anthropic"):
            env[f"{provider.upper()}_API_KEY"] = "test"
            env[f"{provider.upper()}_BASE_URL"] = server.api_base(provider)
        result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Water finds its way\nHello! Usage(")


def test_web_examples_read_their_upstream_from_the_environment(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import _setup

    upstream = _setup.upstream_from_env({"LITESTREAM_PROVIDER": "anthropic",
                                         "LITESTREAM_API_BASE": "http://127.0.0.1:1"})
    keyed = _setup.upstream_from_env({"LITESTREAM_API_BASE": "http://h", "OPENAI_API_KEY": "sk-x"})

    assert (upstream.provider, upstream.model) == ("anthropic", "gpt-4o-mini")
    assert upstream.config == {"api_base": "http://127.0.0.1:1", "api_key": "no-key-needed"}
    assert "api_key" not in keyed.config
