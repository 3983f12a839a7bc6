"""Reading OpenAI's JSON back into litestream's types, through the one OpenAI parser.

The value types only write OpenAI's JSON (``to_dict()``); reading it is the
OpenAI provider's job, so the tests read it the same way.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from litestream.providers import get_provider
from litestream.types import Chunk, Delta, Response
from litestream.wire import Event

OPENAI = get_provider("openai")


def chunk_from_json(data: Mapping[str, Any], provider: str = "openai") -> Chunk:
    """Return the one chunk OpenAI's stream parser makes of a ``chat.completion.chunk``."""
    parser = OPENAI.stream_parser(str(data.get("model") or "model"))
    chunks = parser.feed(Event(json.dumps(data)))
    assert len(chunks) == 1, chunks
    chunk = chunks[0]
    if provider != chunk.provider:
        import attrs

        chunk = attrs.evolve(chunk, provider=provider)
    return chunk


def delta_from_json(delta: Mapping[str, Any]) -> Delta:
    """Return the Delta OpenAI's parser makes of one choice's ``delta`` object."""
    return chunk_from_json({"id": "c", "model": "m", "created": 1, "object":
                            "chat.completion.chunk",
                            "choices": [{"index": 0, "delta": dict(delta)}]}).choices[0].delta


def response_from_json(data: Mapping[str, Any]) -> Response:
    """Return the Response OpenAI's parser makes of a whole ``chat.completion``."""
    return OPENAI.parse_response(data, str(data.get("model") or "model"))
