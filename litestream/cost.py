"""The price of a call in USD, from its usage, priced with genai-prices.

Prices come from the `genai-prices <https://pypi.org/project/genai-prices/>`_
data (kept up to date by its maintainers), installed with the optional
``cost`` extra: ``pip install "litestream[cost]"``. genai-prices needs
Python 3.11 or later; on older Pythons, and without the extra, every cost
is ``None``. No price table is copied into litestream.

Tokens are priced as the provider bills them: cached prompt tokens at the
cache-read price, reasoning tokens as output tokens (they are part of
``completion_tokens``). A model or provider genai-prices does not know
gives ``None`` and a debug log line, never an error.
"""

from __future__ import annotations

import functools
import logging
from decimal import Decimal
from typing import Any, Optional

from litestream.types import Usage

__all__ = ["PROVIDER_IDS", "available", "cost_of"]

logger = logging.getLogger("litestream")

#: litestream provider name -> genai-prices provider id. A provider not
#: listed here (Ollama, an OpenAI-compatible server) has no known price.
PROVIDER_IDS = {
    "openai": "openai",
    "openai_responses": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "mistral": "mistral",
    "openrouter": "openrouter",
}


@functools.lru_cache(maxsize=1)
def _genai_prices() -> Any:
    try:
        import genai_prices
    except ImportError:
        logger.debug("genai-prices is not installed: costs are unknown (the 'cost' extra)")
        return None
    return genai_prices


def available() -> bool:
    """Return True when genai-prices is installed, so that costs can be known."""
    return _genai_prices() is not None


def price_usage(usage: Usage) -> Any:
    """Return genai-prices' ``Usage`` for ours (cached tokens apart, as they are billed).

    Raises:
        ImportError: genai-prices is not installed.
    """
    genai_prices = _genai_prices()
    if genai_prices is None:
        raise ImportError("genai-prices is not installed (pip install 'litestream[cost]')")
    values = {"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens}
    if usage.cached_tokens:
        # genai-prices counts cache reads inside input_tokens, as our Usage does.
        values["cache_read_tokens"] = usage.cached_tokens
    return genai_prices.Usage(**values)


def cost_of(provider: Optional[str], model: Optional[str],
            usage: Optional[Usage]) -> Optional[Decimal]:
    """Return the price in USD of ``usage`` on ``provider``'s ``model``, or None when unknown.

    Args:
        provider: the litestream provider name (``"openai"``, ``"gemini"``...).
        model: the model name as sent or as the provider answered it.
        usage: the call's token counts (reported or estimated).

    Returns:
        The total price as a :class:`~decimal.Decimal`; None without usage,
        without genai-prices, or for a provider or model it does not know.
    """
    if usage is None or not model or provider not in PROVIDER_IDS:
        return None
    genai_prices = _genai_prices()
    if genai_prices is None:
        return None
    try:
        calculation = genai_prices.calc_price(price_usage(usage), model,
                                              provider_id=PROVIDER_IDS[provider])
    except LookupError:
        logger.debug("no price known for %s/%s", provider, model)
        return None
    except Exception:  # a price table problem must never break a call
        logger.debug("pricing %s/%s failed", provider, model, exc_info=True)
        return None
    return Decimal(calculation.total_price)
