"""The chunk golden file: every recorded transcript (and a set of made-up ones) through the parsers.

``python tests/chunk_golden.py`` writes ``tests/fixtures/chunks_golden.json``
from the code as it is; ``tests/test_chunk_golden.py`` checks that the
parsers still give exactly those chunks. The file was first written from
main before the hot paths were made cheaper (issue 16), so it pins the chunk
values (``repr`` and ``to_dict()``) the faster code must keep.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

from litestream import errors
from litestream.framing import make_decoder
from litestream.providers import get_provider

HERE = Path(__file__).parent
FIXTURES = [HERE / "fixtures" / "streams"]  # the shared transcripts, copied into the project
GOLDEN = HERE / "fixtures" / "chunks_golden.json"
CREATED = 1_700_000_000  # the creation time a parser stamps when the wire names none


def _sse(*payloads: Any, event: str | None = None) -> str:
    return "".join(
        (f"event: {event}\n" if event else "")
        + "data: " + (p if isinstance(p, str) else json.dumps(p)) + "\n\n"
        for p in payloads
    )


def _oa(delta: Any, finish: Any = None, index: Any = 0, **extra: Any) -> dict[str, Any]:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 5, "model": "m1",
             "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
    chunk.update(extra)
    return chunk


_OPENAI_MADE_UP = {
    "shapes": _sse(
        _oa({"role": "assistant", "content": ""}),
        _oa({"role": "assistant", "content": "Hi"}),
        _oa({"content": " there"}),
        _oa({"content": ""}),
        _oa({"reasoning_content": "think"}),
        _oa({"reasoning": "more"}),
        _oa({"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "t"}]},
                         {"type": "text", "text": "x"}]}),
        _oa({"refusal": "no"}),
        _oa({"tool_calls": [{"id": "a", "function": {"name": "f", "arguments": ""}}]}),
        _oa({"tool_calls": [{"function": {"arguments": "{\"a\""}}]}),
        _oa({"tool_calls": [{"id": "b", "type": "function",
                             "function": {"name": "g", "arguments": {"k": 1}}}]}),
        _oa({"tool_calls": [{"index": 3, "custom": {"name": "c", "input": "in"}}]}),
        _oa({"function_call": {"name": "legacy", "arguments": "{}"}}),
        _oa({"content": "two"}, index=1),
        _oa({"content": "z"}, model="m2"),
        _oa({}, model="m3"),
        {"id": "c1", "created": 5, "model": "m3", "choices": [
            {"index": 0, "delta": {"content": "a"}, "finish_reason": None},
            {"index": 1, "delta": {"content": "b"}, "finish_reason": "eos"}]},
        _oa({}, "stop"),
        _oa({}, "stop"),
        {"id": "c1", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 0}},
        {"id": "c1", "choices": [], "usage": {
            "prompt_tokens": 0, "completion_tokens": 4, "total_tokens": 9,
            "prompt_tokens_details": {"cached_tokens": 1},
            "completion_tokens_details": {"reasoning_tokens": 2}}},
        "[DONE]",
    ),
    "no_done_after_finish": _sse(_oa({"content": "a"}), _oa({}, "length")),
    "cut_short": _sse(_oa({"content": "a"})),
    "bad_json": _sse(_oa({"content": "a"}), "{nope"),
    "error_event": _sse(_oa({"content": "a"}))
    + _sse({"error": {"message": "boom", "type": "server_error"}}, event="error"),
    "finish_error": _sse(_oa({"content": "a"}), _oa({}, "error")),
    "wrong_types": _sse(_oa({"content": 5})),
    "choice_not_dict": _sse({"id": "c", "choices": ["x"]}),
    "crlf_comments": ": keepalive\r\n\r\n" + _sse(_oa({"content": "a"})).replace("\n", "\r\n")
    + "event: message\ndata: " + json.dumps(_oa({"content": "b"})) + "\nid: 7\n\n"
    + "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\ndata: \"delta\":{\"content\":\"c\"}}]}\n\n"
    + "data: [DONE]\n\n",
}

_ANTHROPIC_MADE_UP = {
    "thinking_and_tools": (
        _sse({"type": "message_start", "message": {"id": "msg_1", "model": "claude-x", "usage": {
            "input_tokens": 10, "output_tokens": 1, "cache_read_input_tokens": 4}}},
            event="message_start")
        + _sse({"type": "ping"}, event="ping")
        + _sse({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": ""}}, event="content_block_start")
        + _sse({"type": "content_block_delta", "index": 0,
                "delta": {"type": "thinking_delta", "thinking": "hmm"}},
               event="content_block_delta")
        + _sse({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": "sig"}},
               event="content_block_delta")
        + _sse({"type": "content_block_stop", "index": 0}, event="content_block_stop")
        + _sse({"type": "content_block_start", "index": 1,
                "content_block": {"type": "text", "text": "Hi"}}, event="content_block_start")
        + _sse({"type": "content_block_delta", "index": 1,
                "delta": {"type": "text_delta", "text": " you"}}, event="content_block_delta")
        + _sse({"type": "content_block_delta", "index": 1, "delta": {
            "type": "citations_delta", "citation": {"type": "web_search_result_location",
                                                    "url": "http://x", "title": "X",
                                                    "cited_text": "c"}}},
               event="content_block_delta")
        + _sse({"type": "content_block_start", "index": 2, "content_block": {
            "type": "tool_use", "id": "tu_1", "name": "f", "input": {}}},
               event="content_block_start")
        + _sse({"type": "content_block_delta", "index": 2,
                "delta": {"type": "input_json_delta", "partial_json": "{\"a\": 1}"}},
               event="content_block_delta")
        + _sse({"type": "content_block_start", "index": 3, "content_block": {
            "type": "redacted_thinking", "data": "opaque"}}, event="content_block_start")
        + _sse({"type": "message_delta", "delta": {"stop_reason": "tool_use"},
                "usage": {"output_tokens": 20}}, event="message_delta")
        + _sse({"type": "message_stop"}, event="message_stop")
    ),
    "cut_short": _sse({"type": "message_start", "message": {"id": "m", "model": "c"}},
                      event="message_start"),
}

_GEMINI_MADE_UP = {
    "thoughts_and_calls": _sse(
        {"candidates": [{"content": {"role": "model", "parts": [
            {"text": "plan", "thought": True}, {"text": "Hi", "thoughtSignature": "s1"}]}}],
         "modelVersion": "gemini-x", "responseId": "r1"},
        {"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]},
                         "citationMetadata": {"citations": [{"uri": "http://x"}]}}]},
        {"candidates": [{"content": {"parts": [{"text": " there"}]}, "finishReason": "STOP"}],
         "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4,
                           "totalTokenCount": 9, "cachedContentTokenCount": 1,
                           "thoughtsTokenCount": 2}},
    ),
    "error_line": _sse({"candidates": [{"content": {"parts": [{"text": "a"}]}}]})
    + '{"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}\n',
}

_OLLAMA_MADE_UP = {
    "thinking_and_tools": "\n".join(json.dumps(line) for line in [
        {"model": "q", "message": {"role": "assistant", "content": "", "thinking": "hm"},
         "done": False},
        {"model": "q", "message": {"role": "assistant", "content": "Hi"}, "done": False},
        {"model": "q", "message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "f", "arguments": {"a": 1}}}]}, "done": False},
        {"model": "q", "message": {"role": "assistant", "content": ""}, "done": True,
         "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 6},
    ]) + "\n",
    "cut_short": json.dumps({"model": "q", "message": {"content": "a"}, "done": False}) + "\n",
}

MADE_UP = {
    "openai": _OPENAI_MADE_UP,
    "openrouter": _OPENAI_MADE_UP,
    "mistral": _OPENAI_MADE_UP,
    "openai_compatible": _OPENAI_MADE_UP,
    "anthropic": _ANTHROPIC_MADE_UP,
    "gemini": _GEMINI_MADE_UP,
    "ollama": _OLLAMA_MADE_UP,
}


def cases() -> list[tuple[str, str, str]]:
    """Return ``(provider, case name, body)`` for every transcript and made-up body."""
    found: dict[tuple[str, str], str] = {}
    for root in FIXTURES:
        if not root.is_dir():
            continue
        for body_path in sorted(root.glob("*/*.txt")):
            spec = json.loads(body_path.with_suffix(".json").read_text(encoding="utf-8"))
            key = (spec["provider"], f"{root.parent.name}:{body_path.stem}")
            found.setdefault(key, body_path.read_text(encoding="utf-8"))
    for provider, bodies in MADE_UP.items():
        for name, body in bodies.items():
            found[(provider, f"made_up:{name}")] = body
    return [(provider, name, body) for (provider, name), body in sorted(found.items())]


def _record_chunk(chunk: Any) -> dict[str, Any]:
    return {"repr": repr(chunk), "dict": chunk.to_dict(),
            "provider_event": None if chunk.provider_event is None else dict(chunk.provider_event)}


def replay(provider: str, body: str, piece: int = 0, batched: bool = False) -> dict[str, Any]:
    """Return what framing and the parser make of ``body``, fed ``piece`` bytes at a time.

    With ``batched``, each piece's events go to the parser together, as
    the reader thread hands them over (``decode`` then ``feed_many``).
    """
    impl = get_provider(provider)
    raw = body.encode("utf-8")
    pieces = [raw] if not piece else [raw[i:i + piece] for i in range(0, len(raw), piece)]
    chunks: list[Any] = []
    error = None
    fixed_id = uuid.UUID(int=16)
    with mock.patch("time.time", return_value=float(CREATED)), \
            mock.patch("uuid.uuid4", return_value=fixed_id):
        parser = impl.stream_parser("test-model")
        decoder = make_decoder(impl.framing)
    try:
        if batched:
            for part in pieces:
                events, decode_error = decoder.decode(part)
                parser.feed_many(events, chunks)
                if parser.done:
                    break
                if decode_error is not None:
                    raise decode_error
            else:
                parser.feed_many(decoder.close(), chunks)
        else:
            events = []
            for part in pieces:
                events.extend(decoder.feed(part))
            events.extend(decoder.close())
            for event in events:
                if parser.done:
                    break
                chunks.extend(parser.feed(event))
        if not parser.done:
            chunks.extend(parser.finish())
    except errors.LitestreamError as caught:
        error = f"{type(caught).__name__}: {caught}"
    return {"chunks": [_record_chunk(chunk) for chunk in chunks], "error": error}


def build() -> dict[str, Any]:
    """Return the golden records of every case, keyed ``provider/case``."""
    return {f"{provider}/{name}": replay(provider, body) for provider, name, body in cases()}


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
