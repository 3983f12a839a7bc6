"""Any server speaking OpenAI's chat completions API at a base URL you give.

Azure OpenAI, DeepSeek, vLLM, llama.cpp's server, LM Studio and most
gateways speak OpenAI's wire format; this provider sends OpenAI's request to
``{api_base}/chat/completions`` and parses the stream with OpenAI's parser
(which accepts ``reasoning_content``, tool calls without ``index`` and a
missing ``[DONE]``). ``api_base`` is required; the API key is optional. For
Azure, put ``?api-version=...`` on ``api_base`` (it is kept) and the key in
``headers={"api-key": ...}`` if the deployment wants that header.
"""

from __future__ import annotations

from litestream import errors
from litestream.options import CallOptions
from litestream.providers.openai import OpenAIProvider

__all__ = ["OpenAICompatibleProvider"]


class OpenAICompatibleProvider(OpenAIProvider):
    """A self-hosted or third-party OpenAI-compatible server (``api_base`` required)."""

    name = "openai_compatible"
    default_api_base = ""
    env_var = None
    base_url_env_var = None
    default_model = ""
    requires_api_key = False

    def api_base(self, options: CallOptions) -> str:
        """Return ``options.api_base``.

        Raises:
            ConfigurationError: no ``api_base`` was given.
        """
        api_base = options.api_base
        if not api_base:
            raise errors.ConfigurationError(
                "openai_compatible needs the server's URL: pass config={'api_base': "
                "'http://host:port/v1'}",
                provider=self.name,
            )
        return str(api_base)
