"""Named deployments: retries, fallbacks, cooldowns, dynamic routing and hedged requests.

A :class:`Router` maps names (``"fast"``, ``"smart"``, ``"openai"``) to
deployments: a provider, a model and a config, or a routing function that
picks the provider and model per request. ``completion(name, request)`` then
does what a production caller needs around one call:

* retries a retryable failure (connect errors, 408, 409, 429, 5xx, 529,
  in-band ``overloaded`` errors, a first-chunk timeout) with exponential
  backoff and full jitter, waiting at least as long as the provider's
  ``Retry-After`` asked, all within the call's total ``timeout``;
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

The module-level functions (:func:`register`, :func:`completion`,
:func:`quick_setup`...) work on one default router, the only global state of
this module; it is thread-safe like every :class:`Router`.

Example:
    >>> from litestream import router
    >>> router.quick_setup()                                   # doctest: +SKIP
    ['anthropic', 'ollama', 'openai']
    >>> router.register("fast", provider="openai", model="gpt-4o-mini",
    ...                 fallbacks=["anthropic"])                # doctest: +SKIP
    >>> for chunk in router.completion("fast", messages=[...], stream=True):  # doctest: +SKIP
    ...     print(litestream.extract_content(chunk) or "", end="")
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
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
from litestream._routing import RoutedStream, _Plan, _Runner, _Target
from litestream.options import OPTION_NAMES
from litestream.providers import PROVIDERS, get_provider
from litestream.types import Response

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "QUICK_SETUP_PROVIDERS",
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
    "setup_anthropic",
    "setup_gemini",
    "setup_mistral",
    "setup_ollama",
    "setup_openai",
    "setup_openrouter",
    "unregister",
    "validate_request",
]

logger = logging.getLogger("litestream")

#: Retries after the first attempt of a deployment, unless registered otherwise.
DEFAULT_MAX_RETRIES = 2

#: The providers :func:`quick_setup` looks for, in the order it registers them.
QUICK_SETUP_PROVIDERS = ("openai", "anthropic", "gemini", "mistral", "openrouter", "ollama")

#: ``fn(request) -> {"provider": ..., "model": ...}`` picks a deployment per request.
RouteFunction = Callable[[Mapping[str, Any]], Mapping[str, Any]]

P = ParamSpec("P")
R = TypeVar("R")


# ---------------------------------------------------------------------------
# Registered deployments
# ---------------------------------------------------------------------------


@attrs.frozen
class _Deployment:
    """What ``register`` stored under a name; never mutated (re-registering replaces it)."""

    name: str
    provider: Optional[str]
    model: Optional[str]
    config: Mapping[str, Any]
    fallbacks: tuple[str, ...]
    max_retries: int
    route: Optional[RouteFunction] = None
    configs: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    route_keys: frozenset[str] = frozenset()

    def describe(self) -> dict[str, Any]:
        """Return the registration as a new dict, with API keys masked."""
        description: dict[str, Any] = {
            "name": self.name,
            "provider": self.provider,
            "model": self.model,
            "config": _masked(self.config),
            "fallbacks": list(self.fallbacks),
            "max_retries": self.max_retries,
        }
        if self.route is not None:
            description["router"] = self.route
            description["configs"] = {name: _masked(c) for name, c in self.configs.items()}
            description["route_keys"] = sorted(self.route_keys)
        return description


def _copy_config(config: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """Copy a config one level deeper than ``dict()`` (``headers`` is a dict of its own)."""
    copied = dict(config or {})
    if isinstance(copied.get("headers"), Mapping):
        copied["headers"] = dict(copied["headers"])
    return copied


def _check_config(config: Mapping[str, Any], where: str) -> None:
    unknown = set(config) - OPTION_NAMES
    if unknown:
        raise errors.ConfigurationError(
            f"unknown config keys {sorted(unknown)} for {where}; "
            f"known keys: {sorted(OPTION_NAMES)}"
        )
    errors.register_secret(config.get("api_key"))


def _masked(config: Mapping[str, Any]) -> dict[str, Any]:
    masked = _copy_config(config)
    if masked.get("api_key"):
        masked["api_key"] = "[REDACTED]"
    return masked


# ---------------------------------------------------------------------------
# The router
# ---------------------------------------------------------------------------


class Router(_Runner):
    """A thread-safe registry of named deployments, with retries, fallbacks and cooldowns.

    Args:
        backoff_base: the first retry waits up to this many seconds; each
            further retry doubles the bound (full jitter: a uniform draw below it).
        backoff_cap: the bound never exceeds this many seconds.
        max_retry_after: a ``Retry-After`` longer than this is not waited
            for; the router moves on to a fallback instead.
        cooldown_failures: this many failures of a deployment ...
        cooldown_window: ... within this many seconds ...
        cooldown_duration: ... make it skipped for this many seconds, as long
            as a deployment that is not cooling down is left to try.

    Example:
        >>> r = Router(backoff_base=0.1)
        >>> r.register("fast", provider="openai", model="gpt-4o-mini", api_key="sk-...")
        >>> r.names()
        ['fast']
    """

    def __init__(
        self,
        *,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_after: float = 60.0,
        cooldown_failures: int = 3,
        cooldown_window: float = 60.0,
        cooldown_duration: float = 30.0,
    ) -> None:
        super().__init__(
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_retry_after=max_retry_after,
            cooldown_failures=cooldown_failures,
            cooldown_window=cooldown_window,
            cooldown_duration=cooldown_duration,
        )
        self._lock = threading.Lock()
        self._deployments: dict[str, _Deployment] = {}

    # -- the registry --------------------------------------------------------

    def register(
        self,
        name: str,
        provider: Optional[str] = None,
        model: Optional[str] = None,
        config: Optional[Mapping[str, Any]] = None,
        *,
        fallbacks: Union[str, Iterable[str]] = (),
        max_retries: int = DEFAULT_MAX_RETRIES,
        router: Optional[RouteFunction] = None,
        configs: Optional[Mapping[str, Mapping[str, Any]]] = None,
        route_keys: Iterable[str] = (),
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
            max_retries: retries of a retryable failure before falling back.
            router: dynamic routing: ``fn(request) -> {"provider": ...,
                "model": ...}`` picks the deployment per request (it may
                also return a ``"config"`` dict merged over ``configs``).
            configs: with ``router``, the config of each provider it may pick.
            route_keys: request keys only ``router`` reads (a ``priority``,
                say); they are removed before the request is sent.
            **config_kwargs: config keys given as keywords.

        Raises:
            ConfigurationError: an unknown provider or config key, or a
                deployment without a provider or routing function.
        """
        if not isinstance(name, str) or not name:
            raise errors.ConfigurationError("a deployment name must be a non-empty string")
        merged = _copy_config(config)
        merged.update(config_kwargs)
        _check_config(merged, repr(name))
        retries = int(merged.pop("max_retries", max_retries))
        if retries < 0:
            raise errors.ConfigurationError("max_retries must be 0 or more")
        if isinstance(fallbacks, str):
            fallbacks = (fallbacks,)
        fallbacks = tuple(fallbacks)
        if name in fallbacks:
            raise errors.ConfigurationError(f"{name!r} cannot be its own fallback")
        if provider is not None:
            if model is None and "/" in provider:
                provider, model = core.split_model(provider, None)
            provider_object = get_provider(provider)
            provider, model = provider_object.name, model or provider_object.default_model
        route_configs: dict[str, Mapping[str, Any]] = {}
        if router is not None:
            if not callable(router):
                raise errors.ConfigurationError("router must be a function of the request")
            for provider_name, provider_config in (configs or {}).items():
                get_provider(provider_name)
                route_config = _copy_config(provider_config)
                _check_config(route_config, f"{name!r}/{provider_name}")
                route_configs[provider_name] = route_config
        elif provider is None:
            raise errors.ConfigurationError(
                f"register({name!r}, ...) needs provider= (and model=) or router="
            )
        deployment = _Deployment(
            name=name, provider=provider, model=model, config=merged, fallbacks=fallbacks,
            max_retries=retries, route=router, configs=route_configs,
            route_keys=frozenset(route_keys),
        )
        with self._lock:
            self._deployments[name] = deployment
        self._health.forget(name)

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
        provider_object = get_provider(provider)
        env = os.environ if env is None else env
        api_key = api_key or core.env_api_key(provider_object, env)
        if provider_object.requires_api_key and not api_key:
            variables = " or ".join(core.key_variables(provider_object)) or "api_key"
            raise errors.ConfigurationError(
                f"no API key for {provider_object.name}: pass api_key=... or set {variables}"
            )
        if api_key:
            config["api_key"] = api_key
        api_base = core.env_api_base(provider_object, env)
        if api_base:
            config.setdefault("api_base", api_base)
        name = name or provider_object.name
        self.register(name, provider_object.name, model, config)
        return name

    def quick_setup(self, env: Optional[Mapping[str, str]] = None) -> list[str]:
        """Register every provider whose key is set in ``env``, and Ollama; return the names.

        Each provider is registered under its own name with its default model,
        at its base URL variable (``OPENAI_BASE_URL``, ``OLLAMA_HOST``...) or
        its default URL. Ollama needs no key and is always registered;
        registering does no I/O. With no key at all, an info line on the
        ``litestream`` logger names the variables to set. Never raises.

        Args:
            env: the environment to read; ``os.environ`` by default.
        """
        env = os.environ if env is None else env
        registered: list[str] = []
        missing: list[str] = []
        with_key = 0
        for provider_name in QUICK_SETUP_PROVIDERS:
            if provider_name not in PROVIDERS:
                continue
            provider_object = get_provider(provider_name)
            has_key = core.env_api_key(provider_object, env) is not None
            if provider_object.requires_api_key and not has_key:
                missing.append(" or ".join(core.key_variables(provider_object)))
                continue
            try:
                registered.append(self.setup(provider_name, env=env))
            except errors.ConfigurationError as error:  # a malformed variable, say
                logger.warning("quick_setup skipped %s: %s", provider_name, error)
                continue
            with_key += provider_object.requires_api_key
        if not with_key:
            logger.info(
                "litestream quick_setup: no API key found, registered only %s; "
                "set %s to use more providers",
                ", ".join(registered) or "nothing", ", ".join(missing),
            )
        return registered

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
        """Return what is registered under ``name`` (a new dict; API keys masked).

        Raises:
            ConfigurationError: ``name`` is not registered.
        """
        return self._deployment(name).describe()

    def clear(self) -> None:
        """Remove every registered name and forget all failures."""
        with self._lock:
            self._deployments.clear()
        self._health.clear()

    def _deployment(self, name: str) -> _Deployment:
        with self._lock:
            deployment = self._deployments.get(name)
            known = sorted(self._deployments)
        if deployment is not None:
            return deployment
        # A provider name or "provider/model" works without registering.
        provider_name, _, model = str(name).partition("/")
        try:
            provider = get_provider(provider_name)
        except errors.ConfigurationError:
            pass
        else:
            return _Deployment(
                name=name, provider=provider.name, model=model or provider.default_model,
                config={}, fallbacks=(), max_retries=DEFAULT_MAX_RETRIES,
            )
        raise errors.ConfigurationError(
            f"no deployment named {name!r}; registered names: {known or 'none'} "
            f"(provider names and 'provider/model' work too: {sorted(PROVIDERS)})"
        )

    # -- planning a call -------------------------------------------------------

    def _plan(self, name: str, request: Optional[Mapping[str, Any]], kwargs: dict[str, Any],
              *, with_fallbacks: bool = True) -> _Plan:
        """Resolve ``name`` and its fallbacks into validated targets; no I/O."""
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
            self._target(deployment, merged_request, call_config, model if i == 0 else None)
            for i, deployment in enumerate(chain)
        )
        total = targets[0].config.timeouts.total
        return _Plan(
            targets=targets,
            deadline=None if total is None else time.monotonic() + total,
            stream=bool(merged_request.get("stream")),
            buffer=targets[0].config.buffer,
        )

    def _target(
        self,
        deployment: _Deployment,
        request: Mapping[str, Any],
        call_config: Mapping[str, Any],
        model: Optional[str],
    ) -> _Target:
        provider, chosen_model = deployment.provider, deployment.model
        config = dict(deployment.config)
        if deployment.route is not None:
            choice = deployment.route(dict(request))
            if not isinstance(choice, Mapping) or not (choice.get("provider") or provider):
                raise errors.ConfigurationError(
                    f"the router of {deployment.name!r} must return "
                    f"{{'provider': ..., 'model': ...}}, not {choice!r}"
                )
            if choice.get("provider"):
                provider, chosen_model = choice["provider"], None
            chosen_model = choice.get("model") or chosen_model
            config.update(deployment.configs.get(provider, {}))
            config.update(choice.get("config") or {})
            request = {k: v for k, v in request.items() if k not in deployment.route_keys}
        assert provider is not None
        model = model or chosen_model or get_provider(provider).default_model
        config.update(call_config)
        max_retries = int(config.pop("max_retries", deployment.max_retries))
        # The router retries and falls back itself: each attempt is one request.
        config["max_retries"] = 0
        provider_object, model, prepared, resolved = core.prepare(provider, model, request, config)
        return _Target(
            provider=provider_object.name, model=model, request=prepared, config=resolved,
            max_retries=max_retries, key=(deployment.name, provider_object.name, model),
        )


    def completion(
        self, name: str, request: Optional[Mapping[str, Any]] = None, **kwargs: Any
    ) -> Union[RoutedStream, Response]:
        """Run a chat completion on the deployment ``name``, with retries and fallbacks.

        Args:
            name: a registered name, a provider name (its default model) or
                ``"provider/model"``.
            request: OpenAI chat keys (``messages``, ``stream``...).
            **kwargs: request keys, config keys overriding the registered
                config (``timeout`` is the whole call's budget, retries
                included), and ``model`` to override the model.

        Returns:
            A :class:`RoutedStream` (at once) when ``stream`` is true, else
            the :class:`~litestream.Response`.

        Raises:
            ConfigurationError: before any I/O, for an unknown name (the
                message lists the registered ones) or a malformed request.
            LitestreamError: a non-streaming call failed on every attempt;
                ``attempts`` holds one summary line per attempt.
        """
        plan = self._plan(name, request, kwargs)
        if plan.stream:
            return self._stream(name, plan)
        return self._response(plan)

    def race(
        self, names: Sequence[str], request: Optional[Mapping[str, Any]] = None, **kwargs: Any
    ) -> RoutedStream:
        """Stream the same request from several deployments; keep the first to produce content.

        Every deployment is asked at once (a hedged request). The first
        stream to deliver a content chunk wins: it is returned with that
        chunk and any metadata chunks before it still to be read; the other
        streams are closed at once. There are no retries or fallbacks.

        Args:
            names: the deployments to race (names, providers or ``"provider/model"``).
            request: OpenAI chat keys; ``stream`` is implied.
            **kwargs: request and config keys, as for :meth:`completion`.

        Raises:
            ConfigurationError: before any I/O, for an unknown name or bad request.
            LitestreamError: every stream failed; ``attempts`` lists them.
        """
        if not names:
            raise errors.ConfigurationError("race needs at least one deployment name")
        kwargs["stream"] = True
        plans = [self._plan(name, request, dict(kwargs), with_fallbacks=False) for name in names]
        return self._race(names, plans)

    def chat(self, name: str, message: str, system: Optional[str] = None) -> str:
        """Ask one question and return the answer's text ("" when it has none).

        Raises:
            LitestreamError: as :meth:`completion` does.
        """
        messages = [{"role": "user", "content": message}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        response = self.completion(name, messages=messages, stream=False)
        assert isinstance(response, Response)
        return response.content or ""

    def __repr__(self) -> str:
        return f"<Router names={self.names()}>"


# ---------------------------------------------------------------------------
# Provider discovery
# ---------------------------------------------------------------------------


def providers() -> list[str]:
    """Return the names of the providers litestream speaks, sorted."""
    return sorted(PROVIDERS)


def provider_info(name: str, env: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
    """Describe a provider: defaults, variables, capabilities, and whether its key is set.

    Args:
        name: the provider name.
        env: the environment to check for the key; ``os.environ`` by default.

    Raises:
        ConfigurationError: an unknown provider.
    """
    provider = get_provider(name)
    env = os.environ if env is None else env
    return {
        "name": provider.name,
        "default_api_base": provider.default_api_base,
        "api_base": core.env_api_base(provider, env),
        "env_var": provider.env_var,
        "env_var_aliases": list(getattr(provider, "env_var_aliases", ()) or ()),
        "base_url_env_var": provider.base_url_env_var,
        "default_model": provider.default_model,
        "requires_api_key": provider.requires_api_key,
        "supports_streaming": provider.supports_streaming,
        "supports_tools": provider.supports_tools,
        "api_key_set": core.env_api_key(provider, env) is not None,
    }


def validate_request(provider: str, request: Mapping[str, Any]) -> list[str]:
    """Return every problem of ``request`` for ``provider`` at once (empty when it is fine).

    Checks the request's shape (:func:`litestream.core.validate_request`)
    and what the provider can do: tools, streaming.
    """
    try:
        provider_object = get_provider(provider.split("/", 1)[0])
    except errors.ConfigurationError as error:
        return [str(error)]
    problems = core.validate_request(request)
    tools = request.get("tools")
    if tools:
        if not provider_object.supports_tools:
            problems.append(f"{provider_object.name} does not support tools")
        if not isinstance(tools, (list, tuple)):
            problems.append("'tools' must be a list")
        else:
            for position, tool in enumerate(tools):
                function = tool.get("function") if isinstance(tool, Mapping) else None
                if not isinstance(function, Mapping) or not function.get("name"):
                    problems.append(f"tools[{position}] needs a 'function' with a 'name'")
    elif request.get("tool_choice") not in (None, "none", "auto"):
        problems.append("'tool_choice' is set but there are no 'tools'")
    if request.get("stream") and not provider_object.supports_streaming:
        problems.append(f"{provider_object.name} does not support streaming")
    return problems


# ---------------------------------------------------------------------------
# The default router and the module-level shims over it
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


def _setup_function(provider: str) -> Callable[..., str]:
    """Make ``setup_<provider>``: register ``provider`` on the default router."""

    def setup_provider(
        api_key: Optional[str] = None, model: Optional[str] = None, name: str = provider,
        **config: Any,
    ) -> str:
        return _default_router.setup(provider, api_key=api_key, model=model, name=name, **config)

    setup_provider.__name__ = setup_provider.__qualname__ = f"setup_{provider}"
    setup_provider.__doc__ = (
        f"Register {provider} under ``name`` on the default router; return the name.\n\n"
        f"    The key is ``api_key`` or the one in the environment (see\n"
        f"    ``provider_info({provider!r})``); ``model`` defaults to the provider's default\n"
        f"    model; ``**config`` takes config keys such as ``api_base`` or ``timeout``.\n\n"
        f"    Raises:\n"
        f"        ConfigurationError: no key given or set, when {provider} needs one.\n"
    )
    return setup_provider


setup_openai = _setup_function("openai")
setup_anthropic = _setup_function("anthropic")
setup_gemini = _setup_function("gemini")
setup_mistral = _setup_function("mistral")
setup_openrouter = _setup_function("openrouter")
setup_ollama = _setup_function("ollama")
