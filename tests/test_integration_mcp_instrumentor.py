"""``McpInstrumentor``: OpenTelemetry's instrumentor shape, found by ``opentelemetry-instrument``
through the ``opentelemetry_instrumentor`` entry point, tracing into the providers it is given."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import ClientSession
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mcp_exec_telemetry.integrations.mcp import MCP_DURATION_BUCKETS_S, is_instrumented, uninstrument_mcp
from mcp_exec_telemetry.integrations.mcp_instrumentor import McpInstrumentor
from tests.mcp_support import DEMO, HttpServer, http_session, stdio_session


@pytest.fixture
def providers() -> Any:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = McpInstrumentor()
    yield instrumentor, tracer_provider, meter_provider, exporter, reader
    instrumentor.uninstrument()
    uninstrument_mcp()


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name for p in m.data.data_points]


def test_the_entry_point_opentelemetry_instrument_loads_is_mcp_instrumentor() -> None:
    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "mcp"]
    assert ep.load() is McpInstrumentor
    assert list(McpInstrumentor().instrumentation_dependencies()) == ["mcp >= 1.20, < 3"]


def test_instrument_traces_into_the_given_providers_and_uninstrument_restores(providers: Any) -> None:
    instrumentor, tracer_provider, meter_provider, exporter, reader = providers
    original = ClientSession.send_request
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    assert is_instrumented() and ClientSession.send_request is not original

    async def scenario() -> None:
        async with stdio_session(DEMO) as session:
            await session.list_tools()
            await session.call_tool("get_weather", {"city": "Paris"})

    anyio.run(scenario)
    spans = exporter.get_finished_spans()
    assert [(s.name, s.kind) for s in spans] == [
        ("initialize", SpanKind.CLIENT), ("notifications/initialized", SpanKind.CLIENT), ("tools/list", SpanKind.CLIENT), ("tools/call get_weather", SpanKind.CLIENT)]
    assert spans[-1].instrumentation_scope.name == "mcp_exec_telemetry.integrations.mcp_instrumentor"
    assert spans[-1].attributes["gen_ai.tool.name"] == "get_weather"
    records = metric_points(reader, "mcp.client.operation.duration")
    assert sorted(p.attributes["mcp.method.name"] for p in records) == ["initialize", "notifications/initialized", "tools/call", "tools/list"]
    assert {tuple(p.explicit_bounds) for p in records} == {MCP_DURATION_BUCKETS_S}
    assert len(metric_points(reader, "mcp.client.session.duration")) == 1

    instrumentor.uninstrument()
    assert not is_instrumented() and ClientSession.send_request is original
    exporter.clear()
    anyio.run(scenario)
    assert exporter.get_finished_spans() == ()


def test_without_a_session_of_ours_no_address_is_redacted(providers: Any) -> None:
    instrumentor, tracer_provider, meter_provider, exporter, _ = providers
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    with HttpServer([*DEMO, "--http"], port_arg=True) as srv:

        async def scenario() -> None:
            async with http_session(srv.url) as (session, _):
                await session.send_ping()

        anyio.run(scenario)
    ping = [s for s in exporter.get_finished_spans() if s.name == "ping"][0]
    assert (ping.attributes["server.address"], ping.attributes["server.port"], ping.attributes["network.transport"]) == ("127.0.0.1", srv.port, "tcp")
    assert ping.attributes["mcp.session.id"]
