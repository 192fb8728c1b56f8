"""OpenTelemetry tracing (OTEL_EXPORTER_OTLP_ENDPOINT): spans for the request, the store's
statements and the model call; a clear line when the `otel` packages are missing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from {{ cookiecutter.project_slug }}.dev.client import ChatKitClient
from {{ cookiecutter.project_slug }}.main import create_app
from {{ cookiecutter.project_slug }}.ops.tracing import MISSING, Tracing, setup_tracing
from tests.support.app import AppServer, app_settings
from tests.support.fake_openai import FakeOpenAI

pytest.importorskip("opentelemetry.sdk", reason="the `otel` extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

PACKAGE = "{{ cookiecutter.project_slug }}"


@pytest.fixture
def traced(database_url: str, fake_openai: FakeOpenAI) -> Iterator[tuple[AppServer, Any]]:
    """The app with tracing to an in-memory exporter (undone afterwards)."""
    exporter = InMemorySpanExporter()
    server = AppServer(app_settings(database_url, fake_openai.base_url, generate_titles=False))
    tracing = setup_tracing(server.app, server.settings, exporter=exporter)
    server.start()
    try:
        yield server, exporter
    finally:
        server.stop()
        tracing.shutdown()


def attribute_values(span: ReadableSpan) -> list[str]:
    return [str(value) for value in (span.attributes or {}).values()]


async def test_a_turn_has_request_store_and_model_spans(
    traced: tuple[AppServer, InMemorySpanExporter],
) -> None:
    """One trace holds the /chatkit request span, the store's SQL statements and the model's
    HTTP call to OPENAI_BASE_URL."""
    server, exporter = traced
    async with ChatKitClient(server.url, server.token("traced-user")) as client:
        events = await client.send("hello")
    assert not [e for e in events if e["type"] == "error"]
    spans = exporter.get_finished_spans()

    requests = [
        s
        for s in spans
        if s.kind == SpanKind.SERVER and (s.attributes or {}).get("http.route") == "/chatkit"
    ]
    assert len(requests) == 1, [s.name for s in spans]
    trace_id = requests[0].context.trace_id

    statements = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    assert statements, [s.name for s in spans]
    assert all(s.kind == SpanKind.CLIENT for s in statements)
    assert any(s.context.trace_id == trace_id for s in statements)

    model_calls = [
        s
        for s in spans
        if s.kind == SpanKind.CLIENT
        and any(f"{server.settings.openai_base_url}/responses" in v for v in attribute_values(s))
    ]
    assert len(model_calls) == 1, [(s.name, s.attributes) for s in spans]
    assert model_calls[0].context.trace_id == trace_id
    assert not [s for s in spans if s.name.endswith(("http send", "http receive"))]


async def test_health_checks_are_not_traced(
    traced: tuple[AppServer, InMemorySpanExporter],
) -> None:
    import httpx

    server, exporter = traced
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{server.url}/health")).status_code == 200
    assert not [s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER]


def test_create_app_traces_when_the_endpoint_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT set: create_app switches tracing on, with an OTLP/HTTP
    exporter to that endpoint, as the global tracer provider (unset: off)."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    plain = create_app(app_settings("embedded", "http://127.0.0.1:9/v1"))
    assert getattr(plain.state, "tracing", None) is None
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    made: list[OTLPSpanExporter] = []
    monkeypatch.setattr(OTLPSpanExporter, "__init__", recording_init(made))
    set_globally: list[object] = []  # not for real: other tests' apps would trace too
    monkeypatch.setattr(trace, "set_tracer_provider", set_globally.append)
    settings = app_settings(
        "embedded", "http://127.0.0.1:9/v1", otel_exporter_otlp_endpoint="http://collector:4318/"
    )
    app = create_app(settings)
    try:
        assert isinstance(app.state.tracing, Tracing)
        assert set_globally == [app.state.tracing.provider]
        assert [exporter.endpoint for exporter in made] == ["http://collector:4318/v1/traces"]
    finally:
        app.state.tracing.shutdown()


def recording_init(made: list[Any]) -> Any:
    """An OTLPSpanExporter.__init__ that records the exporter and its endpoint."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    original = OTLPSpanExporter.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.endpoint = kwargs.get("endpoint")
        made.append(self)

    return init


BLOCK_OTEL = """
import sys

EXTRA = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation")

class Blocker:  # as if the `otel` extra were not installed (opentelemetry-api may be)
    def find_spec(self, name, path=None, target=None):
        if name.startswith(EXTRA):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Blocker())
"""


def run_without_otel(code: str) -> subprocess.CompletedProcess[str]:
    from tests.support.app import TEST_AUTH_SECRET

    env = {
        "PATH": "/usr/bin:/bin",
        "AUTH_SECRET": TEST_AUTH_SECRET,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    }
    return subprocess.run(
        [sys.executable, "-c", BLOCK_OTEL + code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_missing_otel_packages_are_one_clear_line() -> None:
    """Without the `otel` packages, `serve` says what to install in one line (exit 2), and
    create_app raises with the same message."""
    serve = run_without_otel(
        f"from {PACKAGE}.cli import main\nsys.exit(main(['serve', '--port', '0']))"
    )
    assert serve.returncode == 2, serve.stderr
    assert serve.stderr.strip() == f"error: {MISSING}"
    assert "pip install '.[otel]'" in MISSING

    app = run_without_otel(
        f"from {PACKAGE}.main import create_app\n"
        f"from {PACKAGE}.ops.tracing import TracingUnavailable\n"
        "try:\n    create_app()\nexcept TracingUnavailable as exc:\n    print(exc)\n"
    )
    assert app.stdout.strip() == MISSING, app.stderr
