"""The Sphinx site builds without a warning, and every example in it runs.

Both builds run in subprocesses, at the same time: the HTML build with ``-W``
(a broken reference, a bad docstring or a missing page fails it), and the
doctest build, which runs each ``>>>`` example of the guide and of the
docstrings. Each guide page starts its own FakeLLMServer in a visible
example: no snippet depends on setup hidden in ``docs/conf.py`` or in a
hidden block.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

def _env() -> dict[str, str]:
    env = {
        name: value for name, value in os.environ.items()
        if not name.endswith(("_API_KEY", "_BASE_URL")) and name != "OLLAMA_HOST"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _start_build(builder: str, out: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", builder,
         "-d", str(out / "doctrees"), str(DOCS), str(out / builder)],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Run the html and doctest builds in parallel; return builder -> (code, output, dir)."""
    out = tmp_path_factory.mktemp("docs")
    processes = {
        builder: _start_build(builder, out / builder) for builder in ("html", "doctest")
    }
    results = {}
    for builder, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        results[builder] = (process.returncode, stdout + stderr, out / builder / builder)
    return results


def test_html_builds_without_warnings(builds):
    code, output, html = builds["html"]

    assert code == 0, output
    assert "WARNING" not in output and "ERROR" not in output, output
    pages = {path.relative_to(html).as_posix() for path in html.rglob("*.html")}
    for page in ("index.html", "quickstart.html", "cli.html", "providers.html", "errors.html",
                 "guide/consuming.html", "guide/callbacks.html", "guide/collect.html",
                 "guide/web.html", "guide/metrics.html", "guide/timeouts.html",
                 "guide/multiple_configs.html", "guide/error_handling.html",
                 "guide/best_practices.html", "guide/troubleshooting.html",
                 "api/index.html", "api/channels.html", "api/types.html", "api/errors.html",
                 "api/streaming.html", "api/router.html", "api/testing.html",
                 "api/integrations.html", "api/timer.html", "local_models.html",
                 "reliability.html"):
        assert page in pages


def test_api_reference_documents_the_public_names(builds):
    _, _, html = builds["html"]

    channels = (html / "api" / "channels.html").read_text(encoding="utf-8")
    streaming = (html / "api" / "streaming.html").read_text(encoding="utf-8")
    for name in ("litestream.channels.Channel", "litestream.channels.alts",
                 "litestream.channels.timeout"):
        assert f'id="{name}"' in channels
    for name in ("collect_stream", "consume_stream_with_callbacks", "to_sse_stream"):
        assert f'id="litestream.streaming.{name}"' in streaming


def test_every_docs_example_runs(builds):
    code, output, doctest_dir = builds["doctest"]

    report = (doctest_dir / "output.txt").read_text(encoding="utf-8")
    assert code == 0, output + report
    assert "0 failures in tests" in report, report
    assert "0 failures in setup code" in report and "0 failures in cleanup code" in report
    for page in ("quickstart", "guide/consuming", "guide/callbacks", "guide/timeouts",
                 "guide/error_handling", "errors"):
        assert f"Document: {page}\n" in report


def test_every_guide_snippet_shows_its_setup():
    conf = (DOCS / "conf.py").read_text(encoding="utf-8")
    hidden = [path.relative_to(DOCS).as_posix() for path in DOCS.rglob("*.md")
              if ":hide:" in path.read_text(encoding="utf-8")]

    assert "FakeLLMServer()" not in conf and "os.environ" not in conf
    assert hidden == []
    for path in DOCS.rglob("*.md"):
        text = path.read_text(encoding="utf-8")
        if "server.script(" in text:
            assert "server = FakeLLMServer().start()" in text, path
