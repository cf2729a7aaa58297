"""``mcp-server-time`` (from PyPI) for the agent-framework tests, optionally traced into OTLP.

Traced, it runs under ``instrument_mcp`` in a telemetry session of its own
(``service.name`` ``mcp-server-time``) that exports to ``OTEL_EXPORTER_OTLP_ENDPOINT``: the server
spans of the tests' tool calls arrive at a real OTLP receiver.
"""

from __future__ import annotations

import os
import sys

TRACED_TIME_SERVER = """
import sys
from mcp_exec_telemetry import observe
from mcp_exec_telemetry.integrations.mcp import instrument_mcp
import mcp_server_time
sys.argv = ["mcp-server-time", "--local-timezone", "UTC"]
with observe(service_name="mcp-server-time", history=False, export_timeout_ms=1500) as tel:
    instrument_mcp(tel)
    try:
        mcp_server_time.main()
    except (KeyboardInterrupt, SystemExit):
        pass
"""


def command(otlp_endpoint: str | None = None) -> tuple[str, list[str], dict[str, str] | None]:
    """``(command, args, env)`` that start the server over stdio; traced when ``otlp_endpoint`` is given."""
    if otlp_endpoint is None:
        return sys.executable, ["-m", "mcp_server_time", "--local-timezone", "UTC"], None
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=otlp_endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    return sys.executable, ["-c", TRACED_TIME_SERVER], env
