"""Observe the OpenAI Agents SDK (``openai-agents``) driving MCP servers: ``instrument_openai_agents(tel)``.

The Agents SDK talks to MCP servers (``MCPServerStdio``, ``MCPServerStreamableHttp``, ...) through the
official SDK's ``ClientSession``, awaited in the run's own task, so
:func:`~mcp_exec_telemetry.integrations.mcp.instrument_mcp` sees every request: each tool call the
model asks for is a ``tools/call {tool}`` CLIENT span with the MCP semantic conventions' attributes
and an ``mcp.client.operation.duration`` record, its trace context reaches the server, and each
``tools/list`` request is a discovery query. What the MCP layer cannot see is the run around those
calls; this module adds it. Until :func:`uninstrument_openai_agents`:

* each ``Runner.run`` / ``Runner.run_sync`` (``AgentRunner.run``) is one span ``invoke_agent {agent
  name}`` (GenAI conventions: ``gen_ai.operation.name = invoke_agent``, ``gen_ai.agent.name``), the
  parent of the run's MCP spans, marked failed with ``error.type`` when the run raises;
* ``instrument_mcp(tel)`` is made too, when ``mcp`` is not instrumented yet (and undone with it).

The Agents SDK lists an MCP server's tools before every model call unless the server was created
with ``cache_tools_list=True``; each listing that reaches the server is a ``tools/list`` request and
so a discovery query. The SDK's own tracing (to the OpenAI platform) is independent of this module;
turn it off with ``agents.set_tracing_disabled(True)`` when you have no OpenAI key.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["instrument_openai_agents", "uninstrument_openai_agents", "is_instrumented"]

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict[str, Any] = {}


async def _run(wrapped: Callable[..., Any], runner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``AgentRunner.run``: one ``invoke_agent`` span around the run, current while it runs."""
    telemetry = _state.get("telemetry")
    if telemetry is None:
        return await wrapped(*args, **kwargs)
    starting_agent = args[0] if args else kwargs.get("starting_agent")
    name = str(getattr(starting_agent, "name", None) or "agent")
    try:
        span = telemetry.tracer.start_span(
            f"invoke_agent {name}",
            kind=SpanKind.INTERNAL,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
    except Exception:  # never break the agent
        _log.debug("invoke_agent span failed", exc_info=True)
        return await wrapped(*args, **kwargs)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        try:
            error_type = type(exc).__qualname__
            span.set_attribute("error.type", error_type)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, error_type))
        except Exception:
            pass
        raise
    else:
        try:
            last = getattr(result, "last_agent", None)
            if last is not None and getattr(last, "name", None) and last.name != name:
                span.set_attribute("mcp_exec.agent.last_agent", str(last.name))  # a handoff happened
            span.set_attribute("mcp_exec.agent.model_calls", len(getattr(result, "raw_responses", ()) or ()))
        except Exception:
            pass
        return result
    finally:
        try:
            otel_context.detach(token)
        except Exception:
            pass
        span.end()


def instrument_openai_agents(telemetry: Any, instrument_mcp_sessions: bool = True) -> None:
    """Observe every Agents SDK run from now on into ``telemetry`` (and its MCP sessions, by default)."""
    import wrapt
    from agents.run import AgentRunner

    with _lock:
        if _state.get("patched"):
            _restore()
        original = AgentRunner.__dict__["run"]
        wrapt.wrap_function_wrapper(AgentRunner, "run", _run)
        _state.update(patched=True, telemetry=telemetry, original=original, mcp=False)
        if instrument_mcp_sessions:
            from . import mcp as mcp_integration

            if not mcp_integration.is_instrumented():
                mcp_integration.instrument_mcp(telemetry)
                _state["mcp"] = True


def _restore() -> None:
    from agents.run import AgentRunner

    AgentRunner.run = _state["original"]  # type: ignore[method-assign]
    if _state.get("mcp"):
        from . import mcp as mcp_integration

        mcp_integration.uninstrument_mcp()
    _state.clear()


def uninstrument_openai_agents() -> None:
    """Undo :func:`instrument_openai_agents` (and the ``instrument_mcp`` it made, if it made one)."""
    with _lock:
        if _state.get("patched"):
            _restore()
        _state.clear()


def is_instrumented() -> bool:
    return bool(_state.get("patched"))
