"""Observe smolagents' ``CodeAgent`` with one line: ``instrument_smolagents(tel)``.

A ``CodeAgent`` asks its model for Python code, runs it in its executor (``LocalPythonExecutor`` or a
remote one) and sends the execution logs and the last value back to the model as the observation.
The code calls the agent's tools, among them MCP tools loaded with ``ToolCollection.from_mcp`` or
``MCPClient`` (through ``mcpadapt``). Until :func:`uninstrument_smolagents`, with no change to the
agent's code:

* a ``CodeAgent.run`` is one span ``invoke_agent {agent name}`` (GenAI conventions:
  ``gen_ai.operation.name = invoke_agent``, ``gen_ai.agent.name``), the parent of everything below;
* each code action the executor runs is one ``tel.execution.run("python3")``: its real duration (the
  executor call only), success when the code ran (a final answer included), failure when the code
  raised (``error.type`` is the exception raised in the code, e.g. ``ZeroDivisionError``), timeout
  when the executor's time limit stopped it, and as result size the bytes of the observation the
  agent sends back to the model (``Execution logs:`` ... ``Last output from code snippet:`` ...);
* each tool called from inside that code sits under the execution span: an MCP tool as the
  ``tools/call {tool}`` CLIENT span of :func:`~mcp_exec_telemetry.integrations.mcp.instrument_mcp`
  (whose trace context reaches the server), any other tool as an ``execute_tool {tool}`` span;
* **in-sandbox filtering, measured**: the bytes the tools returned into the code step against the
  bytes of the observation sent back to the model are one ``tel.filtering.operation("code_step",
  tool_bytes)`` with ``set_output(observation_bytes)``, so ``estimated_tokens_saved`` is
  ``(tool bytes - observation bytes) / bytes_per_token`` summed over the steps that called tools;
* the MCP tool listing at start-up is one discovery query (``instrument_mcp`` reports the
  ``tools/list`` that ``mcpadapt`` makes when it connects; the second one it makes right after, to
  adapt the tools, is sent and traced but is no query), under the span that was current where the
  tools were loaded, although ``mcpadapt`` runs the MCP session on an event loop in a thread of its
  own.

With a remote executor (E2B, Docker, Modal, Blaxel) the executions are measured the same way, but
the tools run inside the remote sandbox, out of this process's sight: no tool spans, no filtering
record; and the code's exception reaches the agent only as text in smolagents' ``AgentError``, so a
failed step's ``error.type`` is ``AgentError`` (not checked against a real remote sandbox here). ``ToolCallingAgent`` (no code) gets the run span and, for MCP tools, the MCP spans only.

``instrument_smolagents`` also calls ``instrument_mcp(tel)`` when ``mcp`` is installed and not yet
instrumented, and ``uninstrument_smolagents`` undoes only what it did.

Where smolagents gives no hook, the module patches the narrowest place and restores it:
``CodeAgent.run`` and ``CodeAgent._step_stream`` (the step holds a measuring proxy of its executor
while it runs), ``Tool.__call__``, ``smolagents.local_python_executor.timeout`` (the local executor
runs the code on a worker thread; the patched decorator carries the caller's context there, so tool
spans find their execution span), and ``mcpadapt.core.MCPAdapt.start`` / ``_run_loop`` / ``tools``
(the MCP session's thread starts in the context of the code that loaded the tools; the adapting
listing skips ``instrument_mcp``'s discovery layer through its ``__wrapped__``). A tool call from the
code reaches the MCP loop through ``asyncio.run_coroutine_threadsafe``, which carries the caller's
context, so the ``tools/call`` span is a child of the execution span with nothing more to do. Telemetry failures never
reach the agent: each hook falls back to the original call.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import threading
from typing import Any, Callable, Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from .filtering import json_size

__all__ = ["FILTERING_KIND", "instrument_smolagents", "uninstrument_smolagents", "is_instrumented", "observation_text"]

#: The filtering operation kind under which a code step's in-sandbox filtering is recorded.
FILTERING_KIND = "code_step"
LANGUAGE = "python3"

_log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict[str, Any] = {}
# The code step a tool call belongs to: set by the measuring executor while the code runs, and
# carried to the local executor's worker thread by the patched ``timeout`` decorator.
_step: contextvars.ContextVar["_CodeStep | None"] = contextvars.ContextVar("mcp_exec_smolagents_step", default=None)
# True while a tool called from the code runs: a tool it calls in turn returns into it, not into the code.
_in_tool: contextvars.ContextVar[bool] = contextvars.ContextVar("mcp_exec_smolagents_in_tool", default=False)


class _CodeStep:
    """What the tools called by one code action returned into it."""

    __slots__ = ("tool_bytes", "tool_calls", "_lock")

    def __init__(self) -> None:
        self.tool_bytes = 0
        self.tool_calls = 0
        self._lock = threading.Lock()

    def add(self, size: int) -> None:
        with self._lock:
            self.tool_bytes += size
            self.tool_calls += 1


def observation_text(code_output: Any) -> str:
    """The observation ``CodeAgent`` sends back to the model for one successful code action.

    Built as smolagents 1.x builds it in ``CodeAgent._step_stream``: the execution logs, then the
    last value of the code, truncated by smolagents' own ``truncate_content``.
    """
    from smolagents.utils import truncate_content

    logs = getattr(code_output, "logs", "") or ""
    return "Execution logs:\n" + logs + "Last output from code snippet:\n" + truncate_content(str(getattr(code_output, "output", None)))


def _code_error(exc: BaseException) -> BaseException:
    """The exception the code raised: smolagents wraps it in ``InterpreterError``s raised in its handlers."""
    seen = 0
    while type(exc).__name__ == "InterpreterError" and seen < 8:
        inner = exc.__cause__ or exc.__context__
        if not isinstance(inner, Exception):
            break
        exc, seen = inner, seen + 1
    return exc


def _is_timeout(exc: BaseException) -> bool:
    return type(exc).__name__ == "ExecutionTimeoutError"


class _Instruments:
    def __init__(self, telemetry: Any) -> None:
        self.telemetry = telemetry
        self.tracer = telemetry.tracer


def _active() -> _Instruments | None:
    return _state.get("inst")


def _run_code(inst: _Instruments, executor: Any, code_action: str) -> Any:
    """Run one code action through ``executor`` as one measured execution."""
    tel = inst.telemetry
    try:
        op = tel.execution.run(LANGUAGE)
        op.__enter__()
    except Exception:  # never break the agent
        _log.debug("execution.run failed to start", exc_info=True)
        return executor(code_action)
    step = _CodeStep()
    token = _step.set(step)
    token_used = False
    try:
        try:
            output = executor(code_action)
        except BaseException as exc:
            _step.reset(token)
            token_used = True
            _close_failed(op, exc)
            raise
        _step.reset(token)
        token_used = True
        _close_succeeded(inst, op, step, output)
        return output
    finally:
        if not token_used:
            _step.reset(token)


def _close_failed(op: Any, exc: BaseException) -> None:
    try:
        if _is_timeout(exc):
            op.set_timed_out()
            op.__exit__(None, None, None)
        else:
            cause = _code_error(exc)
            op.set_result(exit_code=1)
            op.__exit__(type(cause), cause, None)
    except Exception:
        _log.debug("execution.run failed to close", exc_info=True)


def _close_succeeded(inst: _Instruments, op: Any, step: _CodeStep, output: Any) -> None:
    try:
        observation_bytes = len(observation_text(output).encode("utf-8"))
        op.set_result(exit_code=0, result_size_bytes=observation_bytes)
        if step.tool_calls:
            # Under the execution span: the code step shrank what its tools returned to this observation.
            with inst.telemetry.filtering.operation(FILTERING_KIND, step.tool_bytes) as f:
                f.set_output(observation_bytes)
                f.span.set_attribute("mcp_exec.smolagents.tool_calls", step.tool_calls)
    except Exception:
        _log.debug("execution.run result failed", exc_info=True)
    finally:
        try:
            op.__exit__(None, None, None)
        except Exception:
            _log.debug("execution.run failed to close", exc_info=True)


_proxy_class: Any = None


def _measuring_executor(executor: Any) -> Any:
    """A transparent proxy of ``executor`` whose calls (code actions) are measured executions."""
    global _proxy_class
    if _proxy_class is None:
        import wrapt

        class MeasuredExecutor(wrapt.ObjectProxy):  # type: ignore[misc]
            def __call__(self, code_action: str, *args: Any, **kwargs: Any) -> Any:
                inst = _active()
                wrapped = self.__wrapped__
                if inst is None or args or kwargs:
                    return wrapped(code_action, *args, **kwargs)
                return _run_code(inst, wrapped, code_action)

        _proxy_class = MeasuredExecutor
    return _proxy_class(executor)


# --- patched methods -------------------------------------------------------------------------


def _step_stream(wrapped: Callable[..., Any], agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
    """``CodeAgent._step_stream``: the step runs with a measuring proxy of the agent's executor."""
    original = getattr(agent, "python_executor", None)
    swapped = False
    if _active() is not None and original is not None and not _is_proxy(original):
        try:
            agent.python_executor = _measuring_executor(original)
            swapped = True
        except Exception:
            _log.debug("could not wrap the executor", exc_info=True)
    try:
        yield from wrapped(*args, **kwargs)
    finally:
        if swapped:
            agent.python_executor = original


def _is_proxy(executor: Any) -> bool:
    return type(executor).__name__ == "MeasuredExecutor"


def _run(wrapped: Callable[..., Any], agent: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``CodeAgent.run``: one ``invoke_agent`` span around the run (and around a streamed run's steps)."""
    inst = _active()
    if inst is None:
        return wrapped(*args, **kwargs)
    name = getattr(agent, "name", None) or type(agent).__name__
    try:
        span = inst.tracer.start_span(
            f"invoke_agent {name}",
            kind=SpanKind.INTERNAL,
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": str(name)},
        )
    except Exception:
        _log.debug("invoke_agent span failed", exc_info=True)
        return wrapped(*args, **kwargs)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _fail(span, exc)
        span.end()
        raise
    finally:
        otel_context.detach(token)
    if _is_generator(result):
        return _streamed(result, span, agent)
    _end_run(span, agent)
    return result


def _is_generator(value: Any) -> bool:
    import types

    return isinstance(value, types.GeneratorType)


def _streamed(gen: Iterator[Any], span: Any, agent: Any) -> Iterator[Any]:
    ctx = trace.set_span_in_context(span)
    failed = False
    try:
        while True:
            token = otel_context.attach(ctx)
            try:
                item = next(gen)
            except StopIteration:
                return
            except BaseException as exc:
                failed = True
                _fail(span, exc)
                raise
            finally:
                otel_context.detach(token)
            yield item
    finally:
        if not failed:
            _end_run(span, agent, end=False)
        span.end()


def _end_run(span: Any, agent: Any, end: bool = True) -> None:
    try:
        steps = [s for s in getattr(getattr(agent, "memory", None), "steps", ()) if type(s).__name__ == "ActionStep"]
        span.set_attribute("mcp_exec.agent.steps", len(steps))
        last_error = getattr(steps[-1], "error", None) if steps else None
        if last_error is not None and type(last_error).__name__ == "AgentMaxStepsError":
            span.set_attribute("error.type", "AgentMaxStepsError")
            span.set_status(Status(StatusCode.ERROR, "AgentMaxStepsError"))
    except Exception:
        _log.debug("invoke_agent attributes failed", exc_info=True)
    if end:
        span.end()


def _fail(span: Any, exc: BaseException) -> None:
    try:
        error_type = type(exc).__qualname__
        span.set_attribute("error.type", error_type)
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, error_type))
    except Exception:
        _log.debug("marking the span failed failed", exc_info=True)


def _tool_call(wrapped: Callable[..., Any], tool: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``Tool.__call__``: inside a code action, count the bytes returned into the code; span non-MCP tools.

    Only a call made by the code itself counts: a tool called by another tool returns into that tool,
    not into the code (its span still sits under the calling tool's span).
    """
    step = _step.get()
    inst = _active()
    name = getattr(tool, "name", None)
    if step is None or inst is None or name == "final_answer":
        return wrapped(*args, **kwargs)
    called_by_a_tool = _in_tool.get()
    token = _in_tool.set(True)
    try:
        result = _traced_tool_call(inst, tool, name, wrapped, args, kwargs)
    finally:
        _in_tool.reset(token)
    if not called_by_a_tool:
        try:
            step.add(json_size(result))
        except Exception:
            _log.debug("tool result size failed", exc_info=True)
    return result


def _traced_tool_call(inst: _Instruments, tool: Any, name: Any, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The tool call itself: an MCP tool as it is (``instrument_mcp`` spans it), any other in ``execute_tool {tool}``."""
    if _is_mcp_tool(tool):
        # The MCP client span (tools/call {tool}) is opened by instrument_mcp inside this call.
        return wrapped(*args, **kwargs)
    try:
        span_cm = inst.tracer.start_as_current_span(
            f"execute_tool {name}",
            kind=SpanKind.INTERNAL,
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": str(name)},
            record_exception=False,
            set_status_on_exception=False,
        )
        span = span_cm.__enter__()
    except Exception:
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _fail(span, exc)
        span_cm.__exit__(None, None, None)
        raise
    span_cm.__exit__(None, None, None)
    return result


def _is_mcp_tool(tool: Any) -> bool:
    return type(tool).__module__.startswith("mcpadapt.")


def _timeout(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``local_python_executor.timeout`` that runs the decorated code in the caller's context."""

    @functools.wraps(original)
    def timeout(timeout_seconds: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        decorate = original(timeout_seconds)

        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(func)
            def in_context(*args: Any, **kwargs: Any) -> Any:
                # Copied when the code starts, on the caller's thread; run on the worker thread.
                return ctx.run(func, *args, **kwargs)

            ctx = contextvars.copy_context()
            return decorate(in_context)

        return decorator

    timeout.__wrapped__ = original  # type: ignore[attr-defined]
    return timeout


def _mcpadapt_start(wrapped: Callable[..., Any], adapter: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        adapter._mcp_exec_context = otel_context.get_current()
    except Exception:
        pass
    return wrapped(*args, **kwargs)


def _mcpadapt_tools(wrapped: Callable[..., Any], adapter: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``MCPAdapt.tools``: its second ``list_tools`` (the connection listed the tools already) is no query.

    Each session's ``list_tools`` skips the discovery-query layer of ``instrument_mcp`` for the
    duration of the call (its ``__wrapped__``); the request itself is still sent and traced.
    """
    bypassed = []
    for session in list(getattr(adapter, "sessions", None) or ()):
        patched = getattr(type(session), "list_tools", None)
        raw = getattr(patched, "__wrapped__", None)
        if raw is None:
            continue
        try:
            session.list_tools = functools.partial(raw, session)
            bypassed.append(session)
        except Exception:
            pass
    try:
        return wrapped(*args, **kwargs)
    finally:
        for session in bypassed:
            try:
                del session.list_tools
            except Exception:
                pass


def _mcpadapt_run_loop(wrapped: Callable[..., Any], adapter: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    ctx = getattr(adapter, "_mcp_exec_context", None)
    token = otel_context.attach(ctx) if ctx is not None else None
    try:
        return wrapped(*args, **kwargs)
    finally:
        if token is not None:
            otel_context.detach(token)


# --- instrument / uninstrument ---------------------------------------------------------------


#: Stands for "``owner`` had no attribute of its own": restoring deletes the patch, so the attribute is
#: inherited again (``CodeAgent.run`` is ``MultiStepAgent.run``, and later patches of the base apply).
_INHERITED = object()


def _patch(owner: Any, attr: str, wrapper: Callable[..., Any]) -> None:
    import wrapt

    original = owner.__dict__[attr] if attr in owner.__dict__ else _INHERITED
    if isinstance(original, staticmethod):  # pragma: no cover - not used for methods patched here
        raise TypeError(attr)
    wrapt.wrap_function_wrapper(owner, attr, wrapper)
    _state["patches"].append((owner, attr, original))


def instrument_smolagents(telemetry: Any, instrument_mcp_sessions: bool = True) -> None:
    """Observe every smolagents ``CodeAgent`` run from now on into ``telemetry``.

    With ``instrument_mcp_sessions`` (the default) and ``mcp`` installed, MCP client sessions are
    traced too (``instrument_mcp(telemetry)``), unless they already are.
    """
    import smolagents.local_python_executor as lpe
    from smolagents.agents import CodeAgent
    from smolagents.tools import Tool

    with _lock:
        if _state.get("patched"):
            _restore()
        _state.update(patches=[], inst=_Instruments(telemetry), patched=True, mcp=False)
        _patch(CodeAgent, "run", _run)
        _patch(CodeAgent, "_step_stream", _step_stream)
        _patch(Tool, "__call__", _tool_call)
        if hasattr(lpe, "timeout"):
            original_timeout = lpe.timeout
            lpe.timeout = _timeout(original_timeout)
            _state["patches"].append((lpe, "timeout", original_timeout))
        try:
            from mcpadapt.core import MCPAdapt
        except Exception:  # smolagents without its mcp extra, or mcpadapt failing on this mcp
            MCPAdapt = None
        if MCPAdapt is not None:
            _patch(MCPAdapt, "start", _mcpadapt_start)
            _patch(MCPAdapt, "_run_loop", _mcpadapt_run_loop)
            _patch(MCPAdapt, "tools", _mcpadapt_tools)
        if instrument_mcp_sessions:
            try:
                from . import mcp as mcp_integration

                if not mcp_integration.is_instrumented():
                    mcp_integration.instrument_mcp(telemetry)
                    _state["mcp"] = True
            except ImportError:
                pass


def _restore() -> None:
    for owner, attr, original in reversed(_state.get("patches", ())):
        if original is _INHERITED:
            delattr(owner, attr)
        else:
            setattr(owner, attr, original)
    if _state.get("mcp"):
        from . import mcp as mcp_integration

        mcp_integration.uninstrument_mcp()
    _state.clear()


def uninstrument_smolagents() -> None:
    """Undo :func:`instrument_smolagents` (and the ``instrument_mcp`` it made, if it made one)."""
    with _lock:
        if _state.get("patched"):
            _restore()
        _state.clear()


def is_instrumented() -> bool:
    return bool(_state.get("patched"))
