"""MCP SDK tracing against our demo server (MCPServer on mcp 2.x, FastMCP on mcp 1.x) over stdio
and streamable HTTP: every request's client and server span, attributes, errors, metrics, discovery.

The same file runs in both environments .ci/run sets up (mcp 2.x and mcp 1.x).
"""

from __future__ import annotations

import re
import tempfile
import warnings
from typing import Any, Callable

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import ClientSession
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from mcp_exec_telemetry.integrations.executor import CodeExecutor
from mcp_exec_telemetry.integrations.mcp import MCP_DURATION_BUCKETS_S, ToolBridge, instrument_mcp, is_instrumented, uninstrument_mcp
from mcp_exec_telemetry.integrations.sdkgen import SdkGenerator
from mcp_exec_telemetry.testing import capture
from tests.mcp_support import DEMO, MCP_MAJOR, HttpServer, by_request_id, client_spans, http_session, points, server_env, stdio_session
from tests.servers.otlp import OtlpReceiver



def run(fn: Callable[[], Any]) -> Any:
    return anyio.run(fn)


@pytest.fixture(autouse=True)
def _uninstrument() -> Any:
    yield
    uninstrument_mcp()


async def every_method(session: ClientSession) -> None:
    """One request of each kind the demo server serves, two tool outcomes and two JSON-RPC errors."""
    await session.send_ping()
    await session.list_tools()
    await session.call_tool("get_weather", {"city": "Paris"})
    assert is_error(await session.call_tool("flaky_lookup", {"key": "zeta"}))
    await session.list_prompts()
    await session.get_prompt("summarize_customer", {"customer_id": "C0001"})
    await session.list_resources()
    await session.read_resource("demo://readme")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="Unknown resource"):
        await session.read_resource("demo://missing")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="Method not found"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in the 2026-07-28 revision, still sent
        await session.set_logging_level("info")


EXPECTED = [  # (span name, mcp.method.name, error.type)
    ("initialize", "initialize", None),
    ("ping", "ping", None),
    ("tools/list", "tools/list", None),
    ("tools/call get_weather", "tools/call", None),
    ("tools/call flaky_lookup", "tools/call", "tool_error"),
    ("prompts/list", "prompts/list", None),
    ("prompts/get summarize_customer", "prompts/get", None),
    ("resources/list", "resources/list", None),
    ("resources/read", "resources/read", None),
    ("resources/read", "resources/read", "-32602" if MCP_MAJOR >= 2 else "0"),
    ("logging/setLevel", "logging/setLevel", "-32601"),
]


def is_error(result: Any) -> bool:
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


def test_every_request_the_client_sends_is_one_client_span_and_one_duration_record() -> None:
    with capture() as cap:
        instrument_mcp(cap.telemetry)

        async def scenario() -> None:
            async with stdio_session(DEMO) as session:
                await every_method(session)

        run(scenario)
        requests = [s for s in client_spans(cap) if "jsonrpc.request.id" in s.attributes]
        notes = [s for s in client_spans(cap) if "jsonrpc.request.id" not in s.attributes]
        got = [(s.name, s.attributes["mcp.method.name"], s.attributes.get("error.type")) for s in requests]
        assert got == EXPECTED
        protocol = requests[0].attributes["mcp.protocol.version"]  # negotiated: the newest both SDKs speak
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", protocol)
        ids = [int(s.attributes["jsonrpc.request.id"]) for s in requests]
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # the ids on the wire, in order
        for span in requests:
            assert span.kind == SpanKind.CLIENT
            assert span.attributes["network.transport"] == "pipe"
            assert span.attributes["mcp.protocol.version"] == protocol
            assert "mcp.session.id" not in span.attributes  # stdio has no MCP session id
            assert (span.status.status_code == StatusCode.ERROR) == ("error.type" in span.attributes)
        # notifications/initialized is a notification: a span, no request id
        assert [s.name for s in notes] == ["notifications/initialized"]
        weather = cap.spans("tools/call get_weather")[0]
        assert weather.attributes["gen_ai.tool.name"] == "get_weather"
        assert weather.attributes["gen_ai.operation.name"] == "execute_tool"
        assert cap.spans("prompts/get summarize_customer")[0].attributes["gen_ai.prompt.name"] == "summarize_customer"
        read_ok, read_missing = cap.spans("resources/read")
        assert read_ok.attributes["mcp.resource.uri"] == "demo://readme"
        assert read_missing.attributes["mcp.resource.uri"] == "demo://missing"
        # A JSON-RPC error: the code is error.type and rpc.response.status_code, the message is the status.
        assert read_missing.attributes["rpc.response.status_code"] == read_missing.attributes["error.type"]
        assert read_missing.status.description == "Unknown resource: demo://missing"
        set_level = cap.spans("logging/setLevel")[0]
        assert (set_level.attributes["rpc.response.status_code"], set_level.status.description) == ("-32601", "Method not found")
        assert "gen_ai.tool.call.arguments" not in weather.attributes  # content capture is opt-in

        records = points(cap, "mcp.client.operation.duration")
        counted: dict[tuple[Any, ...], int] = {}
        for name, method, error in got + [("notifications/initialized", "notifications/initialized", None)]:
            key = (method, error)
            counted[key] = counted.get(key, 0) + 1
        assert {(p.attributes["mcp.method.name"], p.attributes.get("error.type")): p.count for p in records if "gen_ai.tool.name" not in p.attributes} == {
            k: v for k, v in counted.items() if k[0] != "tools/call"
        }
        tool_points = {(p.attributes["gen_ai.tool.name"], p.attributes.get("error.type")): p.count for p in records if "gen_ai.tool.name" in p.attributes}
        assert tool_points == {("get_weather", None): 1, ("flaky_lookup", "tool_error"): 1}
        for p in records:
            assert tuple(p.explicit_bounds) == MCP_DURATION_BUCKETS_S
            assert "mcp.session.id" not in p.attributes and "mcp.resource.uri" not in p.attributes  # unbounded: spans only
            assert p.attributes["network.transport"] == "pipe"
        (session_point,) = points(cap, "mcp.client.session.duration")
        assert session_point.count == 1
        assert dict(session_point.attributes) == {"network.transport": "pipe", "mcp.protocol.version": protocol}
        assert tuple(session_point.explicit_bounds) == MCP_DURATION_BUCKETS_S


def test_every_server_span_is_the_child_of_its_client_span_and_carries_the_same_attributes() -> None:
    with OtlpReceiver() as rx, capture() as cap:
        instrument_mcp(cap.telemetry)

        async def scenario() -> None:
            env = server_env(OTEL_EXPORTER_OTLP_ENDPOINT=rx.grpc_endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
            async with stdio_session(DEMO, env=env) as session:
                await every_method(session)

        run(scenario)
        clients = by_request_id(client_spans(cap))
        servers_all = rx.wait_for_spans(len(clients) + 1, name=None, timeout=20)
        servers = by_request_id([s for s in servers_all if s.kind == "server"])
        metric_names = set(rx.metric_names())
    assert set(servers) == set(clients)  # exactly one SERVER span per request, every method
    for rid, client in clients.items():
        server = servers[rid]
        assert server.parent_span_id == f"{client.context.span_id:016x}", client.name
        assert server.trace_id == f"{client.context.trace_id:032x}"
        assert server.name == client.name
        for key in ("mcp.method.name", "gen_ai.tool.name", "gen_ai.prompt.name", "mcp.resource.uri", "network.transport", "mcp.protocol.version", "gen_ai.operation.name"):
            assert server.attributes.get(key) == client.attributes.get(key), (client.name, key)
        assert (server.status_code == "error") == ("error.type" in server.attributes)
    missing = next(s for s in servers.values() if s.attributes.get("mcp.resource.uri") == "demo://missing")
    assert missing.attributes["rpc.response.status_code"] == missing.attributes["error.type"]
    assert missing.status_description == "Unknown resource: demo://missing"
    assert next(s for s in servers.values() if s.name == "tools/call flaky_lookup").attributes["error.type"] == "tool_error"
    assert {"mcp.server.operation.duration", "mcp.server.session.duration"} <= metric_names


@pytest.mark.skipif(MCP_MAJOR < 2, reason="mcp 1.x's stdio client crashes on the late response of a timed-out request; the real-servers tests cover a failing tools/call on 1.x")
def test_a_failed_tool_call_records_its_duration() -> None:
    with capture() as cap:
        instrument_mcp(cap.telemetry)

        async def scenario() -> None:
            async with stdio_session(DEMO) as session:
                with pytest.raises(Exception):
                    await session.call_tool("get_weather", {"city": "Paris"}, read_timeout_seconds=1e-9)

        run(scenario)
        (span,) = cap.spans("tools/call get_weather")
        (point,) = [p for p in points(cap, "mcp.client.operation.duration") if p.attributes.get("gen_ai.tool.name") == "get_weather"]
    assert span.status.status_code == StatusCode.ERROR
    assert point.count == 1 and point.attributes["error.type"] == span.attributes["error.type"]
    assert span.attributes["error.type"] == span.attributes["rpc.response.status_code"]  # the SDK's request-timeout code


def test_only_the_applications_list_tools_calls_are_discovery_queries() -> None:
    with capture() as cap:
        instrument_mcp(cap.telemetry)

        async def scenario() -> None:
            async with stdio_session(DEMO) as session:
                # Not listed yet: the SDK lists tools itself inside call_tool (output-schema validation).
                await session.call_tool("get_weather", {"city": "Oslo"})

        run(scenario)
        (call,) = cap.spans("tools/call get_weather")
        listings = cap.spans("tools/list")
        (call_point,) = [p for p in points(cap, "mcp.client.operation.duration") if p.attributes.get("gen_ai.tool.name") == "get_weather"]
    assert cap.spans("discovery.search") == []
    assert cap.summary()["discovery"]["total_queries"] == 0
    assert len(listings) == 1  # the SDK's own request still gets its span ...
    assert listings[0].parent is None or listings[0].parent.span_id != call.context.span_id  # ... outside the tool call
    # the tool call's duration is its own request's, not the listing's
    assert call_point.sum <= (call.end_time - call.start_time) / 1e9 + 1e-3
    assert listings[0].start_time >= call.end_time


def test_the_hit_rate_counts_a_tool_call_as_the_end_of_a_search() -> None:
    with capture() as cap:
        instrument_mcp(cap.telemetry)

        async def scenario() -> None:
            async with stdio_session(DEMO) as session:
                for calls in (4, 6, 9):
                    await session.list_tools()
                    for _ in range(calls):
                        await session.call_tool("get_weather", {"city": "Lima"})
                await session.list_tools()  # searched twice in a row: the first is continued
                await session.list_tools()

        run(scenario)
        d = cap.summary()["discovery"]
    assert (d["total_queries"], d["successful_queries"], d["continued_queries"]) == (5, 5, 1)
    assert d["hit_rate"] == 0.8


def test_one_client_span_per_request_whatever_tracer_provider_is_global() -> None:
    """mcp 2.x traces itself on the global provider; instrumented, its spans become ours."""
    host = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(host))
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done)  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done = provider, True  # type: ignore[attr-defined]
    try:
        with capture() as cap:
            instrument_mcp(cap.telemetry)

            async def scenario() -> None:
                async with stdio_session(DEMO) as session:
                    await session.list_tools()
                    await session.call_tool("get_weather", {"city": "Rome"})

            run(scenario)
            ours = client_spans(cap)
    finally:
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE._done = saved  # type: ignore[attr-defined]
    assert host.get_finished_spans() == ()  # nothing from the SDK on the host's provider
    assert [s.name for s in ours] == ["initialize", "notifications/initialized", "tools/list", "tools/call get_weather"]
    assert len(by_request_id(ours)) == 3


def test_our_session_set_global_still_gives_one_span_per_request() -> None:
    with capture(set_global=True) as cap:
        instrument_mcp(cap.telemetry)

        async def scenario() -> None:
            async with stdio_session(DEMO) as session:
                await session.call_tool("get_weather", {"city": "Rome"})

        run(scenario)
        spans = cap.spans()
    assert [s.name for s in spans if s.name.startswith("MCP send")] == []
    assert [s.name for s in spans if s.kind == SpanKind.CLIENT and s.attributes.get("mcp.method.name") == "tools/call"] == ["tools/call get_weather"]


def test_streamable_http_carries_tcp_and_the_server_assigned_session_id_on_both_sides() -> None:
    with OtlpReceiver() as rx, capture() as cap:
        instrument_mcp(cap.telemetry)
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
        with HttpServer([*DEMO, "--http"], env=env, port_arg=True) as srv:
            srv_port = srv.port
            seen: list[str] = []

            async def scenario() -> None:
                async with http_session(srv.url) as (session, get_session_id):
                    await session.list_tools()
                    await session.call_tool("get_weather", {"city": "Quito"})
                    if get_session_id is not None:
                        seen.append(get_session_id())

            run(scenario)
        clients = by_request_id(client_spans(cap))
        servers = by_request_id([s for s in rx.wait_for_spans(len(clients), name=None, timeout=20) if s.kind == "server"])
    call = cap.spans("tools/call get_weather")[0]
    session_id = call.attributes["mcp.session.id"]
    assert len(session_id) >= 16
    if seen:
        assert seen == [session_id]  # what the transport received in Mcp-Session-Id
    for rid, client in clients.items():
        assert client.attributes["network.transport"] == "tcp"
        # Loopback addresses are nobody's address: the scrubbing stage keeps them (other IPs are redacted)
        assert (client.attributes["server.address"], client.attributes["server.port"]) == ("127.0.0.1", srv_port)
        if client.name != "initialize":  # assigned by the initialize response
            assert client.attributes["mcp.session.id"] == session_id
        server = servers[rid]
        assert server.parent_span_id == f"{client.context.span_id:016x}"
        assert server.attributes["network.transport"] == "tcp"
        assert server.attributes["client.address"] == "127.0.0.1"
        assert isinstance(server.attributes["client.port"], int)
        if client.name != "initialize":
            assert server.attributes["mcp.session.id"] == session_id
    (p,) = [p for p in points(cap, "mcp.client.session.duration")]
    assert p.attributes["network.transport"] == "tcp"


@pytest.mark.skipif(MCP_MAJOR < 2, reason="mcp 1.x's SSE client posts inline, where nothing can see it: its spans say pipe (docs/MCP.md)")
def test_the_legacy_sse_transport_is_tcp_to_the_servers_address_with_its_session_id() -> None:
    from mcp.client.sse import sse_client

    with capture() as cap:
        instrument_mcp(cap.telemetry)
        with HttpServer([*DEMO, "--sse"], port_arg=True, path="/sse") as srv:
            srv_port = srv.port

            async def scenario() -> None:
                async with sse_client(srv.url) as (read, write), ClientSession(read, write) as session:
                    await session.initialize()
                    await session.call_tool("get_weather", {"city": "Lima"})

            run(scenario)
        clients = client_spans(cap)
        (session_point,) = points(cap, "mcp.client.session.duration")
        calls = [p for p in points(cap, "mcp.client.operation.duration") if p.attributes.get("gen_ai.tool.name") == "get_weather"]
    assert {c.name for c in clients} >= {"initialize", "tools/call get_weather"}
    for client in clients:
        assert client.attributes["network.transport"] == "tcp", client.name
        assert (client.attributes["server.address"], client.attributes["server.port"]) == ("127.0.0.1", srv_port)
        assert len(client.attributes["mcp.session.id"]) >= 16, client.name
    assert [p.attributes["network.transport"] for p in calls] == ["tcp"]
    assert session_point.attributes["network.transport"] == "tcp"


def test_tool_calls_from_executed_code_are_parented_under_the_execution_span() -> None:
    code = "import mcp_tools as t\nprint(t.get_weather(city='Oslo')['conditions'])\nprint(len(t.list_customers(limit=5)))\n"
    with OtlpReceiver() as rx, capture() as cap, tempfile.TemporaryDirectory() as sdk_dir:
        tel = cap.telemetry
        instrument_mcp(tel)

        async def scenario() -> Any:
            async with stdio_session(DEMO, env=server_env(OTEL_EXPORTER_OTLP_ENDPOINT=rx.grpc_endpoint)) as session:
                tools = (await session.list_tools()).tools
                sdk = SdkGenerator(sdk_dir, tel).generate(tools)
                executor = CodeExecutor(tel, sdk_dir=sdk.directory, tool_handler=ToolBridge(session))
                return await executor.execute_async(code, "python3")

        result = run(scenario)
        assert (result.exit_code, result.stdout, result.tool_calls) == (0, "clear\n5\n", 2)
        (execution,) = cap.spans("execution.run")
        calls = cap.spans("tools/call get_weather") + cap.spans("tools/call list_customers")
        server_spans = rx.wait_for_spans(4, name=None, timeout=10)
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
            async with stdio_session(DEMO) as session:
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
    original = ClientSession.send_request
    with capture() as cap:
        instrument_mcp(cap.telemetry)
        assert is_instrumented() and ClientSession.send_request is not original
        uninstrument_mcp()
        assert not is_instrumented() and ClientSession.send_request is original

        async def scenario() -> None:
            async with stdio_session(DEMO) as session:
                await session.call_tool("get_weather", {"city": "Rome"})

        run(scenario)
        assert client_spans(cap) == []
