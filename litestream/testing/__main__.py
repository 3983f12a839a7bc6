"""``python -m litestream.testing``: run a FakeLLMServer from the shell until Ctrl-C.

It prints the server's root URL and each provider's base URL, then serves:
every request gets the default answer (``Hello from FakeLLMServer!``) in the
wire format of the provider its path names. Tests written in any language,
and the official SDKs, can point at it::

    $ python -m litestream.testing --port 8080
    FakeLLMServer on http://127.0.0.1:8080 (Ctrl-C to stop)
    openai             http://127.0.0.1:8080/v1
    ...

With ``--json`` the addresses are printed as one JSON object instead
(``{"url": ..., "api_base": {"openai": ..., ...}}``), for a program to read.
Ctrl-C (or SIGTERM) stops the server and exits with 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Optional, Sequence

from litestream.testing.server import PROVIDERS, FakeLLMServer

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m litestream.testing",
        description="Serve a FakeLLMServer on loopback until Ctrl-C; print each provider's "
                    "base URL.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0,
                        help="port to bind (default 0: any free port, printed on start)")
    parser.add_argument("--json", action="store_true",
                        help='print {"url": ..., "api_base": {provider: url}} as one JSON line')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Start a FakeLLMServer, print its addresses, serve until Ctrl-C or SIGTERM; return 0."""
    args = _parser().parse_args(argv)
    stop = threading.Event()
    # SIGTERM (a test harness or a container stopping us) ends as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeLLMServer(args.host, args.port) as server:
        bases = {provider: server.api_base(provider) for provider in PROVIDERS}
        if args.json:
            print(json.dumps({"url": server.url, "api_base": bases}), flush=True)
        else:
            lines = [f"FakeLLMServer on {server.url} (Ctrl-C to stop)"]
            lines += [f"{provider:<18} {base}" for provider, base in bases.items()]
            print("\n".join(lines), flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    print("FakeLLMServer stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
