"""OpenTelemetry: a client span and the GenAI metrics for every call.

Install the ``otel`` extra (``pip install "litestream[otel]"``, which brings
``opentelemetry-api``; configure an SDK as usual), then::

    import litestream.otel
    litestream.otel.instrument()          # the global tracer and meter providers

Following the OpenTelemetry GenAI semantic conventions, each call gets one
``CLIENT`` span named ``chat {model}``, started on the caller's thread (so
it is a child of the caller's current span, although a stream is read by
another thread) and ended when the call ends: a stream's last chunk, its
error, ``close()``, or its garbage collection. It carries the ``gen_ai.*``
request, response and usage attributes, and ``error.type`` on failure. Four
histograms are recorded: ``gen_ai.client.operation.duration``,
``gen_ai.client.token.usage``, ``gen_ai.client.operation.time_to_first_chunk``
and ``gen_ai.client.operation.time_per_output_chunk``.

Message content is recorded (``gen_ai.input.messages``,
``gen_ai.output.messages``) only when asked: ``instrument(capture_content=True)``
or the environment variable
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.

The instrumentation is a lifecycle listener (:mod:`litestream.listeners`);
:func:`uninstrument` removes it. opentelemetry is imported only here, and
only when :func:`instrument` is called.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any, Mapping, Optional

from litestream import listeners
from litestream.listeners import CallEvent

__all__ = ["instrument", "instrumented", "uninstrument"]

OPERATION = "chat"

#: litestream provider -> ``gen_ai.provider.name`` (the conventions' values where they have one).
PROVIDER_NAMES = {
    "openai": "openai",
    "openai_responses": "openai",
    "anthropic": "anthropic",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
}

_CAPTURE_VARIABLE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# The buckets the conventions advise for each histogram.
_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24,
                     20.48, 40.96, 81.92]
_CHUNK_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5]
_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304,
                  16777216, 67108864]

_lock = threading.Lock()
_active: Optional[_Instrumentation] = None


def instrument(tracer_provider: Any = None, meter_provider: Any = None,
               capture_content: Optional[bool] = None) -> None:
    """Emit a span and the GenAI metrics for every call from now on (again: replaces the last).

    Args:
        tracer_provider: the ``TracerProvider`` to use; the global one when None.
        meter_provider: the ``MeterProvider`` to use; the global one when None.
        capture_content: record message content; when None, the
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` variable decides.

    Raises:
        ImportError: opentelemetry-api is not installed (the ``otel`` extra).
    """
    global _active
    if capture_content is None:
        capture_content = os.environ.get(_CAPTURE_VARIABLE, "").strip().lower() == "true"
    instrumentation = _Instrumentation(tracer_provider, meter_provider, capture_content)
    with _lock:
        if _active is not None:
            listeners.remove_listener(_active)
        _active = instrumentation
        listeners.add_listener(instrumentation)


def uninstrument() -> None:
    """Stop instrumenting new calls (calls under way still end their spans)."""
    global _active
    with _lock:
        if _active is not None:
            listeners.remove_listener(_active)
        _active = None


def instrumented() -> bool:
    """Return True while :func:`instrument` is in effect."""
    return _active is not None


class _Instrumentation:
    """The listener that turns call events into spans and metric points."""

    def __init__(self, tracer_provider: Any, meter_provider: Any, capture_content: bool) -> None:
        from opentelemetry import metrics, trace

        from litestream import __version__

        self._trace = trace
        self.tracer = trace.get_tracer("litestream", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("litestream", __version__, meter_provider=meter_provider)
        self.capture_content = capture_content
        self.duration = _histogram(meter, "gen_ai.client.operation.duration", "s",
                                   "GenAI operation duration.", _DURATION_BUCKETS)
        self.token_usage = _histogram(meter, "gen_ai.client.token.usage", "{token}",
                                      "Number of input and output tokens used.", _TOKEN_BUCKETS)
        self.time_to_first_chunk = _histogram(
            meter, "gen_ai.client.operation.time_to_first_chunk", "s",
            "Time to receive the first chunk, measured from when the client issues the "
            "generation request to when the first chunk is received in the response stream.",
            _DURATION_BUCKETS)
        self.time_per_output_chunk = _histogram(
            meter, "gen_ai.client.operation.time_per_output_chunk", "s",
            "Time per output chunk, recorded for each chunk received after the first one.",
            _CHUNK_BUCKETS)
        self._spans: dict[int, Any] = {}
        self._spans_lock = threading.Lock()

    def on_request(self, event: CallEvent) -> None:
        """Start the call's span, a child of the caller's current span."""
        attributes = _common_attributes(event)
        attributes.update(_request_attributes(event.request))
        if self.capture_content:
            attributes["gen_ai.input.messages"] = json.dumps(
                _input_messages(event.request), ensure_ascii=False)
        span = self.tracer.start_span(f"{OPERATION} {event.model}",
                                      kind=self._trace.SpanKind.CLIENT, attributes=attributes)
        with self._spans_lock:
            self._spans[event.call_id] = span

    def on_end(self, event: CallEvent) -> None:
        """Finish the call's span and record its metric points."""
        with self._spans_lock:
            span = self._spans.pop(event.call_id, None)
        metric_attributes = _common_attributes(event)
        if event.response_model:
            metric_attributes["gen_ai.response.model"] = event.response_model
        if event.error is not None:
            metric_attributes["error.type"] = type(event.error).__qualname__
        if span is not None:
            self._finish_span(span, event)
        if event.duration is not None:
            self.duration.record(event.duration, metric_attributes)
        if event.usage is not None:
            for token_type, count in (("input", event.usage.prompt_tokens),
                                      ("output", event.usage.completion_tokens)):
                self.token_usage.record(count, {**metric_attributes,
                                                "gen_ai.token.type": token_type})
        if event.time_to_first_chunk is not None:
            self.time_to_first_chunk.record(event.time_to_first_chunk, metric_attributes)
        for interval in event.chunk_intervals:
            self.time_per_output_chunk.record(interval, metric_attributes)

    def _finish_span(self, span: Any, event: CallEvent) -> None:
        attributes: dict[str, Any] = {}
        if event.response_id:
            attributes["gen_ai.response.id"] = event.response_id
        if event.response_model:
            attributes["gen_ai.response.model"] = event.response_model
        if event.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = [event.finish_reason]
        if event.time_to_first_chunk is not None and event.stream:
            attributes["gen_ai.response.time_to_first_chunk"] = event.time_to_first_chunk
        usage = event.usage
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
            if usage.cached_tokens is not None:
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
            if usage.reasoning_tokens is not None:
                attributes["gen_ai.usage.reasoning.output_tokens"] = usage.reasoning_tokens
            if usage.estimated:
                attributes["litestream.usage.estimated"] = True
        if event.cost is not None:
            attributes["litestream.cost.usd"] = float(event.cost)
        attributes["litestream.outcome"] = event.outcome or "complete"
        if self.capture_content and event.content is not None:
            attributes["gen_ai.output.messages"] = json.dumps([{
                "role": "assistant", "parts": [{"type": "text", "content": event.content}],
                "finish_reason": event.finish_reason or "",
            }], ensure_ascii=False)
        span.set_attributes(attributes)
        if event.error is not None:
            span.set_attribute("error.type", type(event.error).__qualname__)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, str(event.error)))
        span.end()


def _histogram(meter: Any, name: str, unit: str, description: str, buckets: list) -> Any:
    try:
        return meter.create_histogram(name, unit=unit, description=description,
                                      explicit_bucket_boundaries_advisory=buckets)
    except TypeError:  # opentelemetry-api before 1.23 takes no advice
        return meter.create_histogram(name, unit=unit, description=description)


def _common_attributes(event: CallEvent) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": PROVIDER_NAMES.get(event.provider, event.provider),
        "gen_ai.request.model": event.model,
    }
    if event.server_address:
        attributes["server.address"] = event.server_address
    if event.server_port is not None:
        attributes["server.port"] = event.server_port
    return attributes


def _request_attributes(request: Mapping[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, name in (("temperature", "gen_ai.request.temperature"),
                      ("top_p", "gen_ai.request.top_p"),
                      ("top_k", "gen_ai.request.top_k"),
                      ("frequency_penalty", "gen_ai.request.frequency_penalty"),
                      ("presence_penalty", "gen_ai.request.presence_penalty"),
                      ("seed", "gen_ai.request.seed")):
        value = request.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attributes[name] = value
    max_tokens = request.get("max_tokens", request.get("max_completion_tokens"))
    if isinstance(max_tokens, int):
        attributes["gen_ai.request.max_tokens"] = max_tokens
    stop = request.get("stop")
    if isinstance(stop, str):
        attributes["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, (list, tuple)):
        attributes["gen_ai.request.stop_sequences"] = [str(item) for item in stop]
    choices = request.get("n")
    if isinstance(choices, int) and choices != 1:
        attributes["gen_ai.request.choice.count"] = choices
    attributes["gen_ai.request.stream"] = bool(request.get("stream"))
    return attributes


def _input_messages(request: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = []
    for message in request.get("messages") or ():
        if not isinstance(message, Mapping):
            continue
        content = message.get("content")
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            parts.append({"type": "text", "content": content})
        elif isinstance(content, (list, tuple)):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    parts.append({"type": "text", "content": part["text"]})
        messages.append({"role": message.get("role", "user"), "parts": parts})
    return messages
