"""Where the examples send their requests: a real provider when a key is set, else a fake one.

With a provider key in the environment (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``... see ``litestream providers``) the examples talk to
that provider. Without one they start a :class:`~litestream.testing.FakeLLMServer`
on 127.0.0.1 and script its answers, so every example runs offline::

    with _setup.backend({"text": "Hello!"}) as backend:
        provider, model, config = backend.target()
        stream = ls.completion(provider, model, {"messages": [...], "stream": True}, config)

Each reply is the keyword arguments of :meth:`FakeLLMServer.script`; the
server answers requests with them in order. A real provider ignores them.

The web examples (``flask_app.py``, ``django_app``) take their upstream from
``LITESTREAM_*`` variables instead: :func:`upstream_from_env`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator, Mapping, NamedTuple, Optional

import attrs

from litestream import errors, router
from litestream.core import completion
from litestream.integrations.proxy import ProxyReply, error_reply, sse_reply
from litestream.streaming import drop_traceback
from litestream.testing import FakeLLMServer

FAKE_KEY = "fake-key"


class Target(NamedTuple):
    """A provider, a model and the config to call them with."""

    provider: str
    model: str
    config: dict[str, Any]


class Backend:
    """The provider an example talks to: real, or the fake server."""

    def __init__(self, real: Optional[Target], server: Optional[FakeLLMServer]) -> None:
        self.real = real
        self.server = server

    @property
    def offline(self) -> bool:
        """True when the fake server answers."""
        return self.server is not None

    def target(self, provider: str = "openai", model: str = "gpt-4o-mini") -> Target:
        """Return where to send a request.

        Offline, ``provider`` picks the wire format the fake server speaks;
        with a real key, the configured provider is used whatever is asked.
        """
        if self.real is not None:
            return self.real
        assert self.server is not None
        return Target(provider, model,
                      {"api_key": FAKE_KEY, "api_base": self.server.api_base(provider)})

    def describe(self) -> str:
        """One line saying what answers."""
        if self.real is not None:
            return f"{self.real.provider}/{self.real.model} (key from the environment)"
        assert self.server is not None
        return f"FakeLLMServer at {self.server.url} (set a provider key to use a real one)"


def real_target() -> Optional[Target]:
    """The first provider with a key in the environment (as ``litestream chat`` picks), or None."""
    for name in router.Router().quick_setup():
        info = router.provider_info(name)
        if info["requires_api_key"] or os.environ.get(info["base_url_env_var"] or ""):
            return Target(info["name"], info["default_model"], {})
    return None


@contextlib.contextmanager
def backend(*replies: Mapping[str, Any]) -> Iterator[Backend]:
    """Yield the backend for an example; offline, the fake server answers with ``replies``."""
    real = real_target()
    if real is not None:
        chosen = Backend(real, None)
        print(f"[example] talking to {chosen.describe()}", file=sys.stderr)
        yield chosen
        return
    with FakeLLMServer() as server:
        for reply in replies:
            server.script(**reply)
        chosen = Backend(None, server)
        print(f"[example] talking to {chosen.describe()}", file=sys.stderr)
        yield chosen


# ---------------------------------------------------------------------------
# The web examples' upstream
# ---------------------------------------------------------------------------


@attrs.frozen
class Upstream:
    """Where a web app sends its completions: a provider, a model and the call's config."""

    provider: str
    model: str
    config: Mapping[str, Any] = attrs.field(factory=dict)

    def completion(self, messages: list[dict[str, Any]], **request: Any) -> Any:
        """Call :func:`~litestream.completion` upstream with these messages and request keys."""
        return completion(
            self.provider, self.model, {"messages": messages, **request}, dict(self.config)
        )

    def ask(self, question: str, heartbeat: Optional[float] = 15.0) -> ProxyReply:
        """Stream the answer to one user question as SSE, or reply with the error.

        An empty question or a call that fails before any I/O gives a JSON
        error reply (400); a failure later in the stream is an ``error`` event.
        """
        try:
            if not question.strip():
                raise errors.ConfigurationError("ask a question: ?question=...")
            stream = self.completion([{"role": "user", "content": question}], stream=True)
        except errors.LitestreamError as error:
            return error_reply(drop_traceback(error))
        return sse_reply(stream, heartbeat)


def upstream_from_env(environ: Optional[Mapping[str, str]] = None) -> Upstream:
    """Read a web app's upstream from the environment.

    ``LITESTREAM_PROVIDER`` (default ``openai``), ``LITESTREAM_MODEL``
    (default ``gpt-4o-mini``), ``LITESTREAM_API_BASE`` and
    ``LITESTREAM_API_KEY``; without the last, the provider's own variable
    (``OPENAI_API_KEY``...) is used. When only ``LITESTREAM_API_BASE`` is
    set (a local server such as FakeLLMServer or llama.cpp), a placeholder
    key is sent.
    """
    env = os.environ if environ is None else environ
    provider = env.get("LITESTREAM_PROVIDER") or "openai"
    model = env.get("LITESTREAM_MODEL") or "gpt-4o-mini"
    config: dict[str, Any] = {}
    api_base = env.get("LITESTREAM_API_BASE")
    if api_base:
        config["api_base"] = api_base
    api_key = env.get("LITESTREAM_API_KEY")
    if api_key:
        config["api_key"] = api_key
    elif api_base:
        variable = router.provider_info(provider, env)["env_var"]
        if not (variable and env.get(variable)):
            config["api_key"] = "no-key-needed"
    return Upstream(provider, model, config)
