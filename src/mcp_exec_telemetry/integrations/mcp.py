"""Tracing for the official MCP Python SDK (``mcp`` 2.x): the client session and the server.

``instrument_mcp(telemetry)`` patches, until ``uninstrument_mcp()``:

* ``mcp.ClientSession.list_tools``: reported as a discovery query (``tel.discovery.search("*",
  "full")`` with the number of tools listed) around a CLIENT span ``tools/list``.
* ``mcp.ClientSession.call_tool``: a CLIENT span ``tools/call {tool}`` with the MCP semantic
  conventions' attributes (``mcp.method.name``, ``gen_ai.tool.name``, ``gen_ai.operation.name =
  execute_tool``, ``mcp.session.id``, ``network.transport``, ``error.type = tool_error`` when the
  result is an error) and one ``mcp.client.operation.duration`` record (seconds, with the
  conventions' bucket boundaries; ``mcp.session.id`` is kept off the metric, it is unbounded).
  The span's W3C trace context is written into the request's ``params._meta``
  (``traceparent``/``tracestate``), so the server continues the trace.
* ``mcp.server.lowlevel.Server.__init__`` (what ``mcp.server.mcpserver.MCPServer``, the SDK's
  former FastMCP, builds on): every server created afterwards gets a middleware that opens a SERVER
  span ``{method} {tool}`` for each request, continuing the trace found in ``params._meta``, and
  records ``mcp.server.operation.duration``. ``instrument_server(server, telemetry)`` does the same
  for a server that already exists.

The SDK ships its own OpenTelemetry hooks, but they use the *global* tracer provider; this module
uses the session's private one, so spans land in the session's exporters (and ``capture()``).
``mcp.session.id`` is the transport's session id when it has one; stdio has none, so each
instrumented ``ClientSession`` gets a random id of its own, put on spans only.

Tool arguments and results are captured on spans (``gen_ai.tool.call.arguments`` /
``gen_ai.tool.call.result``) only with ``capture_content=True``, and always scrubbed of PII by
:class:`mcp_exec_telemetry.pii.Scrubber` first; when that scrubber cannot be imported the content is
not captured at all.

:class:`ToolBridge` lets synchronous code on other threads (the code executor's IPC proxy) call
tools through a ``ClientSession`` running on an event loop, keeping the caller's trace context.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any, Callable

from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "MCP_DURATION_BUCKETS_S",
    "ToolBridge",
    "instrument_mcp",
    "instrument_server",
    "uninstrument_mcp",
    "is_instrumented",
    "tool_result_payload",
]

# The MCP semantic conventions' advice for mcp.{client,server}.operation.duration.
MCP_DURATION_BUCKETS_S: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
CLIENT_DURATION = "mcp.client.operation.duration"
SERVER_DURATION = "mcp.server.operation.duration"
MAX_CAPTURED_CHARS = 4096

_PROPAGATOR = TraceContextTextMapPropagator()
_lock = threading.Lock()
_state: dict[str, Any] = {}


class _Instruments:
    """The session's tracer and the two operation-duration histograms."""

    def __init__(self, telemetry: Any, capture_content: bool) -> None:
        self.telemetry = telemetry
        self.tracer = telemetry.tracer
        meter = telemetry.meter
        self.capture_content = capture_content
        self.scrub = _scrubber() if capture_content else None
        self.client_duration = meter.create_histogram(
            CLIENT_DURATION,
            unit="s",
            description="Duration of MCP requests as observed on the client, from send until the response arrives",
            explicit_bucket_boundaries_advisory=list(MCP_DURATION_BUCKETS_S),
        )
        self.server_duration = meter.create_histogram(
            SERVER_DURATION,
            unit="s",
            description="Duration of MCP requests as observed on the server, from receipt until the result is sent",
            explicit_bucket_boundaries_advisory=list(MCP_DURATION_BUCKETS_S),
        )

    def content(self, value: Any) -> str | None:
        """Scrubbed, truncated JSON of captured content, or None when capture is off or unsafe."""
        if not self.capture_content or self.scrub is None:
            return None
        try:
            text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
            text = self.scrub(text)
        except Exception:
            return None
        return text[:MAX_CAPTURED_CHARS]


def _scrubber() -> Callable[[str], str] | None:
    try:
        from ..pii import Scrubber  # type: ignore[attr-defined]
    except Exception:
        return None
    scrubber = Scrubber()
    return scrubber.scrub


def tool_result_payload(result: Any) -> Any:
    """The JSON-ready value of a ``CallToolResult``: its structured content, else its text blocks.

    A single text block holding JSON is decoded; several text blocks become a list of strings.
    """
    structured = getattr(result, "structured_content", None)
    if structured is not None:
        if isinstance(structured, dict) and set(structured) == {"result"}:
            return structured["result"]
        return structured
    texts = [getattr(block, "text", None) for block in getattr(result, "content", None) or ()]
    texts = [t for t in texts if isinstance(t, str)]
    if len(texts) == 1:
        try:
            return json.loads(texts[0])
        except ValueError:
            return texts[0]
    return texts


def _session_id(session: Any) -> str:
    sid = getattr(session, "_mcp_exec_session_id", None)
    if sid is None:
        sid = getattr(session, "session_id", None) or uuid.uuid4().hex
        try:
            session._mcp_exec_session_id = sid
        except Exception:
            pass
    return str(sid)


def _inject(meta: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(meta or {})
    _PROPAGATOR.inject(out)
    return out


def _mark_failed(span: Any, exc: BaseException) -> str:
    """Mark ``span`` failed by ``exc`` (error.type, exception event, ERROR status); return the error type."""
    error_type = _error_type(exc)
    span.set_attribute("error.type", error_type)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, error_type))
    return error_type


def _error_type(exc: BaseException) -> str:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    return str(code) if code is not None else type(exc).__qualname__


async def _call_tool(inst: _Instruments, original: Callable[..., Any], self: Any, name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> Any:
    attrs = {
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": name,
        "network.transport": "pipe",
    }
    span_attrs = dict(attrs, **{"mcp.session.id": _session_id(self)})
    captured = inst.content(arguments if arguments is not None else {})
    if captured is not None:
        span_attrs["gen_ai.tool.call.arguments"] = captured
    error_type: str | None = None
    t0 = time.perf_counter()
    with inst.tracer.start_as_current_span(f"tools/call {name}", kind=SpanKind.CLIENT, attributes=span_attrs, record_exception=False, set_status_on_exception=False) as span:
        kwargs["meta"] = _inject(kwargs.get("meta"))
        try:
            result = await original(self, name, arguments, *args, **kwargs)
        except BaseException as exc:
            error_type = _mark_failed(span, exc)
            raise
        finally:
            metric_attrs = dict(attrs)
            if error_type is not None:
                metric_attrs["error.type"] = error_type
        if getattr(result, "is_error", False):
            error_type = "tool_error"
            span.set_attribute("error.type", error_type)
            span.set_status(Status(StatusCode.ERROR, error_type))
            metric_attrs["error.type"] = error_type
        captured = inst.content(tool_result_payload(result))
        if captured is not None:
            span.set_attribute("gen_ai.tool.call.result", captured)
    inst.client_duration.record(time.perf_counter() - t0, metric_attrs)
    return result


async def _list_tools(inst: _Instruments, original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    attrs = {"mcp.method.name": "tools/list", "network.transport": "pipe"}
    error_type: str | None = None
    with inst.telemetry.discovery.search("*", "full") as query:
        t0 = time.perf_counter()
        with inst.tracer.start_as_current_span("tools/list", kind=SpanKind.CLIENT, attributes=dict(attrs, **{"mcp.session.id": _session_id(self)})) as span:
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as exc:
                error_type = _error_type(exc)
                span.set_attribute("error.type", error_type)
                raise
            finally:
                metric_attrs = dict(attrs)
                if error_type is not None:
                    metric_attrs["error.type"] = error_type
                inst.client_duration.record(time.perf_counter() - t0, metric_attrs)
        query.set_results(len(getattr(result, "tools", ()) or ()))
    return result


class _ServerMiddleware:
    """A server middleware: one SERVER span per inbound request, continuing the client's trace."""

    def __init__(self, inst: _Instruments) -> None:
        self._inst = inst

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Any]) -> Any:
        if _state.get("server") is not self._inst:  # uninstrumented, or re-instrumented with another session
            return await call_next(ctx)
        inst = self._inst
        method = getattr(ctx, "method", "") or ""
        if method.startswith("notifications/"):
            return await call_next(ctx)
        params = getattr(ctx, "params", None) or {}
        target = params.get("name") if isinstance(params, dict) or hasattr(params, "get") else None
        target = target if isinstance(target, str) else None
        attrs: dict[str, Any] = {"mcp.method.name": method, "network.transport": "pipe"}
        if method == "tools/call":
            attrs["gen_ai.operation.name"] = "execute_tool"
            if target is not None:
                attrs["gen_ai.tool.name"] = target
        span_attrs = dict(attrs)
        if getattr(ctx, "request_id", None) is not None:
            span_attrs["jsonrpc.request.id"] = str(ctx.request_id)
        if getattr(ctx, "protocol_version", None):
            span_attrs["mcp.protocol.version"] = str(ctx.protocol_version)
        if method == "tools/call":
            captured = inst.content(params.get("arguments") or {})
            if captured is not None:
                span_attrs["gen_ai.tool.call.arguments"] = captured
        meta = getattr(ctx, "meta", None)
        carrier: dict[str, Any] = {}
        if meta:
            try:
                carrier = dict(meta) if not hasattr(meta, "model_dump") else meta.model_dump(by_alias=True)
            except Exception:
                carrier = {}
        parent = _PROPAGATOR.extract(carrier) if carrier.get("traceparent") else None
        name = f"{method} {target}" if target else method
        error_type: str | None = None
        t0 = time.perf_counter()
        with inst.tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER, attributes=span_attrs, record_exception=False, set_status_on_exception=False) as span:
            try:
                result = await call_next(ctx)
            except BaseException as exc:
                error_type = _mark_failed(span, exc)
                raise
            finally:
                metric_attrs = dict(attrs)
                if error_type is not None:
                    metric_attrs["error.type"] = error_type
                if error_type is not None:
                    inst.server_duration.record(time.perf_counter() - t0, metric_attrs)
            if method == "tools/call":
                is_error = getattr(result, "is_error", None)
                if is_error is None and isinstance(result, dict):
                    is_error = result.get("isError")
                if is_error is True:
                    span.set_attribute("error.type", "tool_error")
                    span.set_status(Status(StatusCode.ERROR, "tool_error"))
                    metric_attrs["error.type"] = "tool_error"
                captured = inst.content(tool_result_payload(result)) if result is not None and not isinstance(result, dict) else None
                if captured is not None:
                    span.set_attribute("gen_ai.tool.call.result", captured)
        inst.server_duration.record(time.perf_counter() - t0, metric_attrs)
        return result


def instrument_server(server: Any, telemetry: Any = None, capture_content: bool = False) -> Any:
    """Add the tracing middleware to an existing ``MCPServer`` or low-level ``Server``; returns it."""
    if telemetry is not None:
        inst = _Instruments(telemetry, capture_content)
        _state["server"] = inst
    else:
        inst = _state.get("server")
        if inst is None:
            raise RuntimeError("call instrument_mcp(telemetry) first, or pass telemetry")
    middleware = server.middleware
    if not any(isinstance(m, _ServerMiddleware) for m in middleware):
        # Right after the SDK's own OpenTelemetry middleware: outside request-state sealing.
        middleware.insert(min(1, len(middleware)), _ServerMiddleware(inst))
    return server


def instrument_mcp(telemetry: Any, capture_content: bool = False) -> None:
    """Trace every ``ClientSession`` and every server created from now on into ``telemetry``."""
    from mcp.client.session import ClientSession
    from mcp.server.lowlevel.server import Server

    with _lock:
        if _state.get("patched"):
            _restore()
        inst = _Instruments(telemetry, capture_content)
        orig_call = ClientSession.call_tool
        orig_list = ClientSession.list_tools
        orig_init = Server.__init__

        async def call_tool(self: Any, name: str, arguments: dict[str, Any] | None = None, *args: Any, **kwargs: Any) -> Any:
            return await _call_tool(inst, orig_call, self, name, arguments, *args, **kwargs)

        async def list_tools(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await _list_tools(inst, orig_list, self, *args, **kwargs)

        def server_init(self: Any, *args: Any, **kwargs: Any) -> None:
            orig_init(self, *args, **kwargs)
            try:
                instrument_server(self)
            except Exception:
                pass

        call_tool.__wrapped__ = orig_call  # type: ignore[attr-defined]
        list_tools.__wrapped__ = orig_list  # type: ignore[attr-defined]
        server_init.__wrapped__ = orig_init  # type: ignore[attr-defined]
        ClientSession.call_tool = call_tool  # type: ignore[method-assign]
        ClientSession.list_tools = list_tools  # type: ignore[method-assign]
        Server.__init__ = server_init  # type: ignore[method-assign]
        _state.update(patched=True, originals=(orig_call, orig_list, orig_init), server=inst, client=inst)


def _restore() -> None:
    from mcp.client.session import ClientSession
    from mcp.server.lowlevel.server import Server

    orig_call, orig_list, orig_init = _state["originals"]
    ClientSession.call_tool = orig_call  # type: ignore[method-assign]
    ClientSession.list_tools = orig_list  # type: ignore[method-assign]
    Server.__init__ = orig_init  # type: ignore[method-assign]
    _state.clear()


def uninstrument_mcp() -> None:
    """Undo :func:`instrument_mcp`; servers instrumented earlier stop recording too."""
    with _lock:
        if _state.get("patched"):
            _restore()
        _state.clear()


def is_instrumented() -> bool:
    return bool(_state.get("patched"))


class ToolBridge:
    """Call MCP tools from any thread through a ``ClientSession`` that lives on an event loop.

    ``call(name, arguments)`` blocks the calling thread (never the loop), runs ``session.call_tool``
    on the loop under the caller's current OpenTelemetry context, and returns the result's payload
    (see :func:`tool_result_payload`); a tool error raises :class:`ToolCallError`.
    """

    def __init__(self, session: Any, loop: asyncio.AbstractEventLoop | None = None, timeout_s: float = 60.0) -> None:
        self.session = session
        self.loop = loop or asyncio.get_running_loop()
        self.timeout_s = timeout_s

    def call(self, name: str, arguments: dict[str, Any] | None = None) -> Any:
        ctx = otel_context.get_current()

        async def run() -> Any:
            token = otel_context.attach(ctx)
            try:
                return await self.session.call_tool(name, arguments or {})
            finally:
                otel_context.detach(token)

        result = asyncio.run_coroutine_threadsafe(run(), self.loop).result(self.timeout_s)
        payload = tool_result_payload(result)
        if getattr(result, "is_error", False):
            raise ToolCallError(name, payload)
        return payload

    __call__ = call


class ToolCallError(RuntimeError):
    """A tool answered with ``isError``; ``payload`` is what it returned."""

    def __init__(self, tool: str, payload: Any) -> None:
        super().__init__(f"tool {tool!r} failed: {payload}")
        self.tool = tool
        self.payload = payload


def current_traceparent() -> dict[str, str]:
    """The current span's W3C headers (``traceparent`` and, when set, ``tracestate``)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier

