"""Reasoning survives the round trip: think -> call a tool -> think -> answer, per provider.

The first answer's opaque reasoning parts ride on the collected message
(``reasoning_details``); appending ``message.to_dict()`` to the history sends
them back, byte for byte, where each API wants them.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import litestream as ls
from litestream.testing import FakeLLMServer
from litestream.testing.encoders.responses import encrypted_reasoning

QUESTION = [{"role": "user", "content": "Weather in Paris?"}]
CALL = {"name": "get_weather", "arguments": {"city": "Paris"}, "id": "call_w1"}
ANTHROPIC_SIGNATURE = "ZmFrZWxsbS1zaWduYXR1cmU="  # what FakeLLMServer signs thinking with
GEMINI_SIGNATURE = "CiQBjz1rX2dlbWluaS1zaWduYXR1cmUtYnl0ZXM+/="


def _two_turns(server: FakeLLMServer, provider: str, model: str) -> tuple[Any, dict[str, Any]]:
    """Run turn one, answer its tool call, run turn two; return turn one and request two's body."""
    options = {"api_key": "k", "api_base": server.api_base(provider)}
    first = ls.collect_stream(ls.completion(provider, model, messages=QUESTION, stream=True,
                                            **options))
    call = first.tool_calls[0]
    history = [*QUESTION, first.choices[0].message.to_dict(),
               {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": "sunny"}]
    second = ls.collect_stream(ls.completion(provider, model, messages=history, stream=True,
                                             **options))
    assert second.content == "Sunny in Paris."
    return first, server.requests[1].json


def test_anthropic_gets_its_signed_thinking_block_back_before_its_tool_use():
    with FakeLLMServer() as server:
        server.script(text="", chunks=[], reasoning="Check the weather.", tool_calls=[CALL])
        server.script(text="Sunny in Paris.")
        first, body = _two_turns(server, "anthropic", "claude-sonnet-4-5")
    assert first.choices[0].message.reasoning_details == (
        {"type": "reasoning.text", "text": "Check the weather.",
         "signature": ANTHROPIC_SIGNATURE, "format": "anthropic-claude-v1", "index": 0},)
    assistant = body["messages"][1]
    assert assistant["role"] == "assistant"
    assert [block["type"] for block in assistant["content"]] == ["thinking", "tool_use"]
    assert assistant["content"][0] == {"type": "thinking", "thinking": "Check the weather.",
                                       "signature": ANTHROPIC_SIGNATURE}


def _gemini_sse(parts: list[dict[str, Any]], finish: bool) -> bytes:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    data: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash",
                            "responseId": "r1"}
    if finish:
        candidate["finishReason"] = "STOP"
        data["usageMetadata"] = {"promptTokenCount": 5, "candidatesTokenCount": 3,
                                 "thoughtsTokenCount": 7, "totalTokenCount": 15}
    return b"data: " + json.dumps(data).encode() + b"\r\n\r\n"


def test_gemini_gets_its_thought_signature_back_on_the_function_call_part():
    with FakeLLMServer() as server:
        server.replay(
            _gemini_sse([{"text": "Check the weather.", "thought": True}], False)
            + _gemini_sse([{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                            "thoughtSignature": GEMINI_SIGNATURE}], True))
        server.replay(_gemini_sse([{"text": "Sunny in Paris."}], True))
        first, body = _two_turns(server, "gemini", "gemini-2.5-flash")
    assert first.choices[0].message.reasoning == "Check the weather."
    model_turn = body["contents"][1]
    assert model_turn["role"] == "model"
    assert model_turn["parts"] == [{
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
        "thoughtSignature": GEMINI_SIGNATURE}]


def test_responses_gets_its_encrypted_reasoning_item_back_before_its_function_call():
    with FakeLLMServer() as server:
        server.script(text="", chunks=[], reasoning="Check the weather.", tool_calls=[CALL])
        server.script(text="Sunny in Paris.")
        first, body = _two_turns(server, "openai_responses", "o4-mini")
    encrypted = encrypted_reasoning("Check the weather.")
    details = first.choices[0].message.reasoning_details
    assert [part["type"] for part in details] == ["reasoning.summary", "reasoning.encrypted"]
    assert body["input"][1:] == [
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Check the weather."}],
         "id": "rs_fake0", "encrypted_content": encrypted},
        {"type": "function_call", "call_id": "call_w1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_w1", "output": "sunny"},
    ]
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False


def test_reasoning_parts_sent_to_another_provider_are_dropped_with_a_debug_log(caplog):
    with FakeLLMServer() as server:
        server.script(text="", chunks=[], reasoning="Check the weather.", tool_calls=[CALL])
        server.script(text="Sunny in Paris.")
        server.script(text="Sunny in Paris.")
        first = ls.collect_stream(ls.completion(
            "anthropic", "claude-sonnet-4-5", messages=QUESTION, stream=True, api_key="k",
            api_base=server.api_base("anthropic")))
        history = [*QUESTION, first.choices[0].message.to_dict(),
                   {"role": "tool", "tool_call_id": "call_w1", "name": "get_weather",
                    "content": "sunny"}]
        with caplog.at_level(logging.DEBUG, logger="litestream.providers"):
            for provider in ("openai", "openai_responses"):
                ls.collect_stream(ls.completion(provider, "gpt-4o", messages=history,
                                                stream=True, api_key="k",
                                                api_base=server.api_base(provider)))
        openai_body, responses_body = server.requests[1].json, server.requests[2].json
    assert "reasoning_details" not in openai_body["messages"][1]
    assert [item.get("type") for item in responses_body["input"]] == [
        None, "function_call", "function_call_output"]
    assert "dropping" in caplog.text
