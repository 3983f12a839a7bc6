"""What a FakeLLMServer answers: scripted replies and recorded transcripts.

A :class:`Script` is content (a provider-neutral
:class:`~litestream.testing.encoders.ReplySpec`) plus the faults and HTTP
details to serve it with, encoded in the requesting provider's format at
reply time. A :class:`Replay` is a recorded body served byte for byte.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Union

import attrs

from litestream.testing import encoders

__all__ = ["DEFAULT_TEXT", "Replay", "Script", "default_script", "error_payload", "tool_spec"]

#: The default answer when no reply is queued.
DEFAULT_TEXT = "Hello from FakeLLMServer!"


@attrs.frozen
class Script:
    """A scripted reply: what to say, which faults to inject, how to answer over HTTP."""

    spec: encoders.ReplySpec
    faults: encoders.StreamFaults
    delay: float = 0.0
    keepalive_interval: Optional[float] = None
    cut_after_bytes: Optional[int] = None
    error_status: Optional[int] = None
    error_body: Union[bytes, str, Mapping[str, Any], None] = None
    retry_after: Union[float, str, None] = None
    head_delay: float = 0.0
    no_response: bool = False
    not_event_stream: bool = False
    headers: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class Replay:
    """A recorded reply body, served as it is, optionally in pieces or cut short."""

    body: bytes
    status: int = 200
    content_type: Optional[str] = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    piece_size: Optional[int] = None
    piece_delay: float = 0.0
    cut_after_bytes: Optional[int] = None


def tool_spec(call: Mapping[str, Any]) -> encoders.ToolSpec:
    """Turn a scripted ``{"name", "arguments", "id"}`` call into a ToolSpec (arguments as JSON text)."""  # noqa: E501
    arguments = call.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return encoders.ToolSpec(call.get("id"), str(call["name"]), arguments)


def default_script() -> Script:
    """Return the reply of a request that finds the queue empty: a four-piece greeting."""
    spec = encoders.ReplySpec(chunks=("Hello", " from", " FakeLLMServer", "!"),
                              prompt_tokens=10, completion_tokens=4)
    return Script(spec, encoders.StreamFaults())


def error_payload(given: Union[bytes, str, Mapping[str, Any], None],
                  default: Mapping[str, Any]) -> tuple[str, bytes]:
    """Return ``(content_type, body)`` of an error reply: ``given``, or the provider's ``default``.

    A mapping is sent as JSON; text starting with ``<`` as HTML, with ``{``
    or ``[`` as JSON, anything else as plain text.
    """
    if given is None:
        return "application/json", json.dumps(default).encode()
    if isinstance(given, Mapping):
        return "application/json", json.dumps(given).encode()
    body = given.encode() if isinstance(given, str) else given
    stripped = body.lstrip()
    if stripped.startswith(b"<"):
        return "text/html; charset=utf-8", body
    if stripped.startswith((b"{", b"[")):
        return "application/json", body
    return "text/plain; charset=utf-8", body
