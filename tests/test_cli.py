"""The ``litestream`` command (litestream._cli.command and .chat), run as a subprocess
against FakeLLMServer. The demo is tested in test_demo.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

from litestream._cli import chat, command
from litestream._cli.meter import StreamMeter
from litestream.testing import FakeLLMServer
from litestream.types import Usage

ROOT = Path(__file__).resolve().parents[1]
_TIMEOUT = 30


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any provider key or base URL, plus ``extra``."""
    env = {
        name: value for name, value in os.environ.items()
        if not name.endswith(("_API_KEY", "_BASE_URL")) and name != "OLLAMA_HOST"
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def openai_env(server: FakeLLMServer) -> dict[str, str]:
    return clean_env(OPENAI_API_KEY="test", OPENAI_BASE_URL=server.api_base("openai"))


def run(args: list[str], env: dict[str, str], stdin: Optional[str] = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "litestream", *args], input=stdin, env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=_TIMEOUT,
    )


# -- chat ---------------------------------------------------------------------


def test_chat_writes_exactly_the_upstream_text_to_stdout():
    text = "Streams are channels; chunks arrive in order, one by one."
    with FakeLLMServer() as server:
        server.script(text=text, chunks=7)
        result = run(["chat", "Tell me about streams"], openai_env(server))
        request = server.last_request

    assert result.returncode == 0, result.stderr
    assert result.stdout == text
    assert result.stderr == ""  # stdout is not a terminal: no status line
    assert request.json["messages"] == [{"role": "user", "content": "Tell me about streams"}]
    assert request.json["model"] == "gpt-4o-mini"


def test_chat_reads_the_prompt_from_stdin_and_sends_the_system_message():
    with FakeLLMServer() as server:
        server.script(text="Bonjour.")
        result = run(["chat", "-m", "openai/gpt-4o", "--system", "Answer in French."],
                     openai_env(server), stdin="Say hello\n")
        request = server.last_request

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Bonjour."
    assert request.json["model"] == "gpt-4o"
    assert request.json["messages"] == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Say hello\n"},
    ]


def test_chat_stats_prints_the_usage_the_provider_reported_on_stderr():
    with FakeLLMServer() as server:
        server.script(text="one two three four", usage={"prompt_tokens": 18,
                                                        "completion_tokens": 4})
        result = run(["chat", "--stats", "count"], openai_env(server))

    assert result.returncode == 0
    assert result.stdout == "one two three four"
    assert ("[openai/gpt-4o-mini] Tokens: 18 prompt + 4 completion = 22 tokens (reported)"
            in result.stderr)
    assert "Tokens/sec:" in result.stderr
    assert "estimated" not in result.stderr


def test_chat_stats_shows_the_cost_when_it_is_known():
    from decimal import Decimal

    from litestream.cost import available, cost_of
    from litestream.types import Usage

    with FakeLLMServer() as server:
        server.script(text="one two", usage={"prompt_tokens": 1000, "completion_tokens": 2})
        result = run(["chat", "--stats", "count"], openai_env(server))
    assert result.returncode == 0, result.stderr
    if not available():
        assert "Cost:" not in result.stderr
        return
    price = cost_of("openai", "gpt-4o-mini", Usage(1000, 2))
    assert isinstance(price, Decimal)
    assert f"| Cost: ${price:.6f}" in result.stderr


def test_chat_stats_marks_an_estimate_when_the_provider_reports_no_usage():
    body = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
            b'"choices":[{"index":0,"delta":{"content":"Hello, world!"},'
            b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    with FakeLLMServer() as server:
        server.replay(body)
        result = run(["chat", "--stats", "hi"], openai_env(server))

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, world!"
    assert "Tokens: ~4 tokens (estimated)" in result.stderr


def test_chat_timeouts_reach_the_call():
    with FakeLLMServer() as server:
        server.script(text="two words and then silence", stall_after=2)
        idle = run(["chat", "--idle-timeout", "0.3", "hi"], openai_env(server))
        server.script(text="two words and then silence", stall_after=2)
        total = run(["chat", "--timeout", "0.5", "hi"], openai_env(server))

    assert idle.returncode == 1
    assert idle.stdout == "two words"
    assert "IdleTimeout" in idle.stderr
    assert total.returncode == 1
    assert total.stdout == "two words"
    assert "TotalTimeout" in total.stderr


@pytest.mark.parametrize("option", ["--timeout", "--idle-timeout"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "soon", "-inf"])
def test_a_bad_timeout_is_a_usage_error_naming_the_option(option, value):
    with FakeLLMServer() as server:
        result = run(["chat", f"{option}={value}", "hi"], openai_env(server))
        requests_seen = len(server.requests)

    assert result.returncode == 2
    assert f"argument {option}: {option} must be" in result.stderr
    assert requests_seen == 0


@pytest.mark.parametrize("args, variables", [
    (["--base-url", "127.0.0.1:8080/v1"], {}),
    (["--base-url", "ftp://127.0.0.1/v1"], {}),
    ([], {"OPENAI_BASE_URL": "localhost:8080/v1"}),
])
def test_a_base_url_without_a_scheme_is_a_usage_error(args, variables):
    result = run(["chat", *args, "hi"], clean_env(OPENAI_API_KEY="test", **variables))

    assert result.returncode == 2
    assert "must be an http:// or https:// URL" in result.stderr
    assert result.stdout == ""


def test_base_url_option_points_the_chat_at_a_server():
    with FakeLLMServer() as server:
        server.script(text="via --base-url")
        result = run(["chat", "--base-url", server.api_base("openai"), "hi"],
                     clean_env(OPENAI_API_KEY="test"))

    assert result.returncode == 0, result.stderr
    assert result.stdout == "via --base-url"


def test_chat_json_prints_one_openai_chunk_per_line():
    text = "JSON lines, one chunk each."
    with FakeLLMServer() as server:
        server.script(text=text, chunks=4)
        result = run(["chat", "--json", "hi"], openai_env(server))

    assert result.returncode == 0, result.stderr
    chunks = [json.loads(line) for line in result.stdout.splitlines()]
    assert chunks and all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    content = "".join(
        choice["delta"].get("content") or "" for chunk in chunks for choice in chunk["choices"]
    )
    assert content == text
    assert chunks[-1]["usage"]["completion_tokens"] == 4


def test_chat_speaks_each_provider_through_its_base_url_variable():
    with FakeLLMServer() as server:
        server.script(text="Hello from the Anthropic wire format.")
        env = clean_env(ANTHROPIC_API_KEY="test", ANTHROPIC_BASE_URL=server.api_base("anthropic"))
        result = run(["chat", "-m", "anthropic", "hi"], env)
        path = server.last_request.path

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello from the Anthropic wire format."
    assert path.endswith("/v1/messages")


def test_chat_exits_1_with_the_error_summary_on_a_401():
    with FakeLLMServer() as server:
        server.script(error_status=401)
        result = run(["chat", "hi"], openai_env(server))

    assert result.returncode == 1
    assert result.stdout == ""
    assert "AuthenticationError: openai/gpt-4o-mini HTTP 401" in result.stderr
    assert "test" not in result.stderr.split("HTTP 401", 1)[1]  # the key is never shown


@pytest.mark.parametrize("args", [
    ["chat", "--no-such-option", "hi"],
    ["chat", "-m", "no-such-provider/model", "hi"],
    ["frobnicate"],
    [],
])
def test_usage_errors_exit_2(args):
    result = run(args, clean_env(OPENAI_API_KEY="test"))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr


def test_chat_with_an_empty_prompt_is_a_usage_error():
    result = run(["chat"], clean_env(OPENAI_API_KEY="test"), stdin="  \n")

    assert result.returncode == 2
    assert "no prompt" in result.stderr


def test_chat_without_a_key_names_the_variables_and_suggests_the_demo():
    result = run(["chat", "hi"], clean_env())

    assert result.returncode == 2
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
                     "MISTRAL_API_KEY", "OPENROUTER_API_KEY", "OLLAMA_HOST"):
        assert variable in result.stderr
    assert "litestream demo" in result.stderr


def test_chat_for_a_provider_without_its_key_names_that_variable():
    result = run(["chat", "-m", "mistral", "hi"], clean_env(OPENAI_API_KEY="test"))

    assert result.returncode == 2
    assert "MISTRAL_API_KEY" in result.stderr
    assert "litestream demo" in result.stderr


def test_ctrl_c_closes_the_stream_and_exits_130():
    with FakeLLMServer() as server:
        server.script(text="first words and then a very long silence", stall_after=2)
        # A process inherits an ignored SIGINT (a shell ignores it in background
        # jobs, CI runners may too) and Python then installs no handler. A handled
        # signal is reset to its default by exec: handle it here while starting.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "litestream", "chat", "hi"], env=openai_env(server),
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                bufsize=0,  # read(1) takes one byte; communicate() gets the rest
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            first = process.stdout.read(1)  # the answer has started: the stream is open
            process.send_signal(signal.SIGINT)
            rest, stderr = process.communicate(timeout=_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        disconnected = server.wait_for_disconnect(5)

    assert first == b"f"
    assert process.returncode == 130, stderr
    assert (first + rest).decode().startswith("first")
    assert b"interrupted" in stderr
    assert disconnected


def test_a_closed_pipe_ends_chat_quietly_and_closes_the_stream():
    with FakeLLMServer() as server:
        server.script(text="word " * 50, delay=0.02)
        process = subprocess.Popen(
            [sys.executable, "-m", "litestream", "chat", "hi"], env=openai_env(server),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
        )
        try:
            first = process.stdout.read(1)
            process.stdout.close()  # like `litestream chat ... | head -c 1`
            stderr = process.stderr.read()
            process.wait(timeout=_TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stderr.close()
        disconnected = server.wait_for_disconnect(5)

    assert first == b"w"
    assert process.returncode == 1
    assert b"Traceback" not in stderr
    assert disconnected


# -- providers ----------------------------------------------------------------


def test_providers_lists_every_provider_with_key_state_model_and_url():
    result = run(["providers"], clean_env(OPENAI_API_KEY="test",
                                          MISTRAL_BASE_URL="http://127.0.0.1:9/v1"))

    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PROVIDER", "API", "KEY", "DEFAULT", "MODEL", "BASE", "URL"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"openai", "anthropic", "gemini", "mistral", "openrouter", "ollama"}
    assert "OPENAI_API_KEY set" in rows["openai"]
    assert "ANTHROPIC_API_KEY not set" in rows["anthropic"]
    assert "http://127.0.0.1:9/v1" in rows["mistral"]
    assert "gpt-4o-mini" in rows["openai"] and "https://api.openai.com/v1" in rows["openai"]
    assert "not needed" in rows["ollama"]


# -- in-process pieces ---------------------------------------------------------


def test_main_returns_exit_codes_instead_of_exiting(capsys):
    assert command.main(["--help"]) == 0
    assert command.main(["chat", "--bogus"]) == 2
    assert "usage:" in capsys.readouterr().err


def test_resolve_chat_target_picks_the_first_provider_with_a_key():
    env = {"MISTRAL_API_KEY": "m", "OPENROUTER_API_KEY": "o"}

    assert chat.resolve_chat_target(None, env) == chat.ChatTarget("mistral", "mistral-small-latest")
    assert chat.resolve_chat_target("openrouter/openai/gpt-4o", env) == chat.ChatTarget(
        "openrouter", "openai/gpt-4o")
    assert chat.resolve_chat_target("ollama", {}) == chat.ChatTarget("ollama", "llama3.2")
    with pytest.raises(chat.UsageError, match="OPENAI_API_KEY"):
        chat.resolve_chat_target(None, {})


def test_stream_meter_estimates_tokens_of_the_whole_text():
    meter = StreamMeter()
    for piece in ("Hel", "lo, wor", "ld!", None, ""):
        meter.add(piece)
    meter.finish()

    assert meter.text == "Hello, world!"
    assert meter.tokens == 4
    assert meter.summary().startswith("Tokens: ~4 tokens (estimated) | Time: ")


def test_stream_meter_prefers_the_reported_usage():
    meter = StreamMeter()
    meter.add("Hello, world!")
    meter.add_usage(Usage(prompt_tokens=7, completion_tokens=3))
    meter.add_usage(None)

    assert meter.tokens == 3
    assert meter.usage_text() == "7 prompt + 3 completion = 10 tokens (reported)"


def test_model_spec_keeps_the_provider_slash_model_form():
    env = {"OPENROUTER_API_KEY": "o", "OPENAI_API_KEY": "k"}

    assert chat.resolve_chat_target("openai/gpt-4o", env) == chat.ChatTarget("openai", "gpt-4o")
    assert chat.resolve_chat_target("openrouter/meta-llama/llama-3.1-8b-instruct", env).model == (
        "meta-llama/llama-3.1-8b-instruct")


def test_nothing_in_the_library_imports_the_cli():
    code = ("import sys, litestream, litestream.testing, litestream.integrations.proxy, "
            "litestream.router, litestream.streaming; "
            "assert not [m for m in sys.modules if m.startswith('litestream._cli')], 'imported'")
    result = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True,
                            text=True, timeout=_TIMEOUT)

    assert result.returncode == 0, result.stderr
