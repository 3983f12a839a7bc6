"""litestream: synchronous streaming chat completions through bounded channels."""

from __future__ import annotations

from litestream.channels import Channel, ChannelStatistics, alts, timeout
from litestream.errors import error_summary, is_litestream_error
from litestream.types import (
    Choice,
    Chunk,
    Delta,
    Message,
    Response,
    ResponseChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "Channel",
    "ChannelStatistics",
    "Choice",
    "Chunk",
    "Delta",
    "Message",
    "Response",
    "ResponseChoice",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "alts",
    "error_summary",
    "is_litestream_error",
    "timeout",
]
