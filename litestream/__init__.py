"""litestream: synchronous streaming chat completions through bounded channels.

Example:
    >>> import litestream as ls
    >>> channel = ls.Channel(maxsize=1)
    >>> channel.put("hello")
    True
    >>> channel.get()
    'hello'
"""

from __future__ import annotations

from litestream import errors, router
from litestream._merge import merge
from litestream.channels import Channel, ChannelStatistics, ReceiveChannel, alts, timeout
from litestream.core import completion, extract_content
from litestream.errors import (
    LitestreamError,
    error_details,
    error_summary,
    is_litestream_error,
    is_retryable,
)
from litestream.router import Router, quick_setup
from litestream.streaming import (
    ResponseBuilder,
    accumulate_stream,
    collect_stream,
    consume_stream_with_callbacks,
    extract_finish_reason,
    to_sse_stream,
)
from litestream.tokens import estimate_tokens
from litestream.transport import Stream
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
    "LitestreamError",
    "Message",
    "ReceiveChannel",
    "Response",
    "ResponseBuilder",
    "ResponseChoice",
    "Router",
    "Stream",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "accumulate_stream",
    "alts",
    "collect_stream",
    "completion",
    "consume_stream_with_callbacks",
    "error_details",
    "error_summary",
    "errors",
    "estimate_tokens",
    "extract_content",
    "extract_finish_reason",
    "is_litestream_error",
    "is_retryable",
    "merge",
    "quick_setup",
    "router",
    "timeout",
    "to_sse_stream",
]
