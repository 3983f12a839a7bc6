"""litestream.integrations.django: replies become Django responses, streamed or whole.

The Django example site is tested with the Flask app, by one test body: test_apps.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from litestream import errors
from litestream.channels import Channel
from litestream.integrations.proxy import ProxyReply


@pytest.fixture(scope="module")
def django_module(django_application: Any) -> Any:
    """litestream.integrations.django, with Django configured by the example site."""
    from litestream.integrations import django as integration

    return integration


def test_a_whole_reply_is_an_http_response(django_module: Any) -> None:
    from django.http import HttpResponse

    response = django_module.reply_response(
        ProxyReply(201, "application/json", b'{"a":1}', {"X-A": "1"}))

    assert isinstance(response, HttpResponse)
    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    assert response["X-A"] == "1"
    assert response.content == b'{"a":1}'


def test_a_stream_is_a_streaming_response_of_openai_events(django_module: Any) -> None:
    from django.http import StreamingHttpResponse

    channel: Channel = Channel(1)
    channel.close()
    response = django_module.sse_response(channel)
    body = b"".join(response.streaming_content)

    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert body.endswith(b"data: [DONE]\n\n")


def test_error_response_has_the_status_of_the_error(django_module: Any) -> None:
    response = django_module.error_response(errors.AuthenticationError("bad key"))

    assert response.status_code == 401
    assert b"AuthenticationError" in response.content
