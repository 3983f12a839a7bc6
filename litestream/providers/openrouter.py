"""OpenRouter: OpenAI's wire format in front of many upstream providers.

Requests are OpenAI's (plus OpenRouter's own keys such as ``reasoning``,
``provider`` or ``models``, passed through). Streams are OpenAI's with three
twists the shared parser already handles: ``: OPENROUTER PROCESSING``
keepalive comments (dropped by the SSE framing), reasoning text in
``delta.reasoning``, and a mid-stream failure sent as a chunk with a
top-level ``error`` and ``finish_reason: "error"``, which raises.
"""

from __future__ import annotations

from typing import Any, Mapping

from litestream.providers.openai import OpenAIProvider

__all__ = ["OpenRouterProvider"]


class OpenRouterProvider(OpenAIProvider):
    """OpenRouter (``POST https://openrouter.ai/api/v1/chat/completions``).

    Its optional attribution headers (``HTTP-Referer``, ``X-Title``) go in
    ``config["headers"]``.
    """

    name = "openrouter"
    default_api_base = "https://openrouter.ai/api/v1"
    env_var = "OPENROUTER_API_KEY"
    base_url_env_var = "OPENROUTER_BASE_URL"
    default_model = "openai/gpt-4o-mini"

    def convert_message(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return one message unchanged: ``reasoning_details`` is OpenRouter's own convention."""
        return message
