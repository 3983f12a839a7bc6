"""Django integration: event-stream responses and the OpenAI-compatible proxy.

Importing this module imports Django (install ``litestream[django]``);
``import litestream`` never does. Serve these responses with a WSGI server:
under ASGI Django would have to consume the synchronous iterator in a thread.

Example::

    import litestream
    from litestream.integrations.django import sse_response

    def stream(request):
        chat = litestream.completion("openai/gpt-4o-mini", stream=True,
                                     messages=[{"role": "user", "content": request.GET["q"]}])
        return sse_response(chat)
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

from django.http import HttpResponse, StreamingHttpResponse

from litestream.channels import Channel
from litestream.integrations.proxy import (
    ProxyReply,
    error_reply,
    proxy_chat_completion,
    sse_reply,
)
from litestream.types import Chunk

__all__ = ["error_response", "proxy_response", "reply_response", "sse_response"]


def sse_response(
    stream: Channel[Chunk], heartbeat: Optional[float] = 15.0
) -> StreamingHttpResponse:
    """Return a :class:`~django.http.StreamingHttpResponse` of the stream's OpenAI SSE events.

    Headers: ``Content-Type: text/event-stream``, ``Cache-Control: no-cache``,
    ``X-Accel-Buffering: no``. When the client disconnects, the WSGI server
    closes the response, and Django closes the events and the stream.

    Args:
        stream: a :class:`~litestream.Stream`, or any channel of chunks.
        heartbeat: seconds of upstream silence between keep-alive comments.
    """
    response = reply_response(sse_reply(stream, heartbeat))
    assert isinstance(response, StreamingHttpResponse)
    return response


def _streaming(
    events: Any, status: int, content_type: str, headers: Mapping[str, str]
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, status=status, content_type=content_type)
    for name, value in headers.items():
        response[name] = value
    return response


def reply_response(reply: ProxyReply) -> Union[HttpResponse, StreamingHttpResponse]:
    """Turn a framework-neutral :class:`~.proxy.ProxyReply` into a response."""
    if reply.streaming:
        return _streaming(reply.body, reply.status, reply.content_type, reply.headers)
    response = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
    for name, value in reply.headers.items():
        response[name] = value
    return response


def error_response(error: BaseException) -> HttpResponse:
    """Return an OpenAI-style JSON error response with a status that fits ``error``."""
    response = reply_response(error_reply(error))
    assert isinstance(response, HttpResponse)
    return response


def proxy_response(
    body: Any,
    provider: Optional[str] = None,
    model: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    heartbeat: Optional[float] = 15.0,
) -> Union[HttpResponse, StreamingHttpResponse]:
    """Answer an OpenAI ``chat/completions`` body; see :func:`~litestream.integrations.proxy.proxy_chat_completion`."""  # noqa: E501
    return reply_response(proxy_chat_completion(body, provider, model, config, heartbeat))
