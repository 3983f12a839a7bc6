"""How a :class:`~litestream.router.Router` runs a call: attempts, retries, cooldowns, races.

:mod:`litestream.router` keeps the registry and turns a name into a
:class:`Plan`; a :class:`Runner` runs it. It tries the plan's targets in
order, asking each target's :class:`~litestream.options.RetryPolicy` how
long to wait before retrying a retryable failure, and skipping a
deployment its :class:`~litestream._health.HealthBook` says is cooling
down. A streaming call runs on a router thread (``litestream-router``) that
peeks at each attempt until the first content chunk, then commits to it
and pumps it into the caller's
:class:`~litestream._routed_stream.RoutedStream`. :meth:`Runner.race` asks
several deployments at once and keeps the first with content.

Each attempt is one call for the lifecycle listeners (see
:mod:`litestream.listeners`): it carries the deployment's name and its
attempt number (1, 2, ... across retries and fallbacks; the position of
its deployment in a race), and ends exactly once. A streaming call's
:class:`~litestream._routed_stream.AttemptLog` is one of those listeners.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar

import attrs

from litestream import core, errors
from litestream._health import DeploymentKey, HealthBook, counts_against_deployment
from litestream._limits import Lease, Limits, State
from litestream._routed_stream import Cancelled, RoutedStream, RouteJob
from litestream.channels import alts
from litestream.listeners import estimate_usage
from litestream.options import CallOptions, RetryPolicy
from litestream.transport import Stream
from litestream.types import Chunk, Response

__all__ = ["Plan", "Runner", "Target"]

logger = logging.getLogger("litestream")

T = TypeVar("T")


@attrs.frozen
class Target:
    """One deployment resolved for one call: validated, with its options complete.

    Attributes:
        provider: the provider's name.
        model: the model.
        request: the prepared request body keys.
        config: the call's options for one attempt (the core does not retry).
        retry: the router's retry policy, with this deployment's ``max_retries``.
        key: ``(registered name, provider, model)``: the cooldown unit.
        limits: the deployment's limits (checked per registered name).
        tokens: the tokens an attempt reserves under ``limits.tpm``.
    """

    provider: str
    model: str
    request: Mapping[str, Any]
    config: CallOptions
    retry: RetryPolicy
    key: DeploymentKey
    limits: Limits = attrs.field(factory=Limits)
    tokens: int = 0


@attrs.frozen
class Plan:
    """The targets of one call, primary first, and the call's deadline (monotonic seconds).

    ``listeners`` are the call's own and its router's lifecycle listeners
    (the process's are added by each attempt).
    """

    targets: tuple[Target, ...]
    deadline: Optional[float]
    stream: bool
    buffer: int
    listeners: tuple[Any, ...] = ()

    def attempt_config(self, target: Target, now: float) -> Optional[dict[str, Any]]:
        """Return the next attempt's options, timeout cut to what is left; None when none is."""
        config = target.config.to_mapping()
        if self.deadline is not None:
            remaining = self.deadline - now
            if remaining <= 0:
                return None
            own = config["timeout"]
            config["timeout"] = remaining if own is None else min(own, remaining)
        return config


class _TryFallback(Exception):
    """A deployment is at its limit and a later target of the plan may have room."""


class Runner:
    """Runs plans: limits through a state, retries through a policy, cooldowns through a book.

    Args:
        health: the health book shared with the router that owns this runner.
        state: where the deployments' limits are kept.
        clock: monotonic seconds (deadlines are read on it).
    """

    def __init__(self, health: HealthBook, state: State,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.health = health
        self.state = state
        self.clock = clock

    def run(
        self,
        plan: Plan,
        attempt: Callable[[Target, dict[str, Any], int], T],
        cancelled: threading.Event,
        failures: list[str],
    ) -> tuple[Target, T, Optional[Lease]]:
        """Try the plan's targets with limits, retries and cooldowns; return the first success.

        Args:
            plan: what to try.
            attempt: ``attempt(target, options, number)`` makes attempt
                ``number`` (1, 2, ... over the retries and fallbacks).
            cancelled: set when the caller gave up; it ends any wait.
            failures: collects one summary line per failed attempt.

        Returns:
            The target that answered, its result, and its limits lease
            (None without limits), which the caller settles when done.

        Raises:
            Cancelled: ``cancelled`` was set during a wait.
            LitestreamError: the last attempt's error, ``attempts`` filled in;
                a ``RateLimitError`` with ``retry_after`` when the last
                deployment stays at its limit past the deadline (nothing sent).
        """
        last_error: Optional[errors.LitestreamError] = None
        numbers = itertools.count(1)
        for index, target in enumerate(plan.targets):
            if self.skippable(plan, index):
                logger.info("skipping %s/%s: cooling down", target.provider, target.model)
                continue
            for retry in itertools.count():
                config = plan.attempt_config(target, self.clock())
                if config is None:
                    break
                try:
                    lease = self._admit(plan, index, cancelled)
                except _TryFallback:
                    break
                except errors.RateLimitError as error:
                    failures.append(errors.error_summary(error))
                    raise self._final_error(plan, error, failures) from None
                try:
                    result = attempt(target, config, next(numbers))
                except errors.LitestreamError as error:
                    if lease is not None:
                        lease.settle(consumed_tokens(target, error.partial_content))
                    last_error = error
                    self._count_failure(target, error, failures)
                    delay = self.retry_delay(plan, index, retry, error)
                    if delay is None:
                        break
                    logger.info("retrying %s/%s in %.2f s after %s", target.provider,
                                target.model, delay, errors.error_summary(error))
                    if target.retry.wait(delay, cancelled):
                        raise Cancelled() from None
                    continue
                except BaseException:
                    if lease is not None:
                        lease.settle()
                    raise
                self.health.succeeded(target.key)
                return target, result, lease
        raise self._final_error(plan, last_error, failures)

    def _admit(self, plan: Plan, index: int, cancelled: threading.Event) -> Optional[Lease]:
        """Reserve target ``index``'s limits, waiting for room when no fallback is left.

        Raises:
            _TryFallback: the target is at a limit and a later target may have room.
            RateLimitError: no room before the deadline.
            Cancelled: ``cancelled`` was set during the wait.
        """
        target = plan.targets[index]
        if not (target.limits.any or self.state.shared):
            return None
        while True:
            admission = self.state.admit(target.key[0], target.limits, target.tokens)
            if admission.lease is not None:
                return admission.lease
            if index + 1 < len(plan.targets):
                logger.info("%s is at its %s limit: trying its fallback", target.key[0],
                            admission.limit)
                raise _TryFallback()
            wait = admission.retry_after
            if plan.deadline is not None and self.clock() + wait >= plan.deadline:
                raise errors.RateLimitError(
                    f"{target.key[0]!r} is at its {admission.limit} limit "
                    f"(not sent; room in {wait:.2f} s)",
                    provider=target.provider, model=target.model, retry_after=wait)
            if target.retry.wait(wait, cancelled):
                raise Cancelled()

    def _count_failure(self, target: Target, error: errors.LitestreamError,
                       failures: list[str]) -> None:
        failures.append(errors.error_summary(error))
        cooldown = None
        if counts_against_deployment(error) and self.health.failed(target.key):
            cooldown = self.health.duration
        if isinstance(error, errors.RateLimitError) and error.retry_after:
            cooldown = max(cooldown or 0.0, error.retry_after)
        if cooldown and self.state.shared:
            self.state.cool(target.key[0], cooldown)  # every process stops at once

    def _final_error(self, plan: Plan, last_error: Optional[errors.LitestreamError],
                     failures: list[str]) -> errors.LitestreamError:
        if last_error is None:
            first = plan.targets[0]
            last_error = errors.TotalTimeout(
                "the call's timeout passed before any attempt",
                provider=first.provider, model=first.model)
            failures.append(errors.error_summary(last_error))
        last_error.attempts = tuple(failures)
        last_error.channel = None
        return last_error

    def skippable(self, plan: Plan, index: int) -> bool:
        """Return True when target ``index`` cools down and a later target does not."""
        targets = plan.targets
        return self.health.cooling(targets[index].key) and any(
            not self.health.cooling(later.key) for later in targets[index + 1:]
        )

    def retry_delay(
        self, plan: Plan, index: int, retry: int, error: errors.LitestreamError
    ) -> Optional[float]:
        """Seconds to wait before retrying target ``index``, or None to move on.

        The target's policy decides (backoff, ``Retry-After``, retries left);
        the router moves on at once instead when a fallback is free while
        this target cools down, or when the wait would pass the deadline.
        """
        delay = plan.targets[index].retry.delay(retry, error)
        if delay is None or self.skippable(plan, index):
            return None
        if plan.deadline is not None and self.clock() + delay >= plan.deadline:
            return None
        return delay

    def response(self, plan: Plan) -> Response:
        """Run a non-streaming plan on the calling thread; return the first response."""
        def send(target: Target, config: dict[str, Any], number: int) -> Response:
            response = core.completion(target.provider, target.model, target.request, config,
                                       listeners=plan.listeners, _deployment=target.key[0],
                                       _attempt=number)
            assert isinstance(response, Response)
            return response

        _, response, lease = self.run(plan, send, threading.Event(), [])
        if lease is not None:
            lease.settle(response.usage.total_tokens if response.usage else None)
        return response

    def stream(self, name: str, plan: Plan) -> RoutedStream:
        """Start a streaming plan on a router thread; return its handle at once."""
        handle = RoutedStream(name, plan.buffer)
        handle.job.start(self._route, plan, handle.job)
        return handle

    def _route(self, plan: Plan, job: RouteJob) -> None:
        """Run one streaming call's router thread: find an attempt with content, pump it."""

        def open_and_peek(target: Target, config: dict[str, Any],
                          number: int) -> tuple[Stream, list[Chunk]]:
            stream = core.completion(target.provider, target.model, target.request, config,
                                     listeners=(*plan.listeners, job.log),
                                     _deployment=target.key[0], _attempt=number)
            assert isinstance(stream, Stream)
            job.track(stream)
            job.adopt(stream)
            try:
                return stream, _peek(stream, job)
            except BaseException:
                job.release(stream)
                raise

        try:
            target, (stream, held), lease = self.run(
                plan, open_and_peek, job.cancelled, job.failures)
        except Cancelled:
            return
        except errors.LitestreamError as error:
            job.fail(error)
            return
        except BaseException as error:  # a bug must still reach the caller
            logger.exception("the router thread failed")
            job.fail(errors.LitestreamError(f"router failure: {error!r}"))
            return
        job.commit(target.provider, target.model)
        if lease is not None:
            job.on_batch = lease.renew
            job.on_done = lambda: lease.settle(
                job.usage_tokens if job.usage_tokens is not None
                else consumed_tokens(target, job.delivered_text))
        job.pump(stream, held)

    def race(self, names: Sequence[str], plans: Sequence[Plan]) -> RoutedStream:
        """Open every plan's first target at once; return the first with content.

        The streams are attempts 1, 2, ... in the order of ``plans``; the
        losers are closed (their outcome is ``cancelled`` unless they had
        already ended) and stay in the handle's attempt log. A deployment at
        one of its limits is left out of the race (nothing is sent to it);
        each entry's reservation is settled with what it used.

        Raises:
            RateLimitError: every deployment is at a limit (nothing sent);
                ``retry_after`` says when the first has room.
            LitestreamError: every stream failed; ``attempts`` lists them.
        """
        handle = RoutedStream("|".join(names), plans[0].buffer)
        job = handle.job
        targets: dict[Stream, Target] = {}
        held: dict[Stream, list[Chunk]] = {}
        leases: dict[Stream, Lease] = {}
        failures: list[str] = []
        winner: Optional[Stream] = None
        refused: list[errors.RateLimitError] = []
        try:
            for number, plan in enumerate(plans, 1):
                target = plan.targets[0]
                lease: Optional[Lease] = None
                if target.limits.any or self.state.shared:
                    admission = self.state.admit(target.key[0], target.limits, target.tokens)
                    if admission.lease is None:
                        refused.append(errors.RateLimitError(
                            f"{target.key[0]!r} is at its {admission.limit} limit (not sent)",
                            provider=target.provider, model=target.model,
                            retry_after=admission.retry_after))
                        failures.append(errors.error_summary(refused[-1]))
                        continue
                    lease = admission.lease
                stream = core.completion(
                    target.provider, target.model, target.request, target.config.to_mapping(),
                    listeners=(*plan.listeners, job.log), _deployment=target.key[0],
                    _attempt=number)
                assert isinstance(stream, Stream)
                job.track(stream)
                targets[stream] = target
                held[stream] = []
                if lease is not None:
                    leases[stream] = lease
            if not targets:
                error = min(refused, key=lambda refusal: refusal.retry_after or 0.0)
                error.attempts = tuple(failures)
                raise error
            winner, last_error = self._first_with_content(plans, targets, held, failures)
        finally:
            for stream in targets:
                if stream is not winner:
                    stream.close()
                    if stream in leases:
                        text = "".join(chunk.content or "" for chunk in held[stream])
                        leases[stream].settle(consumed_tokens(targets[stream], text))
        if winner is None:
            assert last_error is not None
            last_error.attempts = tuple(failures)
            raise last_error
        target = targets[winner]
        self.health.succeeded(target.key)
        job.failures.extend(failures)
        job.commit(target.provider, target.model)
        won = leases.get(winner)
        if won is not None:
            job.on_batch = won.renew
            job.on_done = lambda: won.settle(
                job.usage_tokens if job.usage_tokens is not None
                else consumed_tokens(target, job.delivered_text))
        job.adopt(winner)
        job.start(job.pump, winner, held[winner])
        return handle

    def _first_with_content(
        self, plans: Sequence[Plan], targets: dict[Stream, Target],
        held: dict[Stream, list[Chunk]], failures: list[str],
    ) -> tuple[Optional[Stream], Optional[errors.LitestreamError]]:
        deadline = plans[0].deadline
        live = list(targets)
        last_error: Optional[errors.LitestreamError] = None
        while live:
            remaining = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                chunk, channel = alts(live, timeout=remaining)
            except errors.LitestreamError as error:
                channel, error.channel = error.channel, None
                live.remove(channel)
                last_error = error
                self._count_failure(targets[channel], error, failures)
                continue
            except TimeoutError:
                first = plans[0].targets[0]
                last_error = errors.TotalTimeout(
                    "no deployment produced content within the call's timeout",
                    provider=first.provider, model=first.model)
                failures.append(errors.error_summary(last_error))
                return None, last_error
            if chunk is not None:
                held[channel].append(chunk)
            if chunk is None or chunk.has_content:
                return channel, None
        return None, last_error


def _peek(stream: Stream, job: RouteJob) -> list[Chunk]:
    """Hold ``stream``'s chunks back until one carries content (or the stream ends)."""
    held: list[Chunk] = []
    while True:
        chunk = stream.get()
        if chunk is None:
            if job.cancelled.is_set():
                raise Cancelled()
            return held  # a complete answer without content
        held.append(chunk)
        if chunk.has_content:
            return held


def consumed_tokens(target: Target, delivered_text: Optional[str]) -> int:
    """Return the tokens an attempt used when its provider did not say: an estimate.

    An attempt that delivered nothing (refused, failed before content) used
    nothing; one that delivered text (then failed, or was abandoned) used its
    prompt and that text, estimated as :func:`litestream.listeners.estimate_usage`
    does.
    """
    if not delivered_text:
        return 0
    return estimate_usage(target.request, delivered_text).total_tokens
