"""Named deployments: retries, fallbacks, cooldowns, dynamic routing and hedged requests.

A :class:`Router` maps names (``"fast"``, ``"smart"``, ``"openai"``) to
deployments: a provider, a model and a config, or a routing function that
picks the provider and model per request. ``completion(name, request)`` then
does what a production caller needs around one call:

* retries a retryable failure (connect errors, 408, 409, 429, 5xx, 529,
  in-band ``overloaded`` errors, a first-chunk timeout) as the router's
  :class:`~litestream.options.RetryPolicy` says: exponential backoff with
  full jitter, waiting at least as long as the provider's ``Retry-After``
  asked, all within the call's total ``timeout``;
* never retries once content reached the caller: the error is raised with
  ``partial_content`` holding the text delivered so far;
* moves on to the deployment's ``fallbacks`` when its retries are spent, and
  raises the last error with ``attempts`` naming every attempt when all fail;
* skips a deployment that keeps failing (a cooldown), so a fallback answers
  at once instead of after another round of waits.

A streaming call returns a :class:`RoutedStream` at once. A router thread
(``litestream-router``) opens each attempt and *peeks* at it: role-only and
other metadata chunks are held back until the first content chunk arrives,
then the router commits to that attempt and forwards everything in order.

A ``Router`` is a registry composed with a runner (retries, fallbacks,
races) and a health book (cooldowns). The module-level functions
(:func:`register`, :func:`completion`, :func:`quick_setup`...) delegate to
one default router, the only global state of this module; it is
thread-safe like every :class:`Router`.

Example:
    >>> from litestream import router
    >>> router.quick_setup()                                   # doctest: +SKIP
    ['anthropic', 'ollama', 'openai']
    >>> router.register("fast", provider="openai", model="gpt-4o-mini",
    ...                 fallbacks=["anthropic"])                # doctest: +SKIP
    >>> for chunk in router.completion("fast", messages=[...], stream=True):  # doctest: +SKIP
    ...     print(chunk.content or "", end="")
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from typing import (
    Any,
    Callable,
    Concatenate,
    Iterable,
    Mapping,
    Optional,
    ParamSpec,
    Sequence,
    TypeVar,
    Union,
)

import attrs

from litestream import core, errors
from litestream._deployments import (
    Deployment,
    RouteFunction,
    build_deployment,
    copy_config,
    resolve_target,
)
from litestream._health import HealthBook
from litestream._limits import Limits, LocalState, State
from litestream._routed_stream import AttemptLog, RoutedStream
from litestream._routing import Plan, Runner
from litestream._setup import (
    QUICK_SETUP_PROVIDERS as QUICK_SETUP_PROVIDERS,  # the CLI lists them
)
from litestream._setup import (
    REDIS_URL_VARIABLE,
    env_config,
    provider_info,
    providers,
    redis_url,
    setup_from_env,
)
from litestream.listeners import check_listener
from litestream.options import OPTION_NAMES, RetryPolicy
from litestream.providers import PROVIDERS, get_provider, split_provider_model
from litestream.redis_state import RedisState
from litestream.types import Response

__all__ = [
    "AttemptLog",
    "RedisState",
    "RoutedStream",
    "Router",
    "chat",
    "clear",
    "completion",
    "default_router",
    "get_config",
    "names",
    "provider_info",
    "providers",
    "quick_setup",
    "race",
    "register",
    "setup",
    "unregister",
]

logger = logging.getLogger("litestream")

P = ParamSpec("P")
R = TypeVar("R")


class Router:
    """A thread-safe registry of named deployments, with retries, fallbacks and cooldowns.

    Retries follow one :class:`~litestream.options.RetryPolicy`: pass
    ``retry_policy``, or the ``backoff_*`` and ``max_retry_after`` arguments
    that build one. Its ``max_retries`` is the default of every deployment
    (``register(..., max_retries=)`` sets one's own); its ``wait`` sleeps
    between attempts, so a test injects a fake one and waits for nothing.

    Args:
        retry_policy: the retry policy; built from the next three when omitted.
        backoff_base: the first retry waits up to this many seconds; each
            further retry doubles the bound (full jitter: a uniform draw below it).
        backoff_cap: the bound never exceeds this many seconds.
        max_retry_after: a ``Retry-After`` longer than this is not waited
            for; the router moves on to a fallback instead.
        cooldown_failures: this many failures of a deployment ...
        cooldown_window: ... within this many seconds ...
        cooldown_duration: ... make it skipped for this many seconds, as long
            as a deployment that is not cooling down is left to try.
        state: where the deployments' limits (``rpm``, ``tpm``,
            ``max_concurrent``) are kept; an in-process state by default.
        clock: monotonic seconds, for deadlines, cooldowns and limits.
        listeners: lifecycle listeners of every call of this router (see
            :mod:`litestream.listeners`), on top of the process's. Each
            attempt of a routed call (a retry, a fallback, each stream of a
            race) is one call for them, with its ``deployment`` name and
            ``attempt`` number, and ends exactly once.

    Raises:
        ConfigurationError: ``retry_policy`` given with a ``backoff_*`` or
            ``max_retry_after`` argument, or a bad value.

    Example:
        >>> r = Router(backoff_base=0.1)
        >>> r.register("fast", provider="openai", model="gpt-4o-mini", api_key="sk-...")
        >>> r.names()
        ['fast']
    """

    def __init__(
        self,
        *,
        retry_policy: Optional[RetryPolicy] = None,
        backoff_base: Optional[float] = None,
        backoff_cap: Optional[float] = None,
        max_retry_after: Optional[float] = None,
        cooldown_failures: int = 3,
        cooldown_window: float = 60.0,
        cooldown_duration: float = 30.0,
        state: Optional[State] = None,
        clock: Callable[[], float] = time.monotonic,
        listeners: Sequence[Any] = (),
    ) -> None:
        self.retry_policy = _policy(retry_policy, backoff_base, backoff_cap, max_retry_after)
        self.clock = clock
        #: The router's own lifecycle listeners (a tuple).
        self.listeners = _listeners(listeners)
        self._health = HealthBook(cooldown_failures, cooldown_window, cooldown_duration, clock)
        self._state = LocalState(clock) if state is None else state
        self._runner = Runner(self._health, self._state, clock)
        self._lock = threading.Lock()
        self._deployments: dict[str, Deployment] = {}

    # -- the registry --------------------------------------------------------

    def register(
        self,
        name: str,
        provider: Optional[str] = None,
        model: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        *,
        fallbacks: Union[str, Iterable[str]] = (),
        max_retries: Optional[int] = None,
        router: Optional[RouteFunction] = None,
        configs: Optional[Mapping[str, Mapping[str, Any]]] = None,
        route_keys: Iterable[str] = (),
        rpm: Optional[float] = None,
        tpm: Optional[float] = None,
        max_concurrent: Optional[int] = None,
        burst: Optional[int] = None,
        **config_kwargs: Any,
    ) -> None:
        """Register (or replace) the deployment called ``name``; no I/O.

        Args:
            name: the name to route by.
            provider: the provider (``"openai"``...), or ``"provider/model"``.
            model: the model; the provider's default model when omitted.
            config: config keys (``api_key``, ``api_base``, ``timeout``...);
                copied. ``max_retries`` in it overrides the argument.
            fallbacks: names (or ``"provider/model"``) tried in order once
                this deployment's retries are spent.
            max_retries: retries of a retryable failure before falling back;
                the router's ``retry_policy.max_retries`` when omitted.
            router: dynamic routing: ``fn(request) -> {"provider": ...,
                "model": ...}`` picks the deployment per request (it may
                also return a ``"config"`` dict merged over ``configs``).
            configs: with ``router``, the config of each provider it may pick.
            route_keys: request keys only ``router`` reads (a ``priority``,
                say); they are removed before the request is sent.
            rpm: requests per minute, refilled continuously (a GCRA).
            tpm: tokens per minute: a call reserves its prompt's estimate
                plus ``max_tokens`` and settles with the reported usage.
            max_concurrent: attempts of this deployment in flight at once.
            burst: requests admitted at once on a full bucket; one second's
                worth of ``rpm`` (at least 1) by default.
            **config_kwargs: config keys given as keywords.

        A call to a deployment at one of its limits goes to a fallback,
        else waits for room within its ``timeout``, else raises
        :class:`~litestream.errors.RateLimitError` with ``retry_after``;
        it is never sent over the limit.

        Raises:
            ConfigurationError: an unknown provider or config key, a bad
                limit, or a deployment without a provider or routing function.
        """
        merged = copy_config(config)
        merged.update(config_kwargs)
        deployment = build_deployment(
            name, provider, model, merged, fallbacks=fallbacks,
            max_retries=self.retry_policy.max_retries if max_retries is None else max_retries,
            router=router, configs=configs, route_keys=route_keys,
            limits=Limits(rpm=rpm, tpm=tpm, max_concurrent=max_concurrent, burst=burst),
        )
        with self._lock:
            self._deployments[name] = deployment
        self._health.forget(name)
        self._state.forget(name)

    def setup(
        self,
        provider: str,
        api_key: Optional[str] = None,
        model: Optional[str] = None,
        name: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        **config: Any,
    ) -> str:
        """Register one provider with an explicit key or the environment's; return its name.

        Args:
            provider: the provider name.
            api_key: the key; read from the provider's variable in ``env``
                (``os.environ`` by default) when omitted.
            model: the model; the provider's default model when omitted.
            name: the name to register under; the provider's name by default.
            env: where to look for the key and the base URL variable.
            **config: further config keys (``api_base``, ``timeout``...).

        Raises:
            ConfigurationError: no key given or set for a provider that needs one.
        """
        provider_name, config = env_config(provider, api_key, env, config)
        name = name or provider_name
        self.register(name, provider_name, model, config)
        return name

    def quick_setup(self, env: Optional[Mapping[str, str]] = None) -> list[str]:
        """Register every provider whose key is set in ``env``, and Ollama; return the names.

        Each provider is registered under its own name with its default model,
        at its base URL variable (``OPENAI_BASE_URL``, ``OLLAMA_HOST``...) or
        its default URL. Ollama needs no key and is always registered;
        registering does no I/O. With no key at all, an info line on the
        ``litestream`` logger names the variables to set.

        When ``LITESTREAM_REDIS_URL`` is set, the router keeps its limits,
        leases and cooldowns in a :class:`RedisState` on that Redis (default
        prefix and failure policy), shared with every process doing the
        same; a malformed URL is logged as a warning and left unused. Never
        raises.

        Args:
            env: the environment to read; ``os.environ`` by default.
        """
        url = redis_url(env)
        current = self._state
        if url and not (isinstance(current, RedisState) and current.url == url):
            try:
                state = RedisState(url)
            except errors.ConfigurationError as error:
                logger.warning("quick_setup: %s not used: %s", REDIS_URL_VARIABLE, error)
            else:
                self._state = self._runner.state = state
        return setup_from_env(lambda provider: self.setup(provider, env=env), env)

    def unregister(self, name: str) -> bool:
        """Remove ``name``; True if it was registered."""
        with self._lock:
            removed = self._deployments.pop(name, None)
        self._health.forget(name)
        return removed is not None

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        with self._lock:
            return sorted(self._deployments)

    def get_config(self, name: str) -> dict[str, Any]:
        """Return what is registered under ``name`` (a new dict).

        API keys and the values of credential headers (``Authorization``,
        ``api-key``, see :func:`~litestream.errors.is_credential_header`)
        are masked as ``"[REDACTED]"``.

        Raises:
            ConfigurationError: ``name`` is not registered.
        """
        return self._deployment(name).describe()

    def clear(self) -> None:
        """Remove every registered name and forget all failures."""
        with self._lock:
            self._deployments.clear()
        self._health.clear()

    def _deployment(self, name: str) -> Deployment:
        with self._lock:
            deployment = self._deployments.get(name)
            known = sorted(self._deployments)
        if deployment is not None:
            return deployment
        # A provider name or "provider/model" works without registering.
        named, model = split_provider_model(str(name))
        provider_name, model = (named, model) if named else (str(name), "")
        try:
            provider = get_provider(provider_name)
        except errors.ConfigurationError:
            pass
        else:
            return Deployment(
                name=name, provider=provider.name, model=model or provider.default_model,
                config={}, fallbacks=(), max_retries=self.retry_policy.max_retries,
            )
        raise errors.ConfigurationError(
            f"no deployment named {name!r}; registered names: {known or 'none'} "
            f"(provider names and 'provider/model' work too: {sorted(PROVIDERS)})"
        )

    # -- calls -------------------------------------------------------------------

    def _plan(self, name: str, request: Optional[Mapping[str, Any]] = None,
              *, with_fallbacks: bool = True, **kwargs: Any) -> Plan:
        """Resolve ``name`` and its fallbacks into the validated plan of one call; no I/O."""
        merged_request = dict(request or {})
        call_config: dict[str, Any] = {}
        model = kwargs.pop("model", None)
        for key, value in kwargs.items():
            (call_config if key in OPTION_NAMES else merged_request)[key] = value
        problems = core.validate_request(merged_request)
        if problems:
            raise errors.ConfigurationError("malformed request: " + "; ".join(problems))
        primary = self._deployment(name)
        chain = [primary]
        if with_fallbacks:
            chain.extend(self._deployment(fallback) for fallback in primary.fallbacks)
        targets = tuple(
            resolve_target(deployment, merged_request, call_config,
                           model if i == 0 else None, self.retry_policy)
            for i, deployment in enumerate(chain)
        )
        total = targets[0].config.timeouts.total
        return Plan(
            targets=targets,
            deadline=None if total is None else self.clock() + total,
            stream=bool(merged_request.get("stream")),
            buffer=targets[0].config.buffer,
        )

    def completion(
        self, name: str, request: Optional[Mapping[str, Any]] = None, *,
        listeners: Sequence[Any] = (), **kwargs: Any
    ) -> Union[RoutedStream, Response]:
        """Run a chat completion on the deployment ``name``, with retries and fallbacks.

        Args:
            name: a registered name, a provider name (its default model) or
                ``"provider/model"``.
            request: OpenAI chat keys (``messages``, ``stream``...).
            **kwargs: request keys, config keys overriding the registered
                config (``timeout`` is the whole call's budget, retries
                included; ``max_retries`` and ``retry_policy`` this call's
                retries), and ``model`` to override the model.
            listeners: lifecycle listeners of this call, on top of the
                router's and the process's; each attempt is one call for
                them (``event.deployment``, ``event.attempt``).

        Returns:
            A :class:`RoutedStream` (at once) when ``stream`` is true, else
            the :class:`~litestream.Response`. The response, like the
            stream's chunks, carries the usage of the attempt that
            answered; ``RoutedStream.attempt_usages`` and ``total_usage``
            have every attempt's (for a non-streaming call, pass an
            :class:`AttemptLog` in ``listeners``).

        Raises:
            ConfigurationError: before any I/O, for an unknown name (the
                message lists the registered ones) or a malformed request.
            LitestreamError: a non-streaming call failed on every attempt;
                ``attempts`` holds one summary line per attempt.
        """
        plan = attrs.evolve(self._plan(name, request, **kwargs),
                            listeners=self._call_listeners(listeners))
        if plan.stream:
            return self._runner.stream(name, plan)
        return self._runner.response(plan)

    def race(
        self, names: Sequence[str], request: Optional[Mapping[str, Any]] = None, *,
        listeners: Sequence[Any] = (), **kwargs: Any
    ) -> RoutedStream:
        """Stream the same request from several deployments; keep the first to produce content.

        Every deployment is asked at once (a hedged request). The first
        stream to deliver a content chunk wins: it is returned with that
        chunk and any metadata chunks before it still to be read; the other
        streams are closed at once. There are no retries or fallbacks.

        Each stream is an attempt for the listeners (numbered 1, 2, ... in
        the order of ``names``); a loser ends ``cancelled`` once closed, and
        its usage stays in the handle's ``attempt_usages``.

        Args:
            names: the deployments to race (names, providers or ``"provider/model"``).
            request: OpenAI chat keys; ``stream`` is implied.
            listeners: lifecycle listeners of this call, as for :meth:`completion`.
            **kwargs: request and config keys, as for :meth:`completion`.

        Raises:
            ConfigurationError: before any I/O, for an unknown name or bad request.
            LitestreamError: every stream failed; ``attempts`` lists them.
        """
        if not names:
            raise errors.ConfigurationError("race needs at least one deployment name")
        kwargs["stream"] = True
        call_listeners = self._call_listeners(listeners)
        plans = [attrs.evolve(self._plan(name, request, with_fallbacks=False, **kwargs),
                              listeners=call_listeners) for name in names]
        return self._runner.race(names, plans)

    def chat(self, name: str, message: str, system: Optional[str] = None, *,
             listeners: Sequence[Any] = ()) -> str:
        """Ask one question and return the answer's text ("" when it has none).

        Args:
            name: the deployment, as for :meth:`completion`.
            message: the user's message.
            system: an optional system message.
            listeners: lifecycle listeners of this call, as for :meth:`completion`.

        Raises:
            LitestreamError: as :meth:`completion` does.
        """
        messages = [{"role": "user", "content": message}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        response = self.completion(name, messages=messages, stream=False, listeners=listeners)
        assert isinstance(response, Response)
        return response.content or ""

    def _call_listeners(self, listeners: Sequence[Any]) -> tuple[Any, ...]:
        """Return the router's listeners, then the call's (checked), each once."""
        own = _listeners(listeners)
        return (*self.listeners, *(one for one in own
                                   if not any(one is known for known in self.listeners)))

    def __repr__(self) -> str:
        return f"<Router names={self.names()}>"


def _listeners(listeners: Optional[Sequence[Any]]) -> tuple[Any, ...]:
    """Check lifecycle listeners (each needs a hook) and return them as a tuple."""
    if listeners is None:
        return ()
    checked = tuple(listeners)
    for listener in checked:
        check_listener(listener)
    return checked


def _policy(
    policy: Optional[RetryPolicy], backoff_base: Optional[float],
    backoff_cap: Optional[float], max_retry_after: Optional[float],
) -> RetryPolicy:
    """Return ``policy``, or one built from the ``backoff_*`` arguments (never both)."""
    given = {name: value for name, value in [
        ("backoff_base", backoff_base), ("backoff_cap", backoff_cap),
        ("max_retry_after", max_retry_after)] if value is not None}
    if policy is None:
        return RetryPolicy(**given)
    if not isinstance(policy, RetryPolicy):
        raise errors.ConfigurationError("retry_policy must be a RetryPolicy")
    if given:
        raise errors.ConfigurationError(
            f"give retry_policy or {', '.join(sorted(given))}, not both")
    return policy


# ---------------------------------------------------------------------------
# The default router and the module-level functions over it
# ---------------------------------------------------------------------------

_default_router = Router()


def default_router() -> Router:
    """Return the router the module-level functions use (one per process, thread-safe)."""
    return _default_router


def _delegate(method: Callable[Concatenate[Router, P], R]) -> Callable[P, R]:
    """Make a module function calling ``method`` on the default router."""

    @functools.wraps(method)
    def function(*args: P.args, **kwargs: P.kwargs) -> R:
        return method(_default_router, *args, **kwargs)

    signature = inspect.signature(method)
    function.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=list(signature.parameters.values())[1:]
    )
    function.__doc__ = (
        f"{inspect.cleandoc(method.__doc__ or '')}\n\n"
        "Works on the default router (:func:`default_router`)."
    )
    return function


register = _delegate(Router.register)
setup = _delegate(Router.setup)
quick_setup = _delegate(Router.quick_setup)
unregister = _delegate(Router.unregister)
names = _delegate(Router.names)
get_config = _delegate(Router.get_config)
clear = _delegate(Router.clear)
completion = _delegate(Router.completion)
race = _delegate(Router.race)
chat = _delegate(Router.chat)
