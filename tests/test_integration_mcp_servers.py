"""The MCP conventions checked against real servers nobody here wrote: PyPI's ``mcp-server-time``
and ``mcp-server-git`` over stdio, npm's ``@modelcontextprotocol/server-everything`` over stdio
and streamable HTTP; on mcp 2.x and 1.x (the client side; the servers need mcp 2.x and run from
the main environment, as users run them with ``uvx``).

For each request: span name ``{mcp.method.name} {target}``, kind CLIENT, the required and
conditionally required attributes, status (ERROR iff ``error.type``; the JSON-RPC message as the
description) and one ``mcp.client.operation.duration`` record with the same method, target and
error. The Python servers also run under ``opentelemetry-instrument`` (our ``McpInstrumentor``
through its entry point): every server span is the child of its client span.
"""

from __future__ import annotations

import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any, Awaitable, Callable

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import types
from opentelemetry.trace import SpanKind, StatusCode

from mcp_exec_telemetry.integrations.mcp import instrument_mcp, uninstrument_mcp
from mcp_exec_telemetry.testing import capture
from tests.mcp_support import HttpServer, by_request_id, client_spans, everything, http_session, points, python_server, server_env, stdio_session
from tests.servers.otlp import OtlpReceiver

TARGETED = {"tools/call": "gen_ai.tool.name", "prompts/get": "gen_ai.prompt.name"}
URI_METHODS = {"resources/read", "resources/subscribe", "resources/unsubscribe"}


@pytest.fixture(autouse=True)
def _uninstrument() -> Any:
    yield
    uninstrument_mcp()


def check_conventions(cap: Any, transport: str) -> list[Any]:
    """Assert the conventions on every client span and its metric record; return the request spans."""
    spans = client_spans(cap)
    requests = [s for s in spans if "jsonrpc.request.id" in s.attributes]
    by_request_id(requests)  # one span per request id
    expected_points: dict[tuple[Any, ...], int] = {}
    for span in spans:
        a = span.attributes
        method = a["mcp.method.name"]  # required
        assert span.kind == SpanKind.CLIENT
        target_key = TARGETED.get(method)
        target = a.get(target_key) if target_key else None
        if target_key:
            assert target, f"{span.name}: {target_key} is conditionally required"
        assert span.name == (f"{method} {target}" if target else method)
        if method in URI_METHODS:
            assert a["mcp.resource.uri"].startswith("demo://")
        assert ("jsonrpc.request.id" in a) == (not method.startswith("notifications/"))
        assert (a.get("gen_ai.operation.name") == "execute_tool") == (method == "tools/call")
        assert a["network.transport"] == transport
        if method != "initialize" and not method.startswith("notifications/"):
            assert a["mcp.protocol.version"]
        failed = "error.type" in a
        assert (span.status.status_code == StatusCode.ERROR) == failed, span.name
        if "rpc.response.status_code" in a:  # a JSON-RPC error: its code is error.type, its message the status
            assert a["error.type"] == a["rpc.response.status_code"] and a["error.type"].lstrip("-").isdigit()
            assert span.status.description
        key = (method, target, a.get("error.type"))
        expected_points[key] = expected_points.get(key, 0) + 1
    got = {(p.attributes["mcp.method.name"], p.attributes.get("gen_ai.tool.name") or p.attributes.get("gen_ai.prompt.name"), p.attributes.get("error.type")): p.count for p in points(cap, "mcp.client.operation.duration")}
    assert got == expected_points  # every request and notification recorded once, failed ones too
    (session,) = points(cap, "mcp.client.session.duration")
    assert session.count == 1 and session.attributes["network.transport"] == transport
    return requests


def run_traced(scenario: Callable[[], Awaitable[None]]) -> Any:
    cm = capture()
    cap = cm.__enter__()
    try:
        instrument_mcp(cap.telemetry)
        anyio.run(scenario)
        return cap, cm
    except BaseException:
        cm.__exit__(None, None, None)
        raise


def test_time_server_over_stdio() -> None:
    argv = [python_server("mcp-server-time"), "--local-timezone", "UTC"]

    async def scenario() -> None:
        async with stdio_session(argv) as session:
            tools = await session.list_tools()
            assert {t.name for t in tools.tools} == {"get_current_time", "convert_time"}
            await session.call_tool("get_current_time", {"timezone": "Europe/Paris"})
            await session.call_tool("convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"})
            await session.send_ping()
            with pytest.raises(Exception, match="Unknown tool"):
                await session.call_tool("no_such_tool", {})  # JSON-RPC -32602

    cap, cm = run_traced(scenario)
    try:
        check_conventions(cap, "pipe")
        (failed,) = cap.spans("tools/call no_such_tool")
        assert (failed.attributes["error.type"], failed.attributes["rpc.response.status_code"]) == ("-32602", "-32602")
        assert failed.status.description == "Unknown tool: no_such_tool"
        (point,) = [p for p in points(cap, "mcp.client.operation.duration") if p.attributes.get("gen_ai.tool.name") == "no_such_tool"]
        assert point.count == 1 and point.attributes["error.type"] == "-32602"  # the failed call's duration is recorded
        assert [s.name for s in cap.spans() if s.kind == SpanKind.CLIENT and s.name.startswith("tools/call")] == [
            "tools/call get_current_time", "tools/call convert_time", "tools/call no_such_tool"]
        assert cap.summary()["discovery"]["total_queries"] == 1
    finally:
        cm.__exit__(None, None, None)


def test_git_server_over_stdio() -> None:
    argv = [python_server("mcp-server-git")]
    with tempfile.TemporaryDirectory() as repo:
        subprocess.run(["git", "init", "-q", repo], check=True)
        Path(repo, "README.md").write_text("hello\n")
        subprocess.run(["git", "-C", repo, "add", "README.md"], check=True)
        subprocess.run(["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first"], check=True)

        async def scenario() -> None:
            async with stdio_session([*argv, "--repository", repo]) as session:
                names = {t.name for t in (await session.list_tools()).tools}
                assert {"git_status", "git_log"} <= names
                await session.call_tool("git_status", {"repo_path": repo})
                await session.call_tool("git_log", {"repo_path": repo, "max_count": 1})
                result = await session.call_tool("git_show", {"repo_path": repo, "revision": "no-such-revision"})
                assert getattr(result, "is_error", None) or getattr(result, "isError", None)

        cap, cm = run_traced(scenario)
        try:
            check_conventions(cap, "pipe")
            (show,) = cap.spans("tools/call git_show")
            assert show.attributes["error.type"] == "tool_error" and show.status.status_code == StatusCode.ERROR
        finally:
            cm.__exit__(None, None, None)


async def everything_methods(session: Any) -> None:
    """Every method server-everything serves, one each, and two failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # logging/subscribe are deprecated in the 2026-07-28 revision, still served
        await session.send_ping()
        await session.list_tools()
        await session.call_tool("echo", {"message": "hi"})
        await session.list_prompts()
        await session.get_prompt("simple-prompt", {})
        uri = str((await session.list_resources()).resources[0].uri)
        await session.list_resource_templates()
        await session.read_resource(uri)
        await session.subscribe_resource(uri)
        await session.unsubscribe_resource(uri)
        await session.complete(types.PromptReference(type="ref/prompt", name="completable-prompt"), {"name": "department", "value": "E"})
        await session.set_logging_level("info")
        await session.call_tool("nope", {})  # an isError result
        with pytest.raises(Exception, match="Prompt nope not found"):
            await session.get_prompt("nope", {})  # JSON-RPC -32602


EVERYTHING_METHODS = {
    "initialize", "notifications/initialized", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
    "resources/templates/list", "resources/read", "resources/subscribe", "resources/unsubscribe", "completion/complete", "logging/setLevel",
}


def check_everything(cap: Any, transport: str) -> None:
    requests = check_conventions(cap, transport)
    assert {s.attributes["mcp.method.name"] for s in client_spans(cap)} == EVERYTHING_METHODS
    assert cap.spans("tools/call nope")[0].attributes["error.type"] == "tool_error"
    (bad,) = cap.spans("prompts/get nope")
    assert bad.attributes["rpc.response.status_code"] == "-32602"
    assert bad.status.description.endswith("Prompt nope not found")
    assert len(requests) == 15


def test_everything_server_over_stdio() -> None:
    async def scenario() -> None:
        async with stdio_session([*everything(), "stdio"]) as session:
            await everything_methods(session)

    cap, cm = run_traced(scenario)
    try:
        check_everything(cap, "pipe")
    finally:
        cm.__exit__(None, None, None)


def test_everything_server_over_streamable_http() -> None:
    seen: list[str] = []
    with HttpServer([*everything(), "streamableHttp"]) as srv:

        async def scenario() -> None:
            async with http_session(srv.url) as (session, get_session_id):
                await everything_methods(session)
                if get_session_id is not None:
                    seen.append(get_session_id())

        cap, cm = run_traced(scenario)
    try:
        check_everything(cap, "tcp")
        ids = {s.attributes.get("mcp.session.id") for s in client_spans(cap) if s.name != "initialize"}
        assert len(ids) == 1 and None not in ids  # the server-assigned Mcp-Session-Id, on every span after initialize
        if seen:
            assert ids == set(seen)
        assert {s.attributes["server.port"] for s in client_spans(cap)} == {srv.port}
    finally:
        cm.__exit__(None, None, None)


@pytest.mark.parametrize("server", ["mcp-server-time", "mcp-server-git"])
def test_server_spans_of_a_real_server_run_under_opentelemetry_instrument_are_children_of_client_spans(server: str) -> None:
    binary = python_server(server)
    instrument = str(Path(binary).parent / "opentelemetry-instrument")
    if not Path(instrument).exists():
        pytest.fail("opentelemetry-instrument is not installed beside the server (the test extra installs opentelemetry-distro)")
    with OtlpReceiver() as rx, tempfile.TemporaryDirectory() as repo:
        subprocess.run(["git", "init", "-q", repo], check=True)
        env = server_env(
            OTEL_SERVICE_NAME=server, OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="otlp", OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_ENDPOINT=rx.grpc_endpoint, OTEL_BSP_SCHEDULE_DELAY="100",
        )
        argv = [instrument, binary] + (["--repository", repo] if server == "mcp-server-git" else [])

        async def scenario() -> None:
            async with stdio_session(argv, env=env) as session:
                tools = (await session.list_tools()).tools
                await session.send_ping()
                name = tools[0].name
                args = {"timezone": "UTC"} if name == "get_current_time" else {"repo_path": repo}
                await session.call_tool(name, args)

        cap, cm = run_traced(scenario)
        try:
            clients = by_request_id(client_spans(cap))
            received = rx.wait_for_spans(len(clients), name=None, timeout=30)
            servers = by_request_id([s for s in received if s.kind == "server"])
            assert set(servers) == set(clients)  # one SERVER span per request
            for rid, client in clients.items():
                assert servers[rid].parent_span_id == f"{client.context.span_id:016x}"
                assert servers[rid].name == client.name
                assert servers[rid].resource["service.name"] == server
            assert [s.name for s in received if s.name.startswith("MCP ")] == []  # the SDK's own spans are absorbed
        finally:
            cm.__exit__(None, None, None)
