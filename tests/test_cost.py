"""Cost: genai-prices' own calculation on the same usage, per provider; unknown -> None."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from litestream import cost
from litestream.types import Usage

genai_prices = pytest.importorskip(
    "genai_prices", reason="genai-prices (the 'cost' extra) needs Python >= 3.11 and the extra")

# (litestream provider, model, genai-prices provider id, usage)
GOLDEN = [
    ("openai", "gpt-4o-mini", "openai", Usage(1000, 200)),
    ("openai", "gpt-4o", "openai", Usage(1200, 300, cached_tokens=1024)),
    ("openai", "o3-mini", "openai", Usage(500, 900, reasoning_tokens=640)),
    ("openai_responses", "gpt-4o-mini", "openai", Usage(2048, 64, cached_tokens=1536)),
    ("anthropic", "claude-3-5-sonnet-20241022", "anthropic", Usage(3000, 400, cached_tokens=2000)),
    ("anthropic", "claude-3-5-haiku-latest", "anthropic", Usage(100, 50)),
    ("gemini", "gemini-2.0-flash", "google", Usage(800, 120, cached_tokens=400)),
    ("mistral", "mistral-small-latest", "mistral", Usage(700, 90)),
    ("openrouter", "openai/gpt-4o-mini", "openrouter", Usage(1000, 100)),
]


@pytest.mark.parametrize(("provider", "model", "provider_id", "usage"), GOLDEN,
                         ids=[f"{case[0]}-{case[1]}" for case in GOLDEN])
def test_cost_matches_genai_prices_on_the_same_usage(provider, model, provider_id, usage):
    expected = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=usage.prompt_tokens,
                           output_tokens=usage.completion_tokens,
                           cache_read_tokens=usage.cached_tokens or 0),
        model, provider_id=provider_id).total_price
    price = cost.cost_of(provider, model, usage)
    assert isinstance(price, Decimal)
    assert price == expected
    assert price > 0


def test_cached_tokens_cost_less_than_uncached():
    full = cost.cost_of("openai", "gpt-4o", Usage(2000, 0))
    cached = cost.cost_of("openai", "gpt-4o", Usage(2000, 0, cached_tokens=1000))
    assert cached < full


def test_unknown_model_or_provider_is_none_and_logged(caplog):
    with caplog.at_level(logging.DEBUG, logger="litestream"):
        assert cost.cost_of("openai", "no-such-model-xyz", Usage(10, 10)) is None
    assert "no price known for openai/no-such-model-xyz" in caplog.text
    assert cost.cost_of("ollama", "llama3.2", Usage(10, 10)) is None
    assert cost.cost_of("openai", "gpt-4o", None) is None


def test_collected_response_carries_its_cost():
    import litestream
    from litestream.testing import FakeLLMServer

    with FakeLLMServer() as server:
        server.script(text="hi there", usage={"prompt_tokens": 1000, "completion_tokens": 2})
        stream = litestream.completion("openai", "gpt-4o-mini", messages=[
            {"role": "user", "content": "Hi"}], stream=True, api_key="test",
            api_base=server.api_base("openai"))
        response = litestream.collect_stream(stream)
    assert response.cost == cost.cost_of("openai", "gpt-4o-mini", Usage(1000, 2))
    assert response.to_dict()["usage"] == Usage(1000, 2).to_dict()  # to_dict unchanged
