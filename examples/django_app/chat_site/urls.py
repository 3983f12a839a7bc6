"""The site's three routes: the page, the browser's event stream, the OpenAI-compatible proxy."""

from __future__ import annotations

from django.urls import path

from chat_site import views

urlpatterns = [
    path("", views.index),
    path("stream", views.stream),
    path("v1/chat/completions", views.chat_completions),
]
