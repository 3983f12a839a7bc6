"""What a router stores under a name, and how a registration is checked, step by step.

A :class:`Deployment` is immutable: registering a name again replaces it.
:func:`build_deployment` checks a registration in small steps (name,
config, retries, fallbacks, provider, routing function) and
:func:`resolve_target` turns a deployment into the
:class:`~litestream._routing.Target` of one call. No I/O happens here.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Union

import attrs

from litestream import core, errors
from litestream._limits import Limits, estimate_call_tokens
from litestream._routing import Target
from litestream.options import OPTION_NAMES, RetryPolicy
from litestream.providers import get_provider

__all__ = [
    "Deployment",
    "RouteFunction",
    "build_deployment",
    "copy_config",
    "masked",
    "resolve_target",
]

#: ``fn(request) -> {"provider": ..., "model": ...}`` picks a deployment per request.
RouteFunction = Callable[[Mapping[str, Any]], Mapping[str, Any]]

_MASK = "[REDACTED]"


@attrs.frozen
class Deployment:
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
    limits: Limits = attrs.field(factory=Limits)

    def describe(self) -> dict[str, Any]:
        """Return the registration as a new dict, with every credential masked."""
        description: dict[str, Any] = {
            "name": self.name,
            "provider": self.provider,
            "model": self.model,
            "config": masked(self.config),
            "fallbacks": list(self.fallbacks),
            "max_retries": self.max_retries,
        }
        if self.limits.any:
            description["limits"] = attrs.asdict(self.limits)
        if self.route is not None:
            description["router"] = self.route
            description["configs"] = {name: masked(c) for name, c in self.configs.items()}
            description["route_keys"] = sorted(self.route_keys)
        return description


def copy_config(config: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """Copy a config one level deeper than ``dict()`` (``headers`` is a dict of its own)."""
    copied = dict(config or {})
    if isinstance(copied.get("headers"), Mapping):
        copied["headers"] = dict(copied["headers"])
    return copied


def masked(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``config`` with the API key and every credential header masked."""
    copied = copy_config(config)
    if copied.get("api_key"):
        copied["api_key"] = _MASK
    headers = copied.get("headers")
    if isinstance(headers, dict):
        copied["headers"] = {
            name: _MASK if errors.is_credential_header(str(name)) else value
            for name, value in headers.items()
        }
    return copied


def _check_config(config: Mapping[str, Any], where: str) -> None:
    unknown = set(config) - OPTION_NAMES
    if unknown:
        raise errors.ConfigurationError(
            f"unknown config keys {sorted(unknown)} for {where}; "
            f"known keys: {sorted(OPTION_NAMES)}"
        )


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise errors.ConfigurationError("a deployment name must be a non-empty string")
    return name


def _retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise errors.ConfigurationError(f"max_retries must be an integer >= 0, not {value!r}")
    return value


def _fallbacks(name: str, fallbacks: Union[str, Iterable[str]]) -> tuple[str, ...]:
    chain = (fallbacks,) if isinstance(fallbacks, str) else tuple(fallbacks)
    if name in chain:
        raise errors.ConfigurationError(f"{name!r} cannot be its own fallback")
    return chain


def _provider_and_model(
    provider: Optional[str], model: Optional[str]
) -> tuple[Optional[str], Optional[str]]:
    if provider is None:
        return None, model
    if model is None and "/" in provider:
        provider, model = core.split_model(provider, None)
    provider_object = get_provider(provider)
    return provider_object.name, model or provider_object.default_model


def _route_configs(
    name: str, router: Optional[RouteFunction],
    configs: Optional[Mapping[str, Mapping[str, Any]]], provider: Optional[str],
) -> dict[str, Mapping[str, Any]]:
    if router is None:
        if provider is None:
            raise errors.ConfigurationError(
                f"register({name!r}, ...) needs provider= (and model=) or router=")
        return {}
    if not callable(router):
        raise errors.ConfigurationError("router must be a function of the request")
    checked: dict[str, Mapping[str, Any]] = {}
    for provider_name, provider_config in (configs or {}).items():
        get_provider(provider_name)
        route_config = copy_config(provider_config)
        _check_config(route_config, f"{name!r}/{provider_name}")
        checked[provider_name] = route_config
    return checked


def build_deployment(
    name: str,
    provider: Optional[str],
    model: Optional[str],
    config: Mapping[str, Any],
    *,
    fallbacks: Union[str, Iterable[str]],
    max_retries: int,
    router: Optional[RouteFunction],
    configs: Optional[Mapping[str, Mapping[str, Any]]],
    route_keys: Iterable[str],
    limits: Limits = Limits(),
) -> Deployment:
    """Check one registration and return its :class:`Deployment`; no I/O.

    Raises:
        ConfigurationError: a bad name, config key, retry count, fallback,
            provider or routing function.
    """
    name = _check_name(name)
    merged = copy_config(config)
    _check_config(merged, repr(name))
    retries = _retries(merged.pop("max_retries", max_retries))
    chain = _fallbacks(name, fallbacks)
    provider, model = _provider_and_model(provider, model)
    return Deployment(
        name=name, provider=provider, model=model, config=merged, fallbacks=chain,
        max_retries=retries, route=router,
        configs=_route_configs(name, router, configs, provider),
        route_keys=frozenset(route_keys), limits=limits,
    )


def _routed(
    deployment: Deployment, request: Mapping[str, Any], config: dict[str, Any]
) -> tuple[str, Optional[str], Mapping[str, Any]]:
    """Ask a dynamic deployment's routing function; return provider, model, request."""
    assert deployment.route is not None
    provider, model = deployment.provider, deployment.model
    choice = deployment.route(dict(request))
    if not isinstance(choice, Mapping) or not (choice.get("provider") or provider):
        raise errors.ConfigurationError(
            f"the router of {deployment.name!r} must return "
            f"{{'provider': ..., 'model': ...}}, not {choice!r}"
        )
    if choice.get("provider"):
        provider, model = choice["provider"], None
    model = choice.get("model") or model
    assert provider is not None
    config.update(deployment.configs.get(provider, {}))
    config.update(choice.get("config") or {})
    request = {k: v for k, v in request.items() if k not in deployment.route_keys}
    return provider, model, request


def resolve_target(
    deployment: Deployment,
    request: Mapping[str, Any],
    call_config: Mapping[str, Any],
    model: Optional[str],
    retry: RetryPolicy,
) -> Target:
    """Resolve ``deployment`` for one call into a validated :class:`Target`; no I/O.

    Args:
        deployment: the registration.
        request: the call's request keys.
        call_config: options given with the call; they override the registered ones.
        model: the call's own model, overriding the deployment's.
        retry: the router's retry policy; a ``retry_policy`` option replaces
            it, and ``max_retries`` (the deployment's, or the call's) sets its count.

    Raises:
        ConfigurationError: a bad request, option or routing choice.
    """
    config = dict(deployment.config)
    provider, chosen_model = deployment.provider, deployment.model
    if deployment.route is not None:
        provider, chosen_model, request = _routed(deployment, request, config)
    assert provider is not None
    model = model or chosen_model or get_provider(provider).default_model
    config.update(call_config)
    policy = config.pop("retry_policy", None) or retry
    if not isinstance(policy, RetryPolicy):
        raise errors.ConfigurationError("'retry_policy' must be a RetryPolicy")
    retries = _retries(config.pop("max_retries", deployment.max_retries))
    # The router retries and falls back itself: each attempt is one request.
    config["max_retries"] = 0
    provider_object, model, prepared, options = core.prepare(provider, model, request, config)
    return Target(
        provider=provider_object.name, model=model, request=prepared, config=options,
        retry=attrs.evolve(policy, max_retries=retries),
        key=(deployment.name, provider_object.name, model),
        limits=deployment.limits,
        tokens=estimate_call_tokens(prepared) if deployment.limits.tpm else 0,
    )
