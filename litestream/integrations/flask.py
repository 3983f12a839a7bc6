"""Flask integration: event-stream responses and the OpenAI-compatible proxy.

Importing this module imports Flask (install ``litestream[flask]``);
``import litestream`` never does.

Example::

    from flask import Flask, request
    import litestream
    from litestream.integrations.flask import sse_response

    app = Flask(__name__)

    @app.get("/stream")
    def stream():
        chat = litestream.completion("openai/gpt-4o-mini", stream=True,
                                     messages=[{"role": "user", "content": request.args["q"]}])
        return sse_response(chat)
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from flask import Response

from litestream.channels import Channel
from litestream.integrations.proxy import (
    ProxyReply,
    error_reply,
    proxy_chat_completion,
    sse_reply,
)
from litestream.types import Chunk

__all__ = ["error_response", "proxy_response", "reply_response", "sse_response"]


def sse_response(stream: Channel[Chunk], heartbeat: Optional[float] = 15.0) -> Response:
    """Return a streaming :class:`flask.Response` of the stream's OpenAI SSE events.

    Headers: ``Content-Type: text/event-stream``, ``Cache-Control: no-cache``,
    ``X-Accel-Buffering: no``. When the client disconnects, the WSGI server
    closes the response and the stream with it.

    Args:
        stream: a :class:`~litestream.Stream`, or any channel of chunks.
        heartbeat: seconds of upstream silence between keep-alive comments.
    """
    return reply_response(sse_reply(stream, heartbeat))


def reply_response(reply: ProxyReply) -> Response:
    """Turn a framework-neutral :class:`~.proxy.ProxyReply` into a Response."""
    return Response(
        reply.body, status=reply.status, content_type=reply.content_type,
        headers=dict(reply.headers),
    )


def error_response(error: BaseException) -> Response:
    """Return an OpenAI-style JSON error response with a status that fits ``error``."""
    return reply_response(error_reply(error))


def proxy_response(
    body: Any,
    provider: Optional[str] = None,
    model: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    heartbeat: Optional[float] = 15.0,
) -> Response:
    """Answer an OpenAI ``chat/completions`` body; see :func:`~litestream.integrations.proxy.proxy_chat_completion`."""  # noqa: E501
    return reply_response(proxy_chat_completion(body, provider, model, config, heartbeat))
