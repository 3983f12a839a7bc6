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
    AuthenticationError,
    ConfigurationError,
    ConnectTimeout,
    ContentFilterError,
    ContextWindowExceededError,
    FirstChunkTimeout,
    IdleTimeout,
    InvalidRequestError,
    LitestreamError,
    ModelNotFoundError,
    NotFoundError,
    PermissionDeniedError,
    ProtocolError,
    ProviderError,
    QuotaExceededError,
    RateLimitError,
    StreamConnectionError,
    StreamTimeout,
    TotalTimeout,
    UnsupportedFeatureError,
    error_details,
    error_summary,
    is_litestream_error,
    is_retryable,
)
from litestream.listeners import add_listener, remove_listener
from litestream.options import CallOptions, RetryPolicy, Timeouts
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
    "AuthenticationError",
    "CallOptions",
    "Channel",
    "ChannelStatistics",
    "Choice",
    "Chunk",
    "ConfigurationError",
    "ConnectTimeout",
    "ContentFilterError",
    "ContextWindowExceededError",
    "Delta",
    "FirstChunkTimeout",
    "IdleTimeout",
    "InvalidRequestError",
    "LitestreamError",
    "Message",
    "ModelNotFoundError",
    "NotFoundError",
    "PermissionDeniedError",
    "ProtocolError",
    "ProviderError",
    "QuotaExceededError",
    "RateLimitError",
    "ReceiveChannel",
    "Response",
    "ResponseBuilder",
    "ResponseChoice",
    "RetryPolicy",
    "Router",
    "Stream",
    "StreamConnectionError",
    "StreamTimeout",
    "Timeouts",
    "ToolCall",
    "ToolCallDelta",
    "TotalTimeout",
    "UnsupportedFeatureError",
    "Usage",
    "accumulate_stream",
    "add_listener",
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
    "remove_listener",
    "router",
    "timeout",
    "to_sse_stream",
]
