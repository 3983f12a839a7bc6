"""The framework-neutral half of the web integrations: replies, statuses, the proxy.

Flask and Django turn a :class:`ProxyReply` into their own response
(:mod:`litestream.integrations.flask`, :mod:`litestream.integrations.django`);
everything else is decided here, once, for both:

* :data:`SSE_HEADERS` -- the headers an event stream needs behind proxies.
* :func:`error_status` -- the HTTP status that suits a litestream error.
* :func:`sse_reply` and :func:`error_reply` -- a stream, or an error, as a reply.
* :func:`proxy_chat_completion` -- answer an OpenAI ``POST /v1/chat/completions``
  body through any provider, as a framework-neutral :class:`ProxyReply`.
"""

from __future__ import annotations

import json
from typing import Any, Iterator, Mapping, Optional, Union

import attrs

from litestream import errors
from litestream.channels import Channel
from litestream.core import completion, provider_key, split_provider_model
from litestream.streaming import drop_traceback, error_body, to_sse_stream
from litestream.types import Chunk, Response

__all__ = [
    "JSON_CONTENT_TYPE",
    "SSE_CONTENT_TYPE",
    "SSE_HEADERS",
    "ProxyReply",
    "error_reply",
    "error_status",
    "proxy_chat_completion",
    "resolve_model",
    "sse_reply",
    "upstream_config",
]

#: Content-Type of a streamed reply (what :func:`sse_reply` answers with).
SSE_CONTENT_TYPE = "text/event-stream"
#: Content-Type of a whole-body reply and of every error reply.
JSON_CONTENT_TYPE = "application/json"

#: Headers of an event-stream response besides its Content-Type: no caching,
#: and no buffering by nginx (``X-Accel-Buffering``), so each event leaves at once.
SSE_HEADERS: Mapping[str, str] = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

# Most specific first; the first class the error is an instance of wins.
_STATUS_BY_CLASS: tuple[tuple[type[BaseException], int], ...] = (
    (errors.ConfigurationError, 400),
    (errors.AuthenticationError, 401),
    (errors.PermissionDeniedError, 403),
    (errors.ModelNotFoundError, 404),
    (errors.InvalidRequestError, 400),
    (errors.ContentFilterError, 400),
    (errors.RateLimitError, 429),
    (errors.QuotaExceededError, 429),
    (errors.StreamTimeout, 504),
    (errors.StreamConnectionError, 502),
    (errors.ProtocolError, 502),
    (errors.ProviderError, 502),
)


def error_status(error: BaseException) -> int:
    """Return the HTTP status to answer ``error`` with.

    The upstream's own 4xx/5xx status when it sent one, else one that fits
    the error's class: 400 for a bad request or configuration, 429 for rate
    limits, 504 for timeouts, 502 for a failing upstream, 500 otherwise.
    """
    status = getattr(error, "status_code", None)
    if isinstance(status, int) and 400 <= status <= 599:
        return status
    for error_class, class_status in _STATUS_BY_CLASS:
        if isinstance(error, error_class):
            return class_status
    return 500


@attrs.frozen
class ProxyReply:
    """A framework-neutral HTTP reply: status, content type, headers and body.

    ``body`` is either bytes or, for a stream, an iterator of SSE events
    whose ``close()`` closes the upstream stream; hand it to the
    framework's streaming response, which calls ``close()`` when the client
    goes away.
    """

    status: int
    content_type: str
    body: Union[bytes, Iterator[bytes]]
    headers: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def streaming(self) -> bool:
        """True when ``body`` is an iterator of events rather than bytes."""
        return not isinstance(self.body, bytes)


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sse_reply(
    stream: Channel[Chunk], heartbeat: Optional[float] = 15.0, *, first: Optional[Chunk] = None
) -> ProxyReply:
    """Return a 200 event-stream reply of the stream's OpenAI SSE events (see :func:`to_sse_stream`)."""  # noqa: E501
    return ProxyReply(200, SSE_CONTENT_TYPE, to_sse_stream(stream, heartbeat, first=first),
                      dict(SSE_HEADERS))


def error_reply(error: BaseException) -> ProxyReply:
    """Return an OpenAI-style JSON error reply, ``{"error": {...}}``, with a fitting status."""
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(0, int(round(retry_after))))
    return ProxyReply(error_status(error), JSON_CONTENT_TYPE, _json_bytes(error_body(error)),
                      headers)


def resolve_model(
    requested: Optional[str], provider: Optional[str], model: Optional[str]
) -> tuple[str, str]:
    """Return ``(provider, model)`` for a proxied request's ``model`` field.

    ``"openai/gpt-4o-mini"`` names both when its prefix is a known provider;
    any other name is a model of the default ``provider``; no name at all
    means the default ``model``.

    Raises:
        ConfigurationError: no provider or no model can be determined.
    """
    if requested:
        named, model = split_provider_model(requested)
        if named is not None and model:
            return named, model
        model = requested
    if not provider:
        raise errors.ConfigurationError(
            "no provider: send a model such as 'openai/gpt-4o-mini' or configure a default"
        )
    if not model:
        raise errors.ConfigurationError("no model: send 'model' or configure a default model")
    return provider, model


_CREDENTIAL_KEYS = ("api_key", "api_base", "headers")


def upstream_config(
    config: Optional[Mapping[str, Any]], configured: Optional[str], requested: str
) -> dict[str, Any]:
    """Return the config for a proxied call to ``requested``.

    The configured credentials (``api_key``, ``api_base``, ``headers``)
    belong to the ``configured`` provider only: a client naming another
    provider in its ``model`` must never have them sent to that provider's
    host. Such a call uses that provider's own key from the environment;
    the other settings (timeouts, buffer) still apply.
    """
    settings = dict(config or {})
    if configured is None or provider_key(configured) != provider_key(requested):
        for key in _CREDENTIAL_KEYS:
            settings.pop(key, None)
    return settings


def proxy_chat_completion(
    body: Any,
    provider: Optional[str] = None,
    model: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    heartbeat: Optional[float] = 15.0,
) -> ProxyReply:
    """Answer an OpenAI ``chat/completions`` request body through any provider.

    The body's ``model`` picks the upstream (see :func:`resolve_model`);
    every other key is the request. With ``"stream": true`` the reply is an
    event stream of OpenAI chunks (:func:`~litestream.streaming.to_sse_stream`);
    the first chunk is awaited before answering, so an upstream that fails
    at once (a bad key, a rate limit) gives an HTTP error status rather than
    a 200 with an error event. Otherwise the reply is the
    ``chat.completion`` JSON. Errors become OpenAI-style JSON errors with a
    fitting status (:func:`error_reply`); none is raised.

    Args:
        body: the parsed JSON request body.
        provider: the provider for models named without one.
        model: the model when the body names none.
        config: the upstream config (``api_key``, ``api_base``, timeouts);
            clients of the proxy cannot change it.
        heartbeat: seconds of upstream silence between SSE keep-alive comments.

    Returns:
        The reply to send.
    """
    try:
        if not isinstance(body, Mapping):
            raise errors.ConfigurationError("the request body must be a JSON object")
        request = dict(body)
        provider_name, model_name = resolve_model(request.pop("model", None), provider, model)
        # The client retries (the official SDKs do, twice): retrying here
        # too would multiply the attempts, unless the config asks for it.
        options = {"max_retries": 0, **upstream_config(config, provider, provider_name)}
        result = completion(provider_name, model_name, request, options)
        if isinstance(result, Response):
            return ProxyReply(200, JSON_CONTENT_TYPE, _json_bytes(result.to_dict()))
        try:
            first = result.get()
        except BaseException:
            result.close()
            raise
        return sse_reply(result, heartbeat, first=first)
    except Exception as error:
        return error_reply(drop_traceback(error))
