"""OpenTelemetry: one GenAI client span per call and the GenAI metrics (in-memory exporters)."""

from __future__ import annotations

import json

import pytest

import litestream
from litestream import errors
from litestream.testing import FakeLLMServer

pytest.importorskip("opentelemetry.sdk", reason="opentelemetry-sdk is a dev dependency")
semconv = pytest.importorskip("opentelemetry.semconv._incubating.attributes.gen_ai_attributes",
                              reason="opentelemetry-semantic-conventions comes with the SDK")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics  # noqa: E402
from opentelemetry.semconv.attributes import error_attributes, server_attributes  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

import litestream.otel  # noqa: E402

MESSAGES = [{"role": "user", "content": "Secret question"}]


@pytest.fixture
def otel():
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    metrics = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metrics])
    litestream.otel.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield spans, metrics, tracer_provider
    litestream.otel.uninstrument()


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake


def _stream(server, **options):
    return litestream.completion("openai", "gpt-4o-mini", messages=MESSAGES, stream=True,
                                 api_key="test", api_base=server.api_base("openai"),
                                 **options)


def _client_spans(spans):
    return [span for span in spans.get_finished_spans() if span.kind == SpanKind.CLIENT]


def _metrics(reader):
    found = {}
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found[metric.name] = metric
    return found


def test_span_parented_across_the_reader_thread_with_convention_attributes(otel, server):
    spans, _, tracer_provider = otel
    server.script(text="a b c", usage={"prompt_tokens": 7, "completion_tokens": 3})
    with tracer_provider.get_tracer("test").start_as_current_span("caller") as caller:
        stream = _stream(server, temperature=0.5, max_tokens=50)
    litestream.collect_stream(stream)
    stream.join()
    (span,) = _client_spans(spans)
    assert span.name == "chat gpt-4o-mini"
    assert span.kind == SpanKind.CLIENT
    assert span.parent.span_id == caller.get_span_context().span_id
    attributes = dict(span.attributes)
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == semconv.GenAiOperationNameValues.CHAT.value
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o-mini"
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "gpt-4o-mini"
    assert attributes[semconv.GEN_AI_RESPONSE_ID]
    assert attributes[semconv.GEN_AI_REQUEST_TEMPERATURE] == 0.5
    assert attributes[semconv.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] == 3
    assert attributes[server_attributes.SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[server_attributes.SERVER_PORT] == server.port
    assert error_attributes.ERROR_TYPE not in attributes
    assert semconv.GEN_AI_INPUT_MESSAGES not in attributes  # content only on opt-in
    assert semconv.GEN_AI_OUTPUT_MESSAGES not in attributes


def test_metric_names_and_units_are_the_conventions(otel, server):
    _, reader, _ = otel
    litestream.collect_stream(_stream(server))
    found = _metrics(reader)
    meter = type("Meter", (), {"create_histogram": lambda self, **kw: kw})()
    for create in (gen_ai_metrics.create_gen_ai_client_operation_duration,
                   gen_ai_metrics.create_gen_ai_client_token_usage,
                   gen_ai_metrics.create_gen_ai_client_operation_time_to_first_chunk,
                   gen_ai_metrics.create_gen_ai_client_operation_time_per_output_chunk):
        convention = create(meter)
        assert convention["name"] in found, convention["name"]
        assert found[convention["name"]].unit == convention["unit"]
    token_types = {point.attributes[semconv.GEN_AI_TOKEN_TYPE]
                   for point in found[gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE].data.data_points}
    assert token_types == {semconv.GenAiTokenTypeValues.INPUT.value,
                           semconv.GenAiTokenTypeValues.OUTPUT.value}


def test_error_sets_error_type_on_span_and_duration(otel, server):
    spans, reader, _ = otel
    server.script(error_status=400)
    with pytest.raises(errors.InvalidRequestError):
        litestream.collect_stream(_stream(server, max_retries=0))
    (span,) = _client_spans(spans)
    assert span.attributes[error_attributes.ERROR_TYPE] == "InvalidRequestError"
    (point,) = _metrics(reader)[gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION].data.data_points
    assert point.attributes[error_attributes.ERROR_TYPE] == "InvalidRequestError"


def test_one_span_per_call_even_when_abandoned(otel, server):
    spans, _, _ = otel
    for _ in range(3):
        server.script(text="a b c d", stall_after=2)
        stream = _stream(server)
        next(chunk for chunk in stream if chunk.content)
        finished = stream._reader.finished
        del stream
        assert finished.wait(5)
    client = _client_spans(spans)
    assert len(client) == 3
    assert all(span.attributes["litestream.outcome"] == "cancelled" for span in client)
    assert all(span.attributes["litestream.usage.estimated"] for span in client)


def test_content_recorded_only_on_opt_in(server):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    litestream.otel.instrument(tracer_provider=tracer_provider,
                               meter_provider=MeterProvider(), capture_content=True)
    try:
        server.script(text="the answer")
        litestream.collect_stream(_stream(server))
    finally:
        litestream.otel.uninstrument()
    (span,) = _client_spans(spans)
    sent = json.loads(span.attributes[semconv.GEN_AI_INPUT_MESSAGES])
    assert sent == [{"role": "user", "parts": [{"type": "text", "content": "Secret question"}]}]
    answered = json.loads(span.attributes[semconv.GEN_AI_OUTPUT_MESSAGES])
    assert answered[0]["parts"][0]["content"] == "the answer"


def test_uninstrument_stops_spans(server):
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    litestream.otel.instrument(tracer_provider=tracer_provider, meter_provider=MeterProvider())
    litestream.otel.uninstrument()
    assert not litestream.otel.instrumented()
    litestream.collect_stream(_stream(server))
    assert spans.get_finished_spans() == ()
