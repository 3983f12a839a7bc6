"""The public surface: ``litestream.__all__`` is the documented API, and nothing else."""

from __future__ import annotations

import importlib
import inspect
import pathlib
import re

import litestream
from litestream import errors

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"

#: The 1.0 contract (DESIGN.md): adding a name here is an API decision.
PUBLIC_API = {
    # calls and handles
    "completion", "Stream", "Channel", "ReceiveChannel", "ChannelStatistics", "alts",
    "timeout", "merge", "CallOptions", "Timeouts", "RetryPolicy",
    # lifecycle listeners
    "add_listener", "remove_listener",
    # value types
    "Chunk", "Choice", "Delta", "ToolCallDelta", "Usage", "Response", "ResponseChoice",
    "Message", "ToolCall",
    # helpers
    "extract_content", "extract_finish_reason", "collect_stream", "accumulate_stream",
    "consume_stream_with_callbacks", "to_sse_stream", "ResponseBuilder", "estimate_tokens",
    # errors and their helpers
    "errors", "error_details", "error_summary", "is_litestream_error", "is_retryable",
    # the router
    "router", "Router", "quick_setup",
} | {name for name in errors.__all__ if name[0].isupper() and name != "CREDENTIAL_HEADERS"}


def test_all_is_exactly_the_documented_api():
    assert set(litestream.__all__) == PUBLIC_API
    assert len(litestream.__all__) == len(set(litestream.__all__)), "a name listed twice"


def test_every_public_name_exists_and_has_a_docstring():
    for name in litestream.__all__:
        value = getattr(litestream, name)
        assert (inspect.getdoc(value) or "").strip(), f"litestream.{name} has no docstring"


def test_every_error_class_is_exported_from_the_top_level():
    error_classes = {
        name for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.LitestreamError)
    }
    assert error_classes <= set(litestream.__all__)
    assert litestream.RateLimitError is errors.RateLimitError


def test_every_public_name_is_in_the_api_reference():
    documented_modules = set(re.findall(r"automodule:: ([\w.]+)", _api_pages()))
    explicitly = set(re.findall(r"auto\w+:: litestream\.(\w+)", _api_pages()))
    for module_name in documented_modules:  # automodule documents its module's __all__
        explicitly.update(getattr(importlib.import_module(module_name), "__all__", ()))
    for name in litestream.__all__:
        value = getattr(litestream, name)
        module = getattr(value, "__name__", None) if inspect.ismodule(value) else getattr(
            value, "__module__", None)
        assert name in explicitly or module in documented_modules, (
            f"litestream.{name} (from {module}) is on no API page")


def _api_pages() -> str:
    return "\n".join(page.read_text() for page in sorted((DOCS / "api").glob("*.md")))
