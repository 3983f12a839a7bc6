"""litestream.integrations.flask: replies become Flask responses; Flask is imported only here.

The Flask example app is tested with the Django one, by one test body: test_apps.py.
"""

from __future__ import annotations

import subprocess
import sys

from litestream import errors
from litestream.channels import Channel
from litestream.integrations.flask import error_response, reply_response, sse_response
from litestream.integrations.proxy import ProxyReply


def test_import_litestream_does_not_import_web_frameworks() -> None:
    code = ("import sys, litestream, litestream.integrations, litestream.integrations.proxy; "
            "assert 'flask' not in sys.modules and 'django' not in sys.modules, 'imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 0, result.stderr


def test_reply_response_keeps_status_type_headers_and_body() -> None:
    response = reply_response(ProxyReply(418, "application/json", b'{"a":1}', {"X-A": "1"}))

    assert response.status_code == 418
    assert response.content_type == "application/json"
    assert response.headers["X-A"] == "1"
    assert response.get_data() == b'{"a":1}'


def test_error_response_is_an_openai_error_with_retry_after() -> None:
    response = error_response(errors.RateLimitError("slow down", retry_after=2.4))

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"
    assert response.get_json()["error"]["type"] == "RateLimitError"


def test_sse_response_streams_the_channel_as_openai_events() -> None:
    channel: Channel = Channel(1)
    channel.close()
    response = sse_response(channel)
    body = b"".join(response.response)

    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert body.endswith(b"data: [DONE]\n\n")
