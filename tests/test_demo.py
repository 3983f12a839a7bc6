"""``litestream demo`` (litestream._cli.demo): every section runs offline, as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from litestream._cli import demo

ROOT = Path(__file__).resolve().parents[1]


def clean_env() -> dict[str, str]:
    """The environment without any provider key or base URL."""
    env = {
        name: value for name, value in os.environ.items()
        if not name.endswith(("_API_KEY", "_BASE_URL")) and name != "OLLAMA_HOST"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def test_demo_runs_offline_and_shows_every_section():
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "litestream", "demo"], env=clean_env(),
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert elapsed < 10
    out = result.stdout
    for number, (title, _) in enumerate(demo.SECTIONS, 1):
        assert f"== {number}. {title} ==" in out
    # 1. the streamed answer
    assert "Channels carry each chunk from a reader thread to your loop" in out
    # 2. metrics: the usage Anthropic's wire format reports, time and tokens/s
    assert "Tokens: 10 prompt + " in out and "tokens (reported)" in out
    assert "Tokens/sec:" in out and "Time:" in out
    # 3. alts: one stream finishes, the stalled one times out and is closed
    assert "fast: finished: 'The fast stream answers in full.'" in out
    assert "stalled: timed out after 0.5 s" in out and "stream closed" in out
    assert "server saw the stalled connection closed: True" in out
    # 4. callbacks, then the 429 through on_error and error_summary
    assert "on_complete: finish_reason=stop, total tokens=20" in out
    assert "on_error: RateLimitError: openai/gpt-4o-mini HTTP 429" in out
    assert "(retry after 2.0s)" in out
    # 5. collect_stream
    assert "content: 'Let me check the weather.'" in out
    assert 'tool call: get_weather({"city": "Paris"})' in out
    assert "usage: 20 prompt + 15 completion = 35 tokens" in out
    assert result.stderr == ""
