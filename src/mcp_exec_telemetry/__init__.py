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
"""

from ._version import __version__
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
