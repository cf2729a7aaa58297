"""Instrumented building blocks for Python agent runtimes that execute code with MCP tools.

Each piece reports through one step of a :class:`~mcp_exec_telemetry.Telemetry` session:

* :mod:`.mcp`: tracing for the official MCP Python SDK (the ``mcp`` extra: ``pip install '.[mcp]'`` from a checkout):
  ``instrument_mcp(tel)`` / ``uninstrument_mcp()``, ``ToolBridge``; :mod:`.mcp_instrumentor`:
  ``McpInstrumentor``, the same as an OpenTelemetry ``BaseInstrumentor``.
* :mod:`.executor`: ``CodeExecutor`` runs python3 and javascript in a measured, limited subprocess.
* :mod:`.discovery`: ``ToolDiscovery`` searches a tool list at three detail levels.
* :mod:`.sdkgen`: ``SdkGenerator`` writes Python and JavaScript wrappers for the tools.
* :mod:`.filtering`: size-measuring ``filter`` / ``map`` / ``reduce`` / ``select`` helpers.
* :mod:`.skills`: ``SkillManager`` keeps reusable skills on disk with metadata.
* :mod:`.demo` / :mod:`.demo_server`: a scripted agent and the MCP server it talks to.
* :mod:`.smolagents` (``[smolagents]``): ``instrument_smolagents(tel)``, smolagents' ``CodeAgent``
  as the design's steps; :mod:`.openai_agents`: ``instrument_openai_agents(tel)``, the OpenAI Agents
  SDK's runs over their MCP calls; :mod:`.agents_instrumentor`: both as ``BaseInstrumentor``s.

Names are imported lazily, so importing this package does not import ``mcp``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "instrument_mcp": ".mcp",
    "uninstrument_mcp": ".mcp",
    "instrument_server": ".mcp",
    "ToolBridge": ".mcp",
    "McpInstrumentor": ".mcp_instrumentor",
    "CodeExecutor": ".executor",
    "ExecutionResult": ".executor",
    "ToolDiscovery": ".discovery",
    "SdkGenerator": ".sdkgen",
    "SkillManager": ".skills",
    "Skill": ".skills",
    "filter_records": ".filtering",
    "map_records": ".filtering",
    "reduce_records": ".filtering",
    "select_fields": ".filtering",
    "instrument_smolagents": ".smolagents",
    "uninstrument_smolagents": ".smolagents",
    "instrument_openai_agents": ".openai_agents",
    "uninstrument_openai_agents": ".openai_agents",
    "SmolagentsInstrumentor": ".agents_instrumentor",
    "OpenAIAgentsInstrumentor": ".agents_instrumentor",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)
