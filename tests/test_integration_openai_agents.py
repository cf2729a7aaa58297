"""The OpenAI Agents SDK driving a real MCP server: its tool calls land in our session by the conventions.

A scripted model (``agents.testing.ScriptedModel``: no network, no API key) asks for a tool of
``mcp-server-time`` from PyPI, started over stdio by ``MCPServerStdio``; for the server spans the
server runs traced by ``instrument_mcp`` and exports over OTLP to a real receiver. The SDK is in the
``[all]`` extra, so the main suite runs these tests on mcp 2.x; ``.ci/run`` runs them again in a venv
of their own on mcp 1.x. With ``CI=true`` a missing package is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from typing import Any, Iterator

import pytest


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is not None:
        return
    reason = f"{module} is not installed (pip install -e '.[openai-agents]' mcp-server-time)"
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("MCP_EXEC_REQUIRE_OPENAI_AGENTS") == "1":
        pytest.fail(f"{reason}; in CI this is a failure, not a skip", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


for _module in ("agents", "mcp_server_time"):
    _require(_module)

from agents import Agent, Runner, set_tracing_disabled  # noqa: E402
from agents.mcp import MCPServerStdio  # noqa: E402
from agents.run import AgentRunner  # noqa: E402
from agents.testing import ScriptedModel, assistant_message, function_call  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

from mcp_exec_telemetry.integrations import mcp as mcp_integration  # noqa: E402
from mcp_exec_telemetry.integrations.openai_agents import instrument_openai_agents, is_instrumented, uninstrument_openai_agents  # noqa: E402
from mcp_exec_telemetry.testing import capture  # noqa: E402
from tests.servers.otlp import OtlpReceiver  # noqa: E402
from tests.time_server import command  # noqa: E402

TOKYO = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"}


@pytest.fixture(autouse=True)
def _setup() -> Iterator[None]:
    set_tracing_disabled(True)  # the SDK's own tracing would post to the OpenAI platform
    yield
    uninstrument_openai_agents()
    mcp_integration.uninstrument_mcp()


def time_server(otlp_endpoint: str | None = None, **kwargs: Any) -> MCPServerStdio:
    cmd, args, env = command(otlp_endpoint)
    params: dict[str, Any] = {"command": cmd, "args": args}
    if env is not None:
        params["env"] = env
    return MCPServerStdio(params=params, name="time", **kwargs)


def clock_agent(server: MCPServerStdio, *steps: Any) -> Agent:
    return Agent(name="clock", instructions="Answer with the time.", model=ScriptedModel(list(steps)), mcp_servers=[server])


def client_points(cap: Any) -> dict[tuple[Any, ...], Any]:
    data = cap.telemetry.metrics_data()
    return {
        (p.attributes.get("mcp.method.name"), p.attributes.get("gen_ai.tool.name"), p.attributes.get("error.type")): p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "mcp.client.operation.duration"
        for p in m.data.data_points
    }


def test_a_run_with_an_mcp_tool_call_lands_in_the_session_with_the_conventions_spans_and_metrics() -> None:
    async def scenario(endpoint: str) -> Any:
        async with time_server(endpoint) as server:
            agent = clock_agent(server, [function_call("convert_time", TOKYO, call_id="c1")], [assistant_message("21:00 in Tokyo.")])
            return await Runner.run(agent, "Noon UTC is what time in Tokyo?")

    with OtlpReceiver() as rx, capture() as cap:
        tel = cap.telemetry
        instrument_openai_agents(tel)  # the one line
        result = asyncio.run(scenario(rx.grpc_endpoint))
        spans = cap.spans()
        summary = cap.summary()
        points = client_points(cap)
        server_spans = rx.wait_for_spans(1, name="tools/call convert_time", timeout=15)

    assert result.final_output == "21:00 in Tokyo."
    (run,) = [s for s in spans if s.name == "invoke_agent clock"]
    assert (run.attributes["gen_ai.operation.name"], run.attributes["gen_ai.agent.name"]) == ("invoke_agent", "clock")
    assert run.attributes["mcp_exec.agent.model_calls"] == 2
    assert run.parent.span_id == tel.session_span.get_span_context().span_id

    (call,) = [s for s in spans if s.name == "tools/call convert_time"]
    assert call.kind == SpanKind.CLIENT
    assert call.parent.span_id == run.context.span_id
    assert call.attributes["mcp.method.name"] == "tools/call"
    assert call.attributes["gen_ai.tool.name"] == "convert_time"
    assert call.attributes["gen_ai.operation.name"] == "execute_tool"
    assert call.attributes["network.transport"] == "pipe"
    assert call.status.status_code == StatusCode.UNSET
    assert points[("tools/call", "convert_time", None)].count == 1

    # The SDK lists the tools before each of the two model calls: two tools/list requests, two queries.
    assert summary["discovery"]["total_queries"] == 2
    assert points[("tools/list", None, None)].count == 2
    assert {s.parent.span_id for s in spans if s.name == "discovery.search"} == {run.context.span_id}

    (server,) = [s for s in server_spans if s.kind == "server"]
    assert server.parent_span_id == f"{call.context.span_id:016x}"
    assert server.trace_id == f"{run.context.trace_id:032x}"


def test_a_cached_tool_list_is_one_discovery_query_and_a_tool_error_is_marked() -> None:
    bad = {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Mars/Olympus"}

    def scenario() -> Any:
        async def go() -> Any:
            async with time_server(cache_tools_list=True) as server:
                agent = clock_agent(server, [function_call("convert_time", bad, call_id="c1")], [assistant_message("No such zone.")])
                return await Runner.run(agent, "Noon UTC on Mars?")

        return asyncio.run(go())

    with capture() as cap:
        instrument_openai_agents(cap.telemetry)
        assert scenario().final_output == "No such zone."
        summary = cap.summary()
        (call,) = cap.spans("tools/call convert_time")
        points = client_points(cap)
    assert summary["discovery"]["total_queries"] == 1
    assert call.attributes["error.type"] == "tool_error"
    assert call.status.status_code == StatusCode.ERROR
    assert points[("tools/call", "convert_time", "tool_error")].count == 1


def test_run_sync_is_one_span_and_uninstrument_restores_the_runner() -> None:
    original = AgentRunner.run

    def ask() -> Any:
        agent = Agent(name="echo", instructions="Say hi.", model=ScriptedModel([[assistant_message("hi")]]))
        return Runner.run_sync(agent, "Say hi.")

    with capture() as cap:
        instrument_openai_agents(cap.telemetry)
        assert is_instrumented() and mcp_integration.is_instrumented()
        assert ask().final_output == "hi"
        assert len(cap.spans("invoke_agent echo")) == 1
        uninstrument_openai_agents()
        assert AgentRunner.run is original
        assert not is_instrumented() and not mcp_integration.is_instrumented()
        assert ask().final_output == "hi"
        assert len(cap.spans("invoke_agent echo")) == 1


def test_a_failed_run_is_a_failed_span() -> None:
    agent = Agent(name="broken", instructions="x", model=ScriptedModel([RuntimeError("model down")]))
    with capture() as cap:
        instrument_openai_agents(cap.telemetry, instrument_mcp_sessions=False)
        with pytest.raises(RuntimeError, match="model down"):
            Runner.run_sync(agent, "anything")
        (run,) = cap.spans("invoke_agent broken")
    assert run.attributes["error.type"] == "RuntimeError"
    assert run.status.status_code == StatusCode.ERROR


def test_the_example_runs_offline_and_prints_the_summary_and_the_dashboard() -> None:
    import json
    import subprocess
    import sys

    from tests.conftest import repo_root

    out = subprocess.run([sys.executable, str(repo_root() / "examples" / "openai_agents_mcp_agent.py")], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "answer: A 09:30 meeting in Paris is in the evening in Tokyo.\n" in text
    requests = json.loads(text[text.index("MCP requests: ") + len("MCP requests: ") : text.index("\n", text.index("MCP requests: "))])
    # (plus the handshake: initialize on mcp 1.x, server/discover on 2.x)
    assert {k: v for k, v in requests.items() if k.startswith("tools/")} == {
        "tools/call convert_time": 1,
        "tools/call convert_time tool_error": 1,  # the misspelt zone
        "tools/call get_current_time": 1,
        "tools/list": 1,
    }
    start = text.index("\n{\n") + 1
    summary = json.loads(text[start : text.index("\n}\n", start) + 2])
    assert summary["service_name"] == "openai-agents-mcp-agent"
    assert summary["discovery"]["total_queries"] == 1  # cache_tools_list=True: listed once
    assert "MCP Execution Metrics Dashboard" in text


def test_the_instrumentor_reports_into_a_given_session() -> None:
    from importlib.metadata import entry_points

    from mcp_exec_telemetry.integrations.agents_instrumentor import OpenAIAgentsInstrumentor

    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "openai_agents"]
    assert ep.load() is OpenAIAgentsInstrumentor
    assert list(OpenAIAgentsInstrumentor().instrumentation_dependencies()) == ["openai-agents >= 0.24"]
    agent = Agent(name="echo", instructions="Say hi.", model=ScriptedModel([[assistant_message("hi")], [assistant_message("hi")]]))
    with capture() as cap:
        OpenAIAgentsInstrumentor().instrument(telemetry=cap.telemetry)
        assert mcp_integration.is_instrumented()
        Runner.run_sync(agent, "Say hi.")
        OpenAIAgentsInstrumentor().uninstrument()
        Runner.run_sync(agent, "Say hi.")
        assert len(cap.spans("invoke_agent echo")) == 1
    assert not is_instrumented() and not mcp_integration.is_instrumented()
