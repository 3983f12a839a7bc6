"""Views: ``GET /``, ``GET /stream?question=...`` (SSE) and ``POST /v1/chat/completions``."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from litestream.integrations.django import proxy_response, reply_response


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "chat.html")


@require_GET
def stream(request: HttpRequest) -> Any:
    upstream = settings.LITESTREAM_UPSTREAM
    return reply_response(upstream.ask(request.GET.get("question", ""),
                                       settings.LITESTREAM_HEARTBEAT))


@csrf_exempt  # an API endpoint for programs, authenticated (if at all) by a header
@require_POST
def chat_completions(request: HttpRequest) -> Any:
    try:
        body = json.loads(request.body)
    except ValueError:
        body = None
    upstream = settings.LITESTREAM_UPSTREAM
    return proxy_response(body, upstream.provider, upstream.model, upstream.config,
                          settings.LITESTREAM_HEARTBEAT)
