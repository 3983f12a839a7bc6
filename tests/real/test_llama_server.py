"""End to end against a real model: llama.cpp's server running SmolLM2 on loopback.

Everything goes through litestream's public API (and, for comparison, the
official ``openai`` SDK). A small model's wording is not a contract, so the
tests assert on structure and on agreement between clients: at temperature 0
the server repeats its reply exactly, whoever asks and however.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import openai
import pytest
from werkzeug.serving import BaseWSGIServer, make_server

import litestream as ls
from litestream.testing.local import LocalModelServer

pytestmark = pytest.mark.real

_ROOT = Path(__file__).resolve().parents[2]
_SHORT_PROMPT = "List three colors, one per line."
_LONG_PROMPT = "Write a long story about a dragon."
#: Long enough for several chunks, short enough to keep the suite fast.
_MAX_TOKENS = 32
#: The longest reply any test asks for.
_LONG_MAX_TOKENS = 48
#: How soon the server must take a new request after a stream was closed: it
#: serves one request at a time, so a closed stream that kept generating
#: would hold the next one back.
_PROMPT_ANSWER = 10.0


def _prime(server: LocalModelServer) -> None:
    """Put the server's KV cache in one known state before a request whose text is compared.

    llama.cpp reuses the cache of the longest prefix shared with the previous
    request and evaluates only the rest of the prompt. How the prompt is split
    changes the logits in their last bits, which is enough to flip a near tie
    at temperature 0: the same request asked twice in a row can diverge after
    twenty tokens. A one-token request with an unrelated prompt first makes
    every compared request evaluate the same suffix in the same way.
    """
    ls.completion("openai_compatible", server.model,
               {"messages": [{"role": "user", "content": "Hello."}], "max_tokens": 1},
               _config(server))


def _request(
    prompt: str = _SHORT_PROMPT, max_tokens: int = _MAX_TOKENS, stream: bool = False
) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": max_tokens,
        "stream": stream,
    }


def _config(server: LocalModelServer) -> dict[str, Any]:
    return {"api_base": server.api_base, "first_chunk_timeout": 60.0}


def _stream(server: LocalModelServer, **request: Any) -> ls.Channel[ls.Chunk]:
    return ls.completion("openai_compatible", server.model, _request(stream=True, **request),
                      _config(server))


def _reply_text(server: LocalModelServer, **request: Any) -> str:
    response = ls.completion("openai_compatible", server.model, _request(**request),
                             _config(server))
    text = ls.extract_content(response)
    assert text, "the non-streamed reply has no text"
    return text


def _read_all(stream: ls.Channel[ls.Chunk]) -> tuple[str, list[ls.Chunk]]:
    with stream:
        chunks = list(stream)
    return "".join(ls.extract_content(chunk) or "" for chunk in chunks), chunks


def _finish_reasons(chunks: list[ls.Chunk]) -> list[str]:
    return [choice.finish_reason for chunk in chunks for choice in chunk.choices
            if choice.finish_reason is not None]


def _openai_sdk_text(api_base: str, model: str, **request: Any) -> str:
    """Stream ``request`` with the official SDK and return the joined text."""
    parts = []
    with openai.OpenAI(base_url=api_base, api_key="not-needed", max_retries=0) as client:
        with client.chat.completions.create(model=model, **_request(stream=True, **request)) as sdk:
            for chunk in sdk:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


def _assert_answers_promptly(server: LocalModelServer) -> None:
    started = time.monotonic()
    text = _reply_text(server, max_tokens=5)
    elapsed = time.monotonic() - started
    assert text
    assert elapsed < _PROMPT_ANSWER, f"the next request took {elapsed:.1f} s"


# ---------------------------------------------------------------------------
# Streaming against the real server
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai_compatible", "openai"])
def test_streamed_reply_equals_non_streamed_reply_and_openai_sdk(
    llama_server: LocalModelServer, provider: str
) -> None:
    # "openai" with a base URL and a dummy key is how many users reach such servers.
    config = {**_config(llama_server), "api_key": "sk-local-not-needed"}
    _prime(llama_server)
    stream = ls.completion(provider, llama_server.model, _request(stream=True), config)
    streamed, chunks = _read_all(stream)

    assert streamed.strip(), "the streamed reply has no text"
    assert sum(1 for chunk in chunks if ls.extract_content(chunk)) > 1
    assert all(chunk.provider == provider for chunk in chunks)
    reasons = _finish_reasons(chunks)
    assert reasons and reasons[-1] in ("stop", "length")
    _prime(llama_server)
    assert streamed == _reply_text(llama_server)
    _prime(llama_server)
    assert streamed == _openai_sdk_text(llama_server.api_base, llama_server.model)


def test_max_tokens_5_finishes_with_length(llama_server: LocalModelServer) -> None:
    text, chunks = _read_all(_stream(llama_server, prompt=_LONG_PROMPT, max_tokens=5))

    assert text
    assert _finish_reasons(chunks)[-1] == "length"
    assert sum(1 for chunk in chunks if ls.extract_content(chunk)) <= 5


def test_collect_stream_equals_the_non_streamed_response(llama_server: LocalModelServer) -> None:
    _prime(llama_server)
    collected = ls.collect_stream(_stream(llama_server), timeout=60)
    _prime(llama_server)
    response = ls.completion("openai_compatible", llama_server.model, _request(),
                          _config(llama_server))

    assert collected.content == response.content
    assert collected.choices[0].finish_reason == response.choices[0].finish_reason
    assert collected.choices[0].message.role == "assistant"


def test_close_after_first_content_then_a_new_request_succeeds(
    llama_server: LocalModelServer,
) -> None:
    stream = _stream(llama_server, prompt=_LONG_PROMPT, max_tokens=_LONG_MAX_TOKENS)
    first = None
    for chunk in stream:
        first = ls.extract_content(chunk)
        if first:
            break
    stream.close()

    assert first
    assert stream.join(2.0), "the reader thread outlived close()"
    assert stream.get(timeout=1.0) is None
    _assert_answers_promptly(llama_server)


def test_alts_with_a_per_stream_timeout_closes_the_late_stream(
    llama_server: LocalModelServer,
) -> None:
    # The server answers one request at a time, so the second stream waits
    # behind the first; its timeout channel fires before it can say anything.
    _prime(llama_server)
    expected = _reply_text(llama_server, prompt=_LONG_PROMPT, max_tokens=_LONG_MAX_TOKENS)
    _prime(llama_server)
    first = _stream(llama_server, prompt=_LONG_PROMPT, max_tokens=_LONG_MAX_TOKENS)
    head = first.get(timeout=60)
    while ls.extract_content(head) is None:
        head = first.get(timeout=60)
    late = _stream(llama_server, prompt=_SHORT_PROMPT, max_tokens=_LONG_MAX_TOKENS)
    late_deadline = ls.timeout(0.1)

    texts: dict[int, list[str]] = {id(first): [ls.extract_content(head) or ""], id(late): []}
    events = []
    waiting_on: list[ls.Channel[Any]] = [first, late, late_deadline]
    try:
        while waiting_on:
            value, channel = ls.alts(waiting_on, timeout=60)
            if channel is late_deadline:
                events.append("late timed out")
                late.close()
                waiting_on = [c for c in waiting_on if c is not late and c is not late_deadline]
            elif value is None:
                events.append("first finished" if channel is first else "late finished")
                waiting_on = [c for c in waiting_on if c is not channel]
            else:
                texts[id(channel)].append(ls.extract_content(value) or "")
    finally:
        first.close()
        late.close()

    assert events == ["late timed out", "first finished"]
    assert "".join(texts[id(first)]) == expected
    assert texts[id(late)] == []
    assert late.closed and late.join(2.0), "the timed-out stream's reader is still running"
    _assert_answers_promptly(llama_server)


def test_router_falls_back_from_a_dead_endpoint_to_the_real_server(
    llama_server: LocalModelServer, dead_api_base: str
) -> None:
    router = ls.Router()
    router.register("local", "openai_compatible", llama_server.model, _config(llama_server))
    router.register("dead", "openai_compatible", llama_server.model,
                    {"api_base": dead_api_base, "connect_timeout": 2.0},
                    fallbacks=["local"], max_retries=0)

    _prime(llama_server)
    stream = router.completion("dead", _request(stream=True))
    text, chunks = _read_all(stream)
    _prime(llama_server)

    assert text == _reply_text(llama_server)
    assert _finish_reasons(chunks)[-1] in ("stop", "length")
    assert len(stream.attempts) >= 1, "the dead endpoint's failure was not recorded"


# ---------------------------------------------------------------------------
# The Flask proxy example and the command line
# ---------------------------------------------------------------------------


def _load_flask_example() -> ModuleType:
    path = _ROOT / "examples" / "flask_app.py"
    if not path.exists():
        pytest.fail(f"{path} is missing")
    # The web examples share examples/_setup.py, imported as a sibling module.
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    spec = importlib.util.spec_from_file_location("litestream_example_flask_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def flask_proxy(llama_server: LocalModelServer) -> Iterator[str]:
    """The Flask proxy example before the real server, served by werkzeug; yields its api_base."""
    app = _load_flask_example().create_app(
        provider="openai_compatible", model=llama_server.model, config=_config(llama_server)
    )
    server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    # Join the request threads on server_close(), so no connection outlives the test.
    server.daemon_threads = False  # type: ignore[attr-defined]
    serving = threading.Thread(target=server.serve_forever, name="flask-proxy", daemon=True)
    serving.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1"
    finally:
        server.shutdown()
        serving.join(10)
        server.server_close()


def test_flask_proxy_gives_the_same_text_as_the_server(
    llama_server: LocalModelServer, flask_proxy: str
) -> None:
    _prime(llama_server)
    direct = _openai_sdk_text(llama_server.api_base, llama_server.model)
    _prime(llama_server)
    proxied = _openai_sdk_text(flask_proxy, llama_server.model)

    assert direct.strip()
    assert proxied == direct


def test_litestream_chat_prints_the_reply(llama_server: LocalModelServer) -> None:
    env = {**os.environ, "OPENAI_BASE_URL": llama_server.api_base,
           "OPENAI_API_KEY": "sk-local-not-needed", "PYTHONPATH": str(_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "litestream", "chat", "-m", f"openai/{llama_server.model}",
         "Reply with one short sentence: what color is the sky?"],
        env=env, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), f"nothing printed; stderr: {result.stderr}"
    assert "litestream chat:" not in result.stderr
