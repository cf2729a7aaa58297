"""``McpInstrumentor``: the MCP Python SDK's tracing in OpenTelemetry's instrumentor shape.

>>> from mcp_exec_telemetry.integrations.mcp_instrumentor import McpInstrumentor
>>> McpInstrumentor().instrument(tracer_provider=tp, meter_provider=mp)   # doctest: +SKIP
>>> McpInstrumentor().uninstrument()                                      # doctest: +SKIP

Without providers it uses the global ones, so ``opentelemetry-instrument python agent.py`` (which
finds it through the ``opentelemetry_instrumentor`` entry point named ``mcp``) traces every MCP
client and server in the process, by the same conventions as :func:`~.mcp.instrument_mcp`. Pass
``capture_content=True`` to record scrubbed tool arguments and results on spans.
``instrument_mcp(tel)`` stays the shortcut for a session of ours (it also reports discovery).
"""

from __future__ import annotations

from typing import Any, Collection

from opentelemetry import metrics, trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from .._version import __version__
from . import mcp as _mcp

__all__ = ["McpInstrumentor"]

#: The SDK versions the conventions' attributes can be read from (mcp 1.20 onwards) up to 2.x.
_INSTRUMENTS = ("mcp >= 1.20, < 3",)


class McpInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Traces ``mcp.ClientSession`` and MCP servers with the MCP semantic conventions."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        tracer = trace.get_tracer(__name__, __version__, tracer_provider=kwargs.get("tracer_provider"), schema_url="https://opentelemetry.io/schemas/1.37.0")
        meter = metrics.get_meter(__name__, __version__, meter_provider=kwargs.get("meter_provider"), schema_url="https://opentelemetry.io/schemas/1.37.0")
        _mcp._instrument(_mcp._Instruments(tracer, meter, kwargs.get("telemetry"), bool(kwargs.get("capture_content", False))))

    def _uninstrument(self, **kwargs: Any) -> None:
        _mcp.uninstrument_mcp()
