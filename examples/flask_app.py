"""A Flask chat app: stream answers to the browser, and proxy OpenAI-style requests.

Routes:

* ``GET /`` -- a page whose form streams the answer into ``<pre id="answer">``.
* ``GET /stream?question=...`` -- the answer as server-sent events (OpenAI
  chunks, then ``[DONE]``), for a browser's ``EventSource``.
* ``POST /v1/chat/completions`` -- an OpenAI-compatible endpoint in front of
  any provider: ``"model": "anthropic/claude-3-5-haiku-latest"`` picks one,
  a bare model name uses the default provider. Point the official openai SDK
  at ``http://127.0.0.1:5000/v1``.

The upstream comes from ``LITESTREAM_PROVIDER``, ``LITESTREAM_MODEL``,
``LITESTREAM_API_BASE`` and ``LITESTREAM_API_KEY`` (or the provider's own key
variable). Try it offline against the fake server (``pip install -e ".[flask]"``)::

    python -m litestream.testing --port 8081 &
    LITESTREAM_API_BASE=http://127.0.0.1:8081/v1 python examples/flask_app.py

then open http://127.0.0.1:5000/.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional

from _setup import Upstream, upstream_from_env
from flask import Flask, render_template, request

from litestream.integrations.flask import proxy_response, reply_response

TEMPLATES = Path(__file__).resolve().parent / "templates"


def create_app(
    provider: Optional[str] = None,
    model: Optional[str] = None,
    config: Optional[Mapping[str, Any]] = None,
    heartbeat: float = 15.0,
) -> Flask:
    """Build the app; arguments left out come from the environment (see the module doc)."""
    default = upstream_from_env()
    upstream = Upstream(provider or default.provider, model or default.model,
                        dict(default.config if config is None else config))

    app = Flask(__name__, template_folder=str(TEMPLATES))

    @app.get("/")
    def index() -> str:
        return render_template("chat.html")

    @app.get("/stream")
    def stream() -> Any:
        return reply_response(upstream.ask(request.args.get("question", ""), heartbeat))

    @app.post("/v1/chat/completions")
    def chat_completions() -> Any:
        body = request.get_json(silent=True)
        return proxy_response(body, upstream.provider, upstream.model, upstream.config, heartbeat)

    return app


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5000"))
    create_app().run(host="127.0.0.1", port=port, threaded=True)
