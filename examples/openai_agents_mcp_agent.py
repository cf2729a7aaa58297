"""The OpenAI Agents SDK driving a real MCP server, observed with one line: ``instrument_openai_agents(tel)``.

Runs without network or API key: the model is ``agents.testing.ScriptedModel`` (the tool calls an
LLM would ask for), the MCP server is ``mcp-server-time`` from PyPI, started over stdio by
``MCPServerStdio``. The agent asks for the time in Tokyo, converts a meeting time (one call with a
zone that does not exist fails, as tool calls do) and answers. Prints the JSON summary and the KPI
dashboard.

    pip install -e '.[openai-agents]' mcp-server-time
    python examples/openai_agents_mcp_agent.py
"""

from __future__ import annotations

import asyncio
import json
import sys

from agents import Agent, Runner, set_tracing_disabled
from agents.mcp import MCPServerStdio
from agents.testing import ScriptedModel, assistant_message, function_call

from mcp_exec_telemetry import observe
from mcp_exec_telemetry.dashboard import render
from mcp_exec_telemetry.integrations.openai_agents import instrument_openai_agents

SCRIPT = [
    [function_call("get_current_time", {"timezone": "Asia/Tokyo"}, call_id="call-1")],
    [function_call("convert_time", {"source_timezone": "Europe/Paris", "time": "09:30", "target_timezone": "Asia/Tokio"}, call_id="call-2")],
    [function_call("convert_time", {"source_timezone": "Europe/Paris", "time": "09:30", "target_timezone": "Asia/Tokyo"}, call_id="call-3")],
    [assistant_message("A 09:30 meeting in Paris is in the evening in Tokyo.")],
]


def mcp_calls(tel) -> dict[str, int]:  # noqa: ANN001
    """Requests per ``method tool [error]`` from the conventions' ``mcp.client.operation.duration``."""
    counts: dict[str, int] = {}
    for rm in tel.metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == "mcp.client.operation.duration":
                    for p in metric.data.data_points:
                        a = p.attributes
                        key = " ".join(str(v) for v in (a.get("mcp.method.name"), a.get("gen_ai.tool.name"), a.get("error.type")) if v)
                        counts[key] = counts.get(key, 0) + p.count
    return dict(sorted(counts.items()))


async def run_agent() -> str:
    params = {"command": sys.executable, "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"]}
    async with MCPServerStdio(params=params, name="time", cache_tools_list=True) as server:
        agent = Agent(name="scheduler", instructions="Plan meetings across time zones.", model=ScriptedModel(SCRIPT), mcp_servers=[server])
        result = await Runner.run(agent, "When is a 09:30 Paris meeting in Tokyo?")
        return str(result.final_output)


def main() -> None:
    set_tracing_disabled(True)  # the Agents SDK's own tracing would post to the OpenAI platform
    with observe(service_name="openai-agents-mcp-agent", history=False) as tel:
        instrument_openai_agents(tel)  # the one line: everything else is plain Agents SDK code
        answer = asyncio.run(run_agent())
        print(f"answer: {answer}\n")
        print("MCP requests:", json.dumps(mcp_calls(tel)), "\n")
        print(json.dumps(tel.summary(), indent=2))
        print(render(tel, width=72))


if __name__ == "__main__":
    main()
