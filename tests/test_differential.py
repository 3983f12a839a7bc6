"""Differential tests: the official SDKs and litestream read the same bytes the same way.

Every recorded transcript is served by FakeLLMServer, byte for byte, once to
the provider's official Python client and once to ``litestream.completion``;
the text, the tool calls and the usage must agree. Where the transcript ends
in an error, both must fail, after the same text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

import litestream as ls
from litestream.testing import FakeLLMServer

FIXTURES = Path(__file__).parent / "fixtures" / "streams"
MESSAGES = [{"role": "user", "content": "Hi"}]


class Outcome:
    """What one client made of a stream: text, tool calls (name, parsed arguments), usage."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.tool_calls: list[tuple[str, Any]] = []
        self.usage: tuple[int, int] | None = None
        self.failed = False
        self._fragments: dict[int, list[Any]] = {}

    def add_fragment(self, index: int, name: str | None, arguments: str | None) -> None:
        """Merge one streamed tool-call fragment into the call with that index."""
        entry = self._fragments.setdefault(index, [None, []])
        entry[0] = entry[0] or name
        entry[1].append(arguments or "")

    def merge_fragments(self) -> None:
        """Turn the merged fragments into whole calls with parsed arguments."""
        self.tool_calls = [(name, _arguments("".join(parts)))
                           for name, parts in self._fragments.values()]

    def summary(self) -> tuple[str, list[tuple[str, Any]], tuple[int, int] | None, bool]:
        return "".join(self.text), self.tool_calls, self.usage, self.failed


def _arguments(text: str) -> Any:
    return json.loads(text) if text else {}


def _cases() -> list[tuple[str, Path]]:
    return [(path.parent.name, path) for path in sorted(FIXTURES.glob("*/*.txt"))]


@pytest.fixture(scope="module")
def server():
    with FakeLLMServer() as fake:
        yield fake


def _model_of(provider: str, case: Path) -> str:
    meta = json.loads(case.with_suffix(".json").read_text())
    if provider == "gemini":
        return meta["path"].split("/models/")[1].split(":")[0]
    return {"mistral": "mistral-small-latest"}.get(provider, "model-from-transcript")


def read_with_litestream(server: FakeLLMServer, provider: str, case: Path) -> Outcome:
    outcome = Outcome()
    server.replay(case)
    stream = ls.completion(provider, _model_of(provider, case), messages=MESSAGES, stream=True,
                           api_key="differential-key", api_base=server.api_base(provider))
    try:
        with stream:
            for chunk in stream:
                if chunk.usage is not None:
                    outcome.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    outcome.text.append(choice.delta.content or "")
                    for call in choice.delta.tool_calls:
                        outcome.add_fragment(call.index, call.name, call.arguments)
    except ls.LitestreamError:
        outcome.failed = True
    outcome.merge_fragments()
    return outcome


def read_with_openai(server: FakeLLMServer, provider: str, case: Path) -> Outcome:
    openai = pytest.importorskip("openai")
    outcome = Outcome()
    server.replay(case)
    with openai.OpenAI(base_url=server.api_base(provider), api_key="x", max_retries=0) as client:
        try:
            for chunk in client.chat.completions.create(
                model=_model_of(provider, case), messages=MESSAGES, stream=True,
                stream_options={"include_usage": True},
            ):
                if chunk.usage is not None:
                    outcome.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    outcome.text.append(choice.delta.content or "")
                    for call in choice.delta.tool_calls or ():
                        function = call.function
                        outcome.add_fragment(call.index, function and function.name,
                                             function and function.arguments)
        except openai.APIError:
            outcome.failed = True
    outcome.merge_fragments()
    return outcome


def read_with_anthropic(server: FakeLLMServer, provider: str, case: Path) -> Outcome:
    anthropic = pytest.importorskip("anthropic")
    outcome = Outcome()
    server.replay(case)
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as client:
        try:
            with client.messages.stream(model="claude-sonnet-4-20250514", max_tokens=64,
                                        messages=MESSAGES) as stream:
                for text in stream.text_stream:
                    outcome.text.append(text)
                message = stream.get_final_message()
        except anthropic.APIError:
            outcome.failed = True
            return outcome
    outcome.tool_calls = [(block.name, block.input) for block in message.content
                          if block.type == "tool_use"]
    if message.stop_reason is not None:
        outcome.usage = (message.usage.input_tokens, message.usage.output_tokens)
    return outcome


def read_with_genai(server: FakeLLMServer, provider: str, case: Path) -> Outcome:
    genai = pytest.importorskip("google.genai")
    types = pytest.importorskip("google.genai.types")
    outcome = Outcome()
    server.replay(case)
    client = genai.Client(api_key="x", http_options=types.HttpOptions(base_url=server.url))
    try:
        for response in client.models.generate_content_stream(
            model=_model_of(provider, case), contents="Hi"
        ):
            for candidate in response.candidates or ():
                for part in (candidate.content and candidate.content.parts) or ():
                    if part.text and not part.thought:
                        outcome.text.append(part.text)
                    if part.function_call:
                        outcome.tool_calls.append(
                            (part.function_call.name, dict(part.function_call.args or {})))
            usage = response.usage_metadata
            if usage is not None:
                completion = (usage.candidates_token_count or 0) + (
                    usage.thoughts_token_count or 0)
                outcome.usage = (usage.prompt_token_count or 0, completion)
    finally:
        client.close()
    return outcome


def read_with_ollama(server: FakeLLMServer, provider: str, case: Path) -> Outcome:
    ollama = pytest.importorskip("ollama")
    outcome = Outcome()
    server.replay(case)
    client = ollama.Client(host=server.url)
    try:
        for part in client.chat(model="llama3.2", messages=MESSAGES, stream=True):
            outcome.text.append(part.message.content or "")
            for call in part.message.tool_calls or ():
                outcome.tool_calls.append((call.function.name, dict(call.function.arguments)))
            if part.done:
                outcome.usage = (part.prompt_eval_count or 0, part.eval_count or 0)
    except ollama.ResponseError:
        outcome.failed = True
    finally:
        client._client.close()
    return outcome


def read_with_openai_responses(server: FakeLLMServer, provider: str, case: Path) -> Outcome:
    openai = pytest.importorskip("openai")
    outcome = Outcome()
    server.replay(case)
    with openai.OpenAI(base_url=server.api_base(provider), api_key="x", max_retries=0) as client:
        try:
            for event in client.responses.create(model="model-from-transcript", input="Hi",
                                                 stream=True):
                if event.type == "response.output_text.delta":
                    outcome.text.append(event.delta)
                elif event.type == "response.output_item.done" and (
                        event.item.type == "function_call"):
                    outcome.tool_calls.append(
                        (event.item.name, _arguments(event.item.arguments)))
                elif event.type in ("response.completed", "response.incomplete"):
                    usage = event.response.usage
                    outcome.usage = (usage.input_tokens, usage.output_tokens)
                elif event.type == "response.failed":
                    outcome.failed = True
        except openai.APIError:
            outcome.failed = True
    return outcome


OFFICIAL: dict[str, Callable[[FakeLLMServer, str, Path], Outcome]] = {
    "openai": read_with_openai,
    "openrouter": read_with_openai,
    "mistral": read_with_openai,
    "anthropic": read_with_anthropic,
    "gemini": read_with_genai,
    "ollama": read_with_ollama,
    "openai_responses": read_with_openai_responses,
}


@pytest.mark.parametrize("provider, case", _cases(),
                         ids=lambda value: getattr(value, "stem", value))
def test_official_sdk_and_litestream_agree(server, provider, case):
    official = OFFICIAL[provider](server, provider, case)
    ours = read_with_litestream(server, provider, case)
    text, calls, usage, failed = ours.summary()
    assert text == "".join(official.text)
    assert calls == official.tool_calls
    assert failed == official.failed
    if official.usage is not None:
        assert usage == official.usage
    expected = json.loads(case.with_suffix(".json").read_text())["expected"]
    assert text == expected["content"]
