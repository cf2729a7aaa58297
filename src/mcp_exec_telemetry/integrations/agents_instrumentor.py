"""The agent-runtime integrations in OpenTelemetry's instrumentor shape.

>>> from mcp_exec_telemetry.integrations.agents_instrumentor import SmolagentsInstrumentor
>>> SmolagentsInstrumentor().instrument(telemetry=tel)   # doctest: +SKIP
>>> SmolagentsInstrumentor().uninstrument()              # doctest: +SKIP

The steps these integrations report (executions, filtering, discovery) live in a session of ours,
so ``instrument`` takes ``telemetry=``; without it, as under ``opentelemetry-instrument python
agent.py`` (which finds the instrumentors through the ``opentelemetry_instrumentor`` entry points
``smolagents`` and ``openai_agents``), the instrumentor starts a session from the ``OTEL_*``
environment (``observe(history=False)``: it exports where ``OTEL_EXPORTER_OTLP_ENDPOINT`` says) and closes it at ``uninstrument()`` or when the process exits.
"""

from __future__ import annotations

import atexit
from typing import Any, Collection

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

__all__ = ["OpenAIAgentsInstrumentor", "SmolagentsInstrumentor"]


class _SessionInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instrument with a given ``telemetry`` or with a session started from the environment."""

    _owned: Any = None

    def _apply(self, telemetry: Any, **kwargs: Any) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _remove(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _instrument(self, **kwargs: Any) -> None:
        telemetry = kwargs.pop("telemetry", None)
        kwargs.pop("tracer_provider", None)  # the session has providers of its own
        kwargs.pop("meter_provider", None)
        if telemetry is None:
            from .. import observe

            telemetry = observe(history=False)
            telemetry.__enter__()
            type(self)._owned = telemetry
            atexit.register(_close, telemetry)
        self._apply(telemetry, **kwargs)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._remove()
        owned, type(self)._owned = type(self)._owned, None
        if owned is not None:
            _close(owned)


def _close(telemetry: Any) -> None:
    if not telemetry.closed:
        telemetry.__exit__(None, None, None)


class SmolagentsInstrumentor(_SessionInstrumentor):
    """smolagents' ``CodeAgent`` runs as the design's steps: see :mod:`.smolagents`."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("smolagents >= 1.26",)

    def _apply(self, telemetry: Any, **kwargs: Any) -> None:
        from .smolagents import instrument_smolagents

        instrument_smolagents(telemetry, **kwargs)

    def _remove(self) -> None:
        from .smolagents import uninstrument_smolagents

        uninstrument_smolagents()


class OpenAIAgentsInstrumentor(_SessionInstrumentor):
    """The OpenAI Agents SDK's runs and their MCP calls: see :mod:`.openai_agents`."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("openai-agents >= 0.24",)

    def _apply(self, telemetry: Any, **kwargs: Any) -> None:
        from .openai_agents import instrument_openai_agents

        instrument_openai_agents(telemetry, **kwargs)

    def _remove(self) -> None:
        from .openai_agents import uninstrument_openai_agents

        uninstrument_openai_agents()

