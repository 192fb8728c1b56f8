"""OpenTelemetry tracing through the official instrumentation packages, on when
OTEL_EXPORTER_OTLP_ENDPOINT is set (the `otel` extra; imported only then)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from ..settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

PACKAGE = __name__.split(".")[0]
REQUIRED_MODULES = (
    "opentelemetry.sdk",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.instrumentation.fastapi",
    "opentelemetry.instrumentation.psycopg",
    "opentelemetry.instrumentation.httpx",
)
MISSING = (
    "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry packages are not installed: "
    "pip install '.[otel]' (or uv sync --extra otel), or unset OTEL_EXPORTER_OTLP_ENDPOINT"
)
EXCLUDED_URLS = "health,metrics"


class TracingUnavailable(RuntimeError):
    """Tracing is configured but its packages are missing."""


def missing_packages() -> str | None:
    for name in REQUIRED_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return MISSING
        except ModuleNotFoundError:  # a parent package is missing
            return MISSING
    return None


@dataclass
class Tracing:
    provider: TracerProvider
    instrumentors: list[Any]

    def shutdown(self) -> None:
        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        self.provider.shutdown()


def setup_tracing(
    app: FastAPI, settings: Settings, exporter: SpanExporter | None = None
) -> Tracing:
    """Trace requests, SQL statements and model calls, to OTEL_EXPORTER_OTLP_ENDPOINT or to
    `exporter` (tests pass an in-memory one)."""
    if (problem := missing_packages()) is not None:
        raise TracingUnavailable(problem)
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: PACKAGE}))
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(otlp_exporter(settings, OTLPSpanExporter)))
        trace.set_tracer_provider(provider)  # for spans of your own: trace.get_tracer(__name__)
    excluded = None if "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS" in os.environ else EXCLUDED_URLS
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=excluded,
        exclude_spans=["receive", "send"],  # not one span per streamed chunk
    )
    instrumentors: list[Any] = [HTTPXClientInstrumentor(), PsycopgInstrumentor()]
    if importlib.util.find_spec("httpx2") is not None:  # the openai SDK's HTTP client
        from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor

        instrumentors.append(HTTPX2ClientInstrumentor())
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider, skip_dep_check=True)
    return Tracing(provider, instrumentors)


def otlp_exporter(settings: Settings, exporter_class: Any) -> Any:
    """Configured by the OTEL_* environment when set, else by OTEL_EXPORTER_OTLP_ENDPOINT."""
    if any(
        name in os.environ
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return exporter_class()
    base = (settings.otel_exporter_otlp_endpoint or "").rstrip("/")
    return exporter_class(endpoint=f"{base}/v1/traces")
