"""Settings of the example chat site: no database, no apps, one template folder.

The upstream comes from ``LITESTREAM_PROVIDER``, ``LITESTREAM_MODEL``,
``LITESTREAM_API_BASE`` and ``LITESTREAM_API_KEY`` (see
:func:`upstream_from_env` in ``examples/_setup.py``, shared with the Flask example).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
# examples/, for _setup.py (the upstream settings shared with the Flask example).
if str(BASE_DIR.parent) not in sys.path:
    sys.path.append(str(BASE_DIR.parent))

from _setup import upstream_from_env  # noqa: E402

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "chat_site.urls"
WSGI_APPLICATION = "chat_site.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The page is shared with the Flask example.
        "DIRS": [BASE_DIR.parent / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {},
    }
]

#: Where completions go: an ``_setup.Upstream``.
LITESTREAM_UPSTREAM = upstream_from_env()
#: Seconds of upstream silence between SSE keep-alive comments.
LITESTREAM_HEARTBEAT = float(os.environ.get("LITESTREAM_HEARTBEAT", "15"))
