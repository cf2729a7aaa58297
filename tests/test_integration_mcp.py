"""MCP SDK tracing against a real MCPServer (the SDK's FastMCP) spoken to over stdio."""

from __future__ import annotations

import sys
import tempfile
from typing import Any, AsyncIterator, Callable

import anyio
import pytest

pytest.importorskip("mcp")

from contextlib import asynccontextmanager

from mcp import ClientSession, StdioServerParameters, stdio_client
from opentelemetry.trace import SpanKind, StatusCode

from mcp_exec_telemetry.integrations.executor import CodeExecutor
from mcp_exec_telemetry.integrations.mcp import MCP_DURATION_BUCKETS_S, ToolBridge, instrument_mcp, is_instrumented, uninstrument_mcp
from mcp_exec_telemetry.integrations.sdkgen import SdkGenerator
from mcp_exec_telemetry.testing import capture
from tests.servers.otlp import OtlpReceiver

SERVER = ["-m", "mcp_exec_telemetry.integrations.demo_server"]


@asynccontextmanager
async def connected(env: dict[str, str] | None = None) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=sys.executable, args=SERVER, env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


def run(fn: Callable[[], Any]) -> Any:
    return anyio.run(fn)


@pytest.fixture(autouse=True)
def _uninstrument() -> Any:
    yield
    uninstrument_mcp()


def mcp_points(cap: Any, name: str) -> list[Any]:
    data = cap.telemetry.metrics_data()
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name for p in m.data.data_points]


def test_call_tool_is_a_client_span_with_the_semantic_convention_attributes() -> None:
    with capture() as cap:
        instrument_mcp(cap.telemetry)

        async def scenario() -> None:
            async with connected() as session:
                tools = await session.list_tools()
                assert [t.name for t in tools.tools] == ["list_customers", "get_orders", "get_weather", "flaky_lookup"]
                ok = await session.call_tool("get_weather", {"city": "Paris"})
                assert ok.structured_content == {"city": "Paris", "temperature_c": 21, "conditions": "clear"}
                failed = await session.call_tool("flaky_lookup", {"key": "zeta"})
                assert failed.is_error is True

        run(scenario)
        weather, lookup = cap.spans("tools/call get_weather")[0], cap.spans("tools/call flaky_lookup")[0]
        session_id = weather.attributes["mcp.session.id"]
        assert weather.kind == SpanKind.CLIENT
        assert dict(weather.attributes) == {
            "mcp.method.name": "tools/call",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "get_weather",
            "network.transport": "pipe",
            "mcp.session.id": session_id,
        }
        assert weather.status.status_code == StatusCode.UNSET
        assert lookup.attributes["error.type"] == "tool_error"
        assert lookup.attributes["mcp.session.id"] == session_id
        assert lookup.status.status_code == StatusCode.ERROR
        assert "gen_ai.tool.call.arguments" not in weather.attributes  # content capture is opt-in

        # list_tools reports as a discovery query, with its CLIENT span inside.
        (query,) = cap.spans("discovery.search")
        (listing,) = cap.spans("tools/list")
        assert query.attributes["mcp_exec.discovery.result_count"] == 4
        assert query.attributes["mcp_exec.discovery.detail_level"] == "full"
        assert listing.parent.span_id == query.context.span_id
        assert cap.summary()["discovery"]["total_queries"] == 1

        points = {(p.attributes["mcp.method.name"], p.attributes.get("gen_ai.tool.name"), p.attributes.get("error.type")): p for p in mcp_points(cap, "mcp.client.operation.duration")}
        assert set(points) == {("tools/list", None, None), ("tools/call", "get_weather", None), ("tools/call", "flaky_lookup", "tool_error")}
        for p in points.values():
            assert p.count == 1
            assert tuple(p.explicit_bounds) == MCP_DURATION_BUCKETS_S
            assert "mcp.session.id" not in p.attributes  # on spans only


def test_client_and_server_spans_of_one_tool_call_share_one_trace() -> None:
    with OtlpReceiver() as rx, capture() as cap:
        instrument_mcp(cap.telemetry)

        async def scenario() -> None:
            async with connected({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) as session:
                await session.call_tool("get_orders", {"customer_id": "C0001", "limit": 3})

        run(scenario)
        (client,) = cap.spans("tools/call get_orders")
        (server,) = rx.wait_for_spans(1, name="tools/call get_orders")
    assert server.kind == "server"
    assert server.resource["service.name"] == "mcp-demo-server"
    assert server.trace_id == f"{client.context.trace_id:032x}"
    assert server.parent_span_id == f"{client.context.span_id:016x}"
    assert server.attributes["gen_ai.tool.name"] == "get_orders"
    assert server.attributes["mcp.method.name"] == "tools/call"
    assert server.attributes["gen_ai.operation.name"] == "execute_tool"
    assert client.context.trace_id == cap.telemetry.session_span.get_span_context().trace_id


def test_tool_calls_from_executed_code_are_parented_under_the_execution_span() -> None:
    code = "import mcp_tools as t\nprint(t.get_weather(city='Oslo')['conditions'])\nprint(len(t.list_customers(limit=5)))\n"
    with OtlpReceiver() as rx, capture() as cap, tempfile.TemporaryDirectory() as sdk_dir:
        tel = cap.telemetry
        instrument_mcp(tel)

        async def scenario() -> Any:
            async with connected({"OTEL_EXPORTER_OTLP_ENDPOINT": rx.grpc_endpoint}) as session:
                tools = (await session.list_tools()).tools
                sdk = SdkGenerator(sdk_dir, tel).generate(tools)
                executor = CodeExecutor(tel, sdk_dir=sdk.directory, tool_handler=ToolBridge(session))
                return await executor.execute_async(code, "python3")

        result = run(scenario)
        assert (result.exit_code, result.stdout, result.tool_calls) == (0, "clear\n5\n", 2)
        (execution,) = cap.spans("execution.run")
        calls = cap.spans("tools/call get_weather") + cap.spans("tools/call list_customers")
        server_spans = rx.wait_for_spans(2, name=None, timeout=10)
    session_ctx = tel.session_span.get_span_context()
    assert execution.parent.span_id == session_ctx.span_id
    assert [c.parent.span_id for c in calls] == [execution.context.span_id] * 2
    assert {c.context.trace_id for c in calls} == {session_ctx.trace_id}
    by_name = {s.name: s for s in server_spans if s.kind == "server" and s.name.startswith("tools/call")}
    assert by_name["tools/call get_weather"].parent_span_id == f"{calls[0].context.span_id:016x}"
    assert by_name["tools/call list_customers"].parent_span_id == f"{calls[1].context.span_id:016x}"
    assert {s.trace_id for s in by_name.values()} == {f"{session_ctx.trace_id:032x}"}


def test_captured_arguments_and_results_are_scrubbed_of_pii() -> None:
    with capture() as cap:
        instrument_mcp(cap.telemetry, capture_content=True)

        async def scenario() -> None:
            async with connected() as session:
                await session.call_tool("list_customers", {"limit": 1})
                await session.call_tool("get_weather", {"city": "mail ada@example.com"})

        run(scenario)
        (customers,) = cap.spans("tools/call list_customers")
        (weather,) = cap.spans("tools/call get_weather")
    assert customers.attributes["gen_ai.tool.call.arguments"] == '{"limit": 1}'
    result = customers.attributes["gen_ai.tool.call.result"]
    assert "C0000" in result and "Ada Lovelace" in result
    assert "ada.lovelace0@example.com" not in result and "+1-555-100-1000" not in result
    assert "ada@example.com" not in weather.attributes["gen_ai.tool.call.arguments"]
    assert "[REDACTED:email]" in weather.attributes["gen_ai.tool.call.arguments"]


def test_uninstrument_restores_the_sdk() -> None:
    original = ClientSession.call_tool
    with capture() as cap:
        instrument_mcp(cap.telemetry)
        assert is_instrumented() and ClientSession.call_tool is not original
        uninstrument_mcp()
        assert not is_instrumented() and ClientSession.call_tool is original

        async def scenario() -> None:
            async with connected() as session:
                await session.call_tool("get_weather", {"city": "Rome"})

        run(scenario)
        assert cap.spans("tools/call get_weather") == []
