"""OpenAI's chat completions API, and the OpenAI wire format other providers reuse.

The request is already in OpenAI's shape, so building it is mostly checking
it and adding ``stream_options.include_usage``. The stream is SSE of
``chat.completion.chunk`` objects ending in ``data: [DONE]``; the parser here
copes with what OpenAI-compatible servers do differently (a missing tool-call
``index``, ``reasoning_content`` / ``reasoning`` fields, a missing ``[DONE]``,
repeated finish chunks, an ``{"error": ...}`` object mid-stream) so Mistral,
OpenRouter and any OpenAI-compatible server share it. The stream parser
lives in :mod:`litestream.providers._openai_stream`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from litestream import errors
from litestream.options import CallOptions
from litestream.providers import _messages
from litestream.providers._openai_stream import (
    OpenAIStreamParser,
    arguments_text,
    call_name_and_arguments,
    extras,
    normalize_finish_reason,
    text_and_reasoning,
)
from litestream.providers._wire import (
    as_dict,
    as_int,
    as_list,
    as_str,
    attribute_errors,
    error_from_body,
    in_band_error,
    parse_usage,
)
from litestream.providers.base import Provider
from litestream.types import (
    Message,
    Response,
    ResponseChoice,
    ToolCall,
)
from litestream.wire import HTTPRequest

__all__ = ["OpenAIProvider", "OpenAIStreamParser", "normalize_finish_reason"]


class OpenAIProvider(Provider):
    """OpenAI chat completions (``POST {api_base}/chat/completions``).

    Subclasses for OpenAI-compatible services override the class attributes
    and, where their API differs, :meth:`build_body` or :meth:`convert_message`.

    Attributes:
        chat_path: the path of the chat endpoint below ``api_base``.
        send_stream_options: whether a streamed request asks for a usage
            chunk with ``stream_options: {"include_usage": true}`` (unless the
            caller set ``stream_options``; setting it to None sends none).
    """

    name = "openai"
    default_api_base = "https://api.openai.com/v1"
    env_var = "OPENAI_API_KEY"
    base_url_env_var = "OPENAI_BASE_URL"
    default_model = "gpt-4o-mini"
    chat_path = "/chat/completions"
    send_stream_options = True

    def build_request(
        self, model: str, request: Mapping[str, Any], options: CallOptions
    ) -> HTTPRequest:
        """Return the POST to the chat endpoint; see :class:`Provider`.

        Every request key is sent as given (OpenAI's own keys), except None
        values, which are left out.
        """
        messages = _messages.read_messages(request)
        body = self.build_body(model, request, messages)
        return self._request(self.chat_path, body, bool(request.get("stream")), options)

    def build_body(
        self, model: str, request: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Return the JSON body: the request's keys, checked, with model, messages and stream."""
        _messages.stop_sequences(request)
        _messages.function_tools(request)
        _messages.tool_choice(request)
        stream = bool(request.get("stream"))
        body = {key: value for key, value in request.items() if value is not None}
        body["model"] = model
        body["messages"] = [self.convert_message(message) for message in messages]
        body["stream"] = stream
        if not stream:
            # OpenAI rejects stream_options on a request that does not stream.
            body.pop("stream_options", None)
        elif self.send_stream_options and "stream_options" not in request:
            body["stream_options"] = {"include_usage": True}
        return body

    def convert_message(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return one message as sent; OpenAI takes its own format unchanged.

        Another provider's opaque ``reasoning_details`` are left out (debug log).
        """
        return _messages.without_reasoning_details(message)

    def stream_parser(self, model: str) -> OpenAIStreamParser:
        """Return a parser for one ``chat.completion.chunk`` SSE stream."""
        return OpenAIStreamParser(self.name, model)

    def parse_response(self, body: Mapping[str, Any], model: str) -> Response:
        """Return the Response of a ``chat.completion`` body.

        Raises:
            ProviderError (or a more specific error): the body is an error object.
            ProtocolError: the body does not have the shape of a completion.
        """
        with attribute_errors(self.name, model):
            data = as_dict(body, "response body")
            if data.get("error") is not None:
                raise in_band_error(data, provider=self.name, model=model)
            choices = [_response_choice(raw) for raw in as_list(data.get("choices"), "choices")]
            return Response(
                id=as_str(data.get("id"), "id"),
                model=as_str(data.get("model"), "model") or model,
                provider=self.name,
                created=as_int(data.get("created"), "created"),
                choices=choices,
                usage=parse_usage(data.get("usage")),
            )

    def parse_error(
        self, status_code: int, body: str, headers: Mapping[str, str], model: str
    ) -> errors.LitestreamError:
        """Return the typed error for ``{"error": {"message", "type", "code"}}`` or any body."""
        return error_from_body(status_code, body, headers, provider=self.name, model=model)


def _response_choice(raw: Any) -> ResponseChoice:
    choice = as_dict(raw, "choice")
    message = as_dict(choice.get("message"), "message")
    content, reasoning = text_and_reasoning(message)
    calls = []
    for raw_call in as_list(message.get("tool_calls"), "tool_calls"):
        call = as_dict(raw_call, "tool call")
        name, arguments = call_name_and_arguments(call)
        calls.append(
            ToolCall(
                id=as_str(call.get("id"), "tool call id"),
                name=name or "",
                arguments=arguments or "",
            )
        )
    legacy = as_dict(message.get("function_call"), "function_call")
    if legacy:
        calls.append(
            ToolCall(
                name=as_str(legacy.get("name"), "function name") or "",
                arguments=arguments_text(legacy.get("arguments")) or "",
            )
        )
    reason = as_str(choice.get("finish_reason"), "finish_reason")
    if reason == "error":
        raise errors.ProviderError("the provider reported finish_reason 'error'",
                                   provider_code="error")
    return ResponseChoice(
        index=as_int(choice.get("index"), "choice index") or 0,
        message=Message(
            role=as_str(message.get("role"), "role") or "assistant",
            content=content if content is not None else as_str(message.get("refusal"), "refusal"),
            tool_calls=calls,
            reasoning=reasoning,
            reasoning_details=extras(message, "reasoning_details"),
            annotations=extras(message, "annotations"),
        ),
        finish_reason=normalize_finish_reason(reason),
    )
