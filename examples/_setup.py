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
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator, Mapping, NamedTuple, Optional

from litestream.cli import UsageError, resolve_chat_target
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
    """The first provider with a key in the environment, or None."""
    try:
        chosen = resolve_chat_target(None)
    except UsageError:
        return None
    return Target(chosen.provider, chosen.model, dict(chosen.config))


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
