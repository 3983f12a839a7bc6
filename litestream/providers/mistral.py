"""Mistral's chat completions API: OpenAI's wire format with a stricter request schema.

Mistral rejects keys it does not know with a 422 (``extra_forbidden``), so
the body is trimmed to what it accepts: no ``stream_options`` (usage always
arrives on the finish chunk anyway), ``max_tokens`` instead of
``max_completion_tokens``, ``random_seed`` instead of ``seed``, and no
``name`` or ``reasoning_content`` on non-tool messages. The stream is parsed
exactly like OpenAI's (``model_length`` reads as ``length``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from litestream.providers import _messages
from litestream.providers.openai import OpenAIProvider

__all__ = ["MistralProvider"]

# Keys of OpenAI messages that Mistral refuses on the given roles.
_DROPPED_MESSAGE_KEYS = ("reasoning_content", "reasoning", "refusal", "audio")


class MistralProvider(OpenAIProvider):
    """Mistral La Plateforme (``POST https://api.mistral.ai/v1/chat/completions``)."""

    name = "mistral"
    default_api_base = "https://api.mistral.ai/v1"
    env_var = "MISTRAL_API_KEY"
    base_url_env_var = "MISTRAL_BASE_URL"
    default_model = "mistral-small-latest"
    send_stream_options = False

    def build_body(
        self, model: str, request: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Return OpenAI's body renamed and trimmed to Mistral's schema."""
        body = super().build_body(model, request, messages)
        body.pop("stream_options", None)
        limit = _messages.max_output_tokens(request)
        body.pop("max_completion_tokens", None)
        if limit is not None:
            body["max_tokens"] = limit
        if "seed" in body:
            body["random_seed"] = body.pop("seed")
        return body

    def convert_message(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return the message without None values and the keys Mistral refuses."""
        converted = {key: value for key, value in
                     _messages.without_reasoning_details(message).items() if value is not None}
        for key in _DROPPED_MESSAGE_KEYS:
            converted.pop(key, None)
        if converted.get("role") != "tool":
            converted.pop("name", None)  # only tool messages may carry a name
        return converted
