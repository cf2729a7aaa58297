"""mcp-exec-telemetry: OpenTelemetry observability for agents that run code with MCP tools.

Every step of the loop (tool discovery, code execution, SDK generation, filtering, skills, PII
protection) gets instruments and spans through one session::

    from mcp_exec_telemetry import observe

    with observe(service_name="my-agent") as tel:
        with tel.discovery.search("customer records") as q:
            q.set_results(3)
        with tel.execution.run("python3") as ex:
            ex.set_result(exit_code=0, memory_mb=42)
        print(tel.summary())

The names below are imported on first use (PEP 562), so that ``import mcp_exec_telemetry`` and
the command line's history commands do not pay for the OpenTelemetry SDK they do not use.
"""

from __future__ import annotations

from ._version import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing for a bare `import`

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs; at run time see __getattr__
    from .collector import MetricsCollector
    from .config import TelemetryConfig
    from .records import (
        AuditEvent,
        DetailLevel,
        DiscoveryMetrics,
        ExecutionMetrics,
        ExecutionRecord,
        FilteringMetrics,
        FilteringRecord,
        QueryRecord,
        SdkMetrics,
        SecurityMetrics,
        SkillMetrics,
        SkillStats,
        SkillUsageRecord,
    )
    from .telemetry import Telemetry, observe

__all__ = [
    "__version__",
    "observe",
    "Telemetry",
    "TelemetryConfig",
    "MetricsCollector",
    "DetailLevel",
    "AuditEvent",
    "QueryRecord",
    "ExecutionRecord",
    "FilteringRecord",
    "SkillUsageRecord",
    "DiscoveryMetrics",
    "ExecutionMetrics",
    "SdkMetrics",
    "FilteringMetrics",
    "SkillMetrics",
    "SkillStats",
    "SecurityMetrics",
]

# Public name -> submodule that defines it.
_LAZY = {
    "observe": "telemetry",
    "Telemetry": "telemetry",
    "TelemetryConfig": "config",
    "MetricsCollector": "collector",
    **{
        name: "records"
        for name in (
            "DetailLevel", "AuditEvent", "QueryRecord", "ExecutionRecord", "FilteringRecord", "SkillUsageRecord", "DiscoveryMetrics",
            "ExecutionMetrics", "SdkMetrics", "FilteringMetrics", "SkillMetrics", "SkillStats", "SecurityMetrics",
        )
    },
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
