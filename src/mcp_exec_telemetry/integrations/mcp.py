"""Tracing for the official MCP Python SDK (``mcp`` 1.x from 1.20, and 2.x), by the MCP semantic conventions.

Two ways in, one implementation:

* ``instrument_mcp(telemetry)`` traces into a session of ours (its tracer, meter and exporters, and
  ``capture()`` in tests) and reports the application's ``list_tools`` calls as discovery queries;
* :class:`~mcp_exec_telemetry.integrations.mcp_instrumentor.McpInstrumentor`, OpenTelemetry's
  ``BaseInstrumentor`` shape (``opentelemetry-instrument python agent.py`` finds it through the
  ``opentelemetry_instrumentor`` entry point), traces into the given or the global providers.

Client (``mcp.ClientSession``), for every request it sends (``initialize``, ``tools/*``,
``resources/*``, ``prompts/*``, ``completion/complete``, ``ping``, ``logging/setLevel``, ...):
one CLIENT span ``{mcp.method.name} {target}`` (target: the tool or prompt name) and one
``mcp.client.operation.duration`` record, whether the request succeeded or failed; every
notification it sends gets a CLIENT span and a record too. Attributes: ``mcp.method.name``,
``jsonrpc.request.id``, ``mcp.protocol.version``, ``network.transport`` (``tcp`` over streamable
HTTP, ``pipe`` otherwise), ``server.address``/``server.port`` (HTTP), ``mcp.session.id`` (the
server-assigned ``Mcp-Session-Id``; stdio has none), ``gen_ai.tool.name`` with
``gen_ai.operation.name = execute_tool``, ``gen_ai.prompt.name``, ``mcp.resource.uri``; on a
JSON-RPC error ``error.type`` and ``rpc.response.status_code`` are the error code and the span
status description is the error message; a tool result with ``isError`` gives ``error.type =
tool_error``. The span's W3C context goes into the request's ``params._meta``, so the server's span
is its child. ``mcp.client.session.duration`` is recorded when the ``ClientSession`` closes.

Server (``mcp.server.lowlevel.Server``, what ``MCPServer``/``FastMCP`` build on): one SERVER span
per request with the same attributes (``client.address``/``client.port`` over HTTP), parented by
the client span found in ``params._meta``, one ``mcp.server.operation.duration`` record, and
``mcp.server.session.duration`` when the connection ends.

mcp 2.x traces itself on the *global* tracer provider (``MCP send ...`` client spans from its
dispatcher, an ``OpenTelemetryMiddleware`` server span). While instrumented, the dispatcher's span
is absorbed into ours (its request id and error attributes land on our span) and the SDK's server
middleware is replaced by ours: exactly one CLIENT and one SERVER span per request, whichever
tracer provider is global.

Only ``list_tools`` calls the application makes are discovery queries: the SDK's own refresh inside
``call_tool`` (output-schema validation of a tool it has not listed) is a ``tools/list`` request
with its span, but no query, and it is not part of the tool call's span or duration. Each tool
call ends the agent's search (``tel.discovery.end_search()``), so the hit rate sees it.

Tool arguments and results are captured on spans (``gen_ai.tool.call.arguments`` /
``gen_ai.tool.call.result``) only with ``capture_content=True``, and always scrubbed of PII by
:class:`mcp_exec_telemetry.pii.Scrubber` first; when that scrubber cannot be imported the content is
not captured at all. ``mcp.session.id`` and ``mcp.resource.uri`` stay off metrics (unbounded).

:class:`ToolBridge` lets synchronous code on other threads (the code executor's IPC proxy) call
tools through a ``ClientSession`` running on an event loop, keeping the caller's trace context.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
import time
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "MCP_DURATION_BUCKETS_S",
    "ToolBridge",
    "ToolCallError",
    "instrument_mcp",
    "instrument_server",
    "uninstrument_mcp",
    "is_instrumented",
    "tool_result_payload",
]

# The MCP semantic conventions' advice for the four mcp.* duration histograms.
MCP_DURATION_BUCKETS_S: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
CLIENT_DURATION = "mcp.client.operation.duration"
SERVER_DURATION = "mcp.server.operation.duration"
CLIENT_SESSION_DURATION = "mcp.client.session.duration"
SERVER_SESSION_DURATION = "mcp.server.session.duration"
MAX_CAPTURED_CHARS = 4096
# Methods whose params carry a resource URI (the conventions' mcp.resource.uri).
_URI_METHODS = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe", "notifications/resources/updated"})
_INVALID_PARAMS = -32602

_PROPAGATOR = TraceContextTextMapPropagator()
_lock = threading.Lock()
_state: dict[str, Any] = {}
# The client request in flight in this task: mcp 2.x's dispatcher span is absorbed into it.
_CURRENT_CALL: contextvars.ContextVar["_Call | None"] = contextvars.ContextVar("mcp_exec_call", default=None)
# Set while the application's call_tool runs: the SDK's own list_tools inside it is no discovery query.
_IN_TOOL_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("mcp_exec_in_tool_call", default=False)
# id(client write stream) -> weakref to the SDK's StreamableHTTPTransport that owns it.
_HTTP_TRANSPORTS: dict[int, Any] = {}


class _Instruments:
    """The tracer, the four duration histograms and the options of one instrumentation."""

    def __init__(self, tracer: Any, meter: Any, telemetry: Any = None, capture_content: bool = False) -> None:
        self.telemetry = telemetry
        self.tracer = tracer
        self.capture_content = capture_content
        self.scrub = _scrubber() if capture_content else None

        def histogram(name: str, description: str) -> Any:
            return meter.create_histogram(name, unit="s", description=description, explicit_bucket_boundaries_advisory=list(MCP_DURATION_BUCKETS_S))

        self.client_duration = histogram(CLIENT_DURATION, "Duration of MCP requests and notifications as observed on the sender, from send until the response or ack arrives")
        self.server_duration = histogram(SERVER_DURATION, "Duration of MCP requests as observed on the receiver, from receipt until the result is sent")
        self.client_session_duration = histogram(CLIENT_SESSION_DURATION, "Duration of MCP sessions as observed on the client")
        self.server_session_duration = histogram(SERVER_SESSION_DURATION, "Duration of MCP sessions as observed on the server")

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
    if structured is None:
        structured = getattr(result, "structuredContent", None)  # mcp 1.x field name
    if structured is not None:
        if isinstance(structured, dict) and set(structured) == {"result"}:
            return structured["result"]
        return structured
    candidates = [getattr(block, "text", None) for block in getattr(result, "content", None) or ()]
    texts = [t for t in candidates if isinstance(t, str)]
    if len(texts) == 1:
        try:
            return json.loads(texts[0])
        except ValueError:
            return texts[0]
    return texts


def _is_tool_error(result: Any) -> bool:
    if isinstance(result, dict):
        return result.get("isError") is True
    return getattr(result, "is_error", None) is True or getattr(result, "isError", None) is True


# --------------------------------------------------------------------------- shared attribute logic


def _op_attributes(method: str, params: Any) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(metric attributes, span name, span-only attributes) of one request from its method and params."""
    attrs: dict[str, Any] = {"mcp.method.name": method}
    span_only: dict[str, Any] = {}
    name = _param(params, "name") if method in ("tools/call", "prompts/get") else None
    target = name if isinstance(name, str) and name else None
    if method == "tools/call":
        attrs["gen_ai.operation.name"] = "execute_tool"
        if target is not None:
            attrs["gen_ai.tool.name"] = target
    elif method == "prompts/get" and target is not None:
        attrs["gen_ai.prompt.name"] = target
    if method in _URI_METHODS:
        uri = _param(params, "uri")
        if uri is not None:
            span_only["mcp.resource.uri"] = str(uri)
    return attrs, (f"{method} {target}" if target else method), span_only


def _param(params: Any, key: str) -> Any:
    if params is None:
        return None
    if isinstance(params, dict) or hasattr(params, "get") and not hasattr(params, "model_fields"):
        try:
            return params.get(key)
        except Exception:
            return None
    return getattr(params, key, None)


def _error_of(exc: BaseException) -> tuple[str, str | None, str]:
    """(error.type, JSON-RPC code or None, status description) of an exception."""
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    if code is not None:
        return str(code), str(code), str(getattr(error, "message", "") or "")
    if type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("pydantic"):
        # What the SDK answers on the wire (pydantic's own message carries client input).
        return str(_INVALID_PARAMS), str(_INVALID_PARAMS), "Invalid request parameters"
    return type(exc).__qualname__, None, str(exc)


def _mark_failed(span: Any, exc: BaseException) -> str:
    """Mark ``span`` failed by ``exc``: error.type (the JSON-RPC code when there is one),
    rpc.response.status_code, the JSON-RPC message as status description; returns error.type."""
    error_type, code, message = _error_of(exc)
    span.set_attribute("error.type", error_type)
    if code is not None:
        span.set_attribute("rpc.response.status_code", code)
    else:
        span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, message or error_type))
    return error_type


def _mark_error_data(span: Any, error: Any) -> str:
    """Mark ``span`` failed by a JSON-RPC ``ErrorData`` answered by a server; returns error.type."""
    raw = getattr(error, "code", None)
    code = "_OTHER" if raw is None else str(raw)
    span.set_attribute("error.type", code)
    span.set_attribute("rpc.response.status_code", code)
    span.set_status(Status(StatusCode.ERROR, str(getattr(error, "message", "") or code)))
    return code


def _with_error(metric: dict[str, Any], error_type: str | None) -> dict[str, Any]:
    """Metric attributes of a failed operation: error.type, and the JSON-RPC code when it is one."""
    if error_type is not None:
        metric["error.type"] = error_type
        if error_type.lstrip("-").isdigit():
            metric["rpc.response.status_code"] = error_type
    return metric


def _mark_tool_error(span: Any) -> str:
    span.set_attribute("error.type", "tool_error")
    span.set_status(Status(StatusCode.ERROR, "tool_error"))
    return "tool_error"


# --------------------------------------------------------------------------- client


class _Call:
    """A client request in flight: its span, its session, and whether mcp 2.x's dispatcher span
    was absorbed."""

    __slots__ = ("span", "session", "absorbed")

    def __init__(self, span: Any, session: Any = None) -> None:
        self.span = span
        self.session = session
        self.absorbed = False


def _write_stream_of(session: Any) -> Any:
    ws = getattr(session, "_write_stream", None)
    if ws is None:
        ws = getattr(getattr(session, "_dispatcher", None), "_write_stream", None)
    return ws


def _http_transport_of(session: Any) -> Any:
    ws = _write_stream_of(session)
    ref = _HTTP_TRANSPORTS.get(id(ws)) if ws is not None else None
    return ref() if ref is not None else None


def _client_connection(session: Any) -> dict[str, Any]:
    """Transport attributes of a client session: tcp plus server address over HTTP, else pipe."""
    known = getattr(session, "_mcp_exec_conn", None)  # kept once seen: the transport may be gone at close
    if known is not None:
        return dict(known)
    transport = _http_transport_of(session)
    if transport is None:
        return {"network.transport": "pipe"}
    attrs: dict[str, Any] = {"network.transport": "tcp", "network.protocol.name": "http"}
    try:
        url = urlsplit(str(transport.url))
        if url.hostname:
            attrs["server.address"] = url.hostname
            attrs["server.port"] = url.port or (443 if url.scheme == "https" else 80)
    except Exception:
        pass
    _set_quietly(session, "_mcp_exec_conn", dict(attrs))
    return attrs


def _client_session_id(session: Any) -> str | None:
    transport = _http_transport_of(session)
    sid = getattr(transport, "session_id", None) if transport is not None else getattr(session, "_mcp_exec_sse_session", None)
    return str(sid) if sid else None


async def _sse_post(original: Callable[..., Any], client: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
    """mcp 2.x's SSE client posting a message (in the context of the request that sent it): the
    session's transport is tcp to the endpoint's address, and the endpoint names the session."""
    call = _CURRENT_CALL.get()
    session = call.session if call is not None else None
    if session is not None and getattr(session, "_mcp_exec_conn", None) is None:
        try:
            parts = urlsplit(str(url))
            attrs: dict[str, Any] = {"network.transport": "tcp", "network.protocol.name": "http"}
            if parts.hostname:
                attrs["server.address"] = parts.hostname
                attrs["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
            query = parse_qs(parts.query)
            sids = query.get("session_id") or query.get("sessionId") or []
            _set_quietly(session, "_mcp_exec_conn", attrs)
            if sids and sids[0]:
                _set_quietly(session, "_mcp_exec_sse_session", sids[0])
        except Exception:
            pass
    return await original(client, method, url, *args, **kwargs)


def _protocol_version_of(result: Any) -> str | None:
    version = getattr(result, "protocol_version", None) or getattr(result, "protocolVersion", None)
    return str(version) if version else None


def _session_protocol(session: Any) -> str | None:
    version = getattr(session, "_mcp_exec_protocol", None)
    if version is None:
        version = getattr(session, "protocol_version", None)  # mcp 2.x property
        version = version if isinstance(version, str) else None
    return version


class _WithMeta:
    """A request whose dump carries the W3C trace context in ``params._meta`` (mcp 1.x, which injects none)."""

    def __init__(self, request: Any, carrier: dict[str, str]) -> None:
        self._request = request
        self._carrier = carrier

    def model_dump(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        data = self._request.model_dump(*args, **kwargs)
        params = data.get("params")
        if not isinstance(params, dict):
            params = data["params"] = {}
        meta = params.get("_meta")
        params["_meta"] = dict(meta or {}, **self._carrier)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:  # the SDK names the request type in its timeout message
        return type(self._request)


def _legacy_request(session: Any, span: Any, request: Any) -> Any:
    """mcp 1.x takes the next id synchronously and injects no trace context of its own: note the id, inject ours."""
    try:
        span.set_attribute("jsonrpc.request.id", str(session._request_id))
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return _WithMeta(request, carrier)
    except Exception:
        return request


async def _send_request(inst: _Instruments, original: Callable[..., Any], legacy: bool, self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
    """One CLIENT span and one duration record around a request the client sends."""
    try:
        model = getattr(request, "root", request)  # mcp 1.x: ClientRequest is a RootModel
        method = str(getattr(model, "method", "") or "")
        params = getattr(model, "params", None)
        attrs, name, span_only = _op_attributes(method, params)
        span_attrs = dict(attrs, **span_only)
        span_attrs.update(_client_connection(self))
        protocol = _session_protocol(self)
        if protocol:
            span_attrs["mcp.protocol.version"] = protocol
        sid = _client_session_id(self)
        if sid:
            span_attrs["mcp.session.id"] = sid
        span = inst.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=span_attrs)
        if method == "tools/call":
            captured = inst.content(_param(params, "arguments") or {})
            if captured is not None:
                span.set_attribute("gen_ai.tool.call.arguments", captured)
    except Exception:  # never break the host: send untraced
        return await original(self, request, *args, **kwargs)
    call = _Call(span, self)
    token = otel_context.attach(trace.set_span_in_context(span))
    call_token = _CURRENT_CALL.set(call)
    error_type: str | None = None
    t0 = time.perf_counter()
    try:
        if legacy:
            request = _legacy_request(self, span, request)
        result = await original(self, request, *args, **kwargs)
    except BaseException as exc:
        error_type = _mark_failed(span, exc)
        raise
    else:
        try:
            if method == "initialize":
                version = _protocol_version_of(result)
                if version:
                    _set_quietly(self, "_mcp_exec_protocol", version)
                    span.set_attribute("mcp.protocol.version", version)
            elif method == "tools/call":
                if _is_tool_error(result):
                    error_type = _mark_tool_error(span)
                else:
                    captured = inst.content(tool_result_payload(result))
                    if captured is not None:
                        span.set_attribute("gen_ai.tool.call.result", captured)
        except Exception:
            pass
        return result
    finally:
        duration = time.perf_counter() - t0
        _CURRENT_CALL.reset(call_token)
        otel_context.detach(token)
        _finish_client(inst, self, span, attrs, error_type, duration)


def _finish_client(inst: _Instruments, session: Any, span: Any, attrs: dict[str, Any], error_type: str | None, duration: float) -> None:
    try:
        conn = _client_connection(session)
        if conn.get("network.transport") == "tcp":  # known once the transport has run
            span.set_attributes(conn)
            sid = _client_session_id(session)
            if sid:
                span.set_attribute("mcp.session.id", sid)
        metric = dict(attrs, **conn)
        protocol = _session_protocol(session)
        if protocol:
            metric["mcp.protocol.version"] = protocol
        inst.client_duration.record(duration, _with_error(metric, error_type))
    except Exception:
        pass
    finally:
        span.end()


async def _send_notification(inst: _Instruments, original: Callable[..., Any], self: Any, notification: Any, *args: Any, **kwargs: Any) -> Any:
    """A CLIENT span and a duration record for a notification the client sends."""
    try:
        model = getattr(notification, "root", notification)
        method = str(getattr(model, "method", "") or "")
        attrs, name, span_only = _op_attributes(method, getattr(model, "params", None))
        span_attrs = dict(attrs, **span_only)
        span_attrs.update(_client_connection(self))
        protocol = _session_protocol(self)
        if protocol:
            span_attrs["mcp.protocol.version"] = protocol
        sid = _client_session_id(self)
        if sid:
            span_attrs["mcp.session.id"] = sid
        span = inst.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=span_attrs)
    except Exception:
        return await original(self, notification, *args, **kwargs)
    error_type: str | None = None
    t0 = time.perf_counter()
    try:
        return await original(self, notification, *args, **kwargs)
    except BaseException as exc:
        error_type = _mark_failed(span, exc)
        raise
    finally:
        _finish_client(inst, self, span, attrs, error_type, time.perf_counter() - t0)


async def _call_tool(inst: _Instruments, original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    """The application's tool call: it ends the agent's search; the SDK's list_tools inside it is no query."""
    telemetry = inst.telemetry
    if telemetry is not None:
        try:
            telemetry.discovery.end_search()
        except Exception:
            pass
    token = _IN_TOOL_CALL.set(True)
    try:
        return await original(self, *args, **kwargs)
    finally:
        _IN_TOOL_CALL.reset(token)


async def _list_tools(inst: _Instruments, original: Callable[..., Any], self: Any, *args: Any, **kwargs: Any) -> Any:
    """The application's list_tools is a discovery query around its tools/list request."""
    telemetry = inst.telemetry
    if telemetry is None or _IN_TOOL_CALL.get():
        return await original(self, *args, **kwargs)
    with telemetry.discovery.search("*", "full") as query:
        result = await original(self, *args, **kwargs)
        query.set_results(len(getattr(result, "tools", ()) or ()))
    return result


async def _client_enter(inst: _Instruments, original: Callable[..., Any], self: Any) -> Any:
    _set_quietly(self, "_mcp_exec_t0", time.perf_counter())
    return await original(self)


async def _client_exit(inst: _Instruments, original: Callable[..., Any], self: Any, exc_type: Any, exc: Any, tb: Any) -> Any:
    try:
        return await original(self, exc_type, exc, tb)
    finally:
        t0 = getattr(self, "_mcp_exec_t0", None)
        if t0 is not None:
            _set_quietly(self, "_mcp_exec_t0", None)
            try:
                attrs = _client_connection(self)
                protocol = _session_protocol(self)
                if protocol:
                    attrs["mcp.protocol.version"] = protocol
                if exc_type is not None:
                    attrs["error.type"] = exc_type.__qualname__
                inst.client_session_duration.record(time.perf_counter() - t0, attrs)
            except Exception:
                pass


def _set_quietly(obj: Any, name: str, value: Any) -> None:
    try:
        setattr(obj, name, value)
    except Exception:
        pass


async def _post_writer(original: Callable[..., Any], self: Any, client: Any, write_stream_reader: Any, read_stream_writer: Any, write_stream: Any, *args: Any, **kwargs: Any) -> Any:
    """Remember which HTTP transport owns a client write stream (transport, address, session id)."""
    key = id(write_stream)
    _HTTP_TRANSPORTS[key] = weakref.ref(self)
    try:
        return await original(self, client, write_stream_reader, read_stream_writer, write_stream, *args, **kwargs)
    finally:
        _HTTP_TRANSPORTS.pop(key, None)


def _absorbing_otel_span(inst: _Instruments) -> Callable[..., Any]:
    """Stand-in for mcp 2.x's dispatcher ``otel_span``: the SDK's CLIENT span becomes ours.

    Inside a traced client request it yields that request's span (the SDK adds the request id and
    its error attributes to it, and injects its context into ``params._meta``); for a request sent
    without one (a server asking its client, e.g. ``sampling/createMessage``) it opens a CLIENT span
    by the conventions on our tracer.
    """

    @contextmanager
    def otel_span(name: str, *, kind: Any, attributes: dict[str, Any] | None = None, context: Any = None, record_exception: bool = True, set_status_on_exception: bool = True) -> Iterator[Any]:
        attributes = dict(attributes or {})
        call = _CURRENT_CALL.get()
        if call is not None and not call.absorbed and kind == SpanKind.CLIENT:
            call.absorbed = True
            request_id = attributes.get("jsonrpc.request.id")
            if request_id is not None:
                call.span.set_attribute("jsonrpc.request.id", str(request_id))
            yield call.span
            return
        method = str(attributes.get("mcp.method.name", "") or "")
        target = name.removeprefix(f"MCP send {method}").strip() if name.startswith("MCP send ") else ""
        metric, span_name, _ = _op_attributes(method, {"name": target} if target else None)
        span_name = f"{method} {target}" if target else method or name
        t0 = time.perf_counter()
        error_type: str | None = None
        with inst.tracer.start_as_current_span(span_name, kind=kind, attributes=dict(attributes, **metric), context=context, record_exception=False, set_status_on_exception=False) as span:
            try:
                yield span
            except BaseException as exc:
                error_type = _mark_failed(span, exc)
                raise
            finally:
                if error_type is None and span.is_recording():
                    error_type = (getattr(span, "attributes", None) or {}).get("error.type")
                inst.client_duration.record(time.perf_counter() - t0, _with_error(metric, error_type))

    return otel_span


# --------------------------------------------------------------------------- server, mcp 2.x


class _ServerMiddleware:
    """A server middleware (mcp 2.x): one SERVER span per inbound request, continuing the client's trace."""

    def __init__(self, inst: _Instruments) -> None:
        self._inst = inst

    async def __call__(self, ctx: Any, call_next: Callable[[Any], Any]) -> Any:
        if _state.get("server") is not self._inst:  # uninstrumented, or re-instrumented with another session
            return await call_next(ctx)
        request_id = getattr(ctx, "request_id", None)
        method = str(getattr(ctx, "method", "") or "")
        if request_id is None:  # notifications: no span, no record (they have no response to time)
            return await call_next(ctx)
        inst = self._inst
        try:
            params = getattr(ctx, "params", None) or {}
            attrs, name, span_only = _op_attributes(method, params)
            connection = getattr(getattr(ctx, "session", None), "_connection", None)
            protocol = getattr(ctx, "protocol_version", None) or getattr(connection, "protocol_version", None)
            conn = _server_connection(getattr(ctx, "request", None))
            attrs.update(conn.metric)
            if protocol:
                attrs["mcp.protocol.version"] = str(protocol)
            span_attrs = dict(attrs, **span_only, **conn.span)
            span_attrs["jsonrpc.request.id"] = str(request_id)
            sid = getattr(connection, "session_id", None) or conn.session_id
            if sid:
                span_attrs["mcp.session.id"] = str(sid)
            if method == "tools/call":
                captured = inst.content(_param(params, "arguments") or {})
                if captured is not None:
                    span_attrs["gen_ai.tool.call.arguments"] = captured
            parent = _extract(getattr(ctx, "meta", None))
            if connection is not None:
                _watch_connection(inst, connection, attrs)
            span = inst.tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=span_attrs)
        except Exception:
            return await call_next(ctx)
        token = otel_context.attach(trace.set_span_in_context(span))
        error_type: str | None = None
        t0 = time.perf_counter()
        try:
            result = await call_next(ctx)
        except BaseException as exc:
            error_type = _mark_failed(span, exc)
            raise
        else:
            try:
                if method == "tools/call":
                    if _is_tool_error(result):
                        error_type = _mark_tool_error(span)
                    elif not isinstance(result, dict):
                        captured = inst.content(tool_result_payload(result))
                        if captured is not None:
                            span.set_attribute("gen_ai.tool.call.result", captured)
            except Exception:
                pass
            return result
        finally:
            duration = time.perf_counter() - t0
            otel_context.detach(token)
            try:
                inst.server_duration.record(duration, _with_error(attrs, error_type))
            finally:
                span.end()


class _ServerConn:
    __slots__ = ("metric", "span", "session_id")

    def __init__(self, metric: dict[str, Any], span: dict[str, Any], session_id: str | None) -> None:
        self.metric, self.span, self.session_id = metric, span, session_id


def _server_connection(http_request: Any) -> _ServerConn:
    """Transport attributes seen by a server: the HTTP request when there is one (tcp), else pipe."""
    if http_request is None:
        return _ServerConn({"network.transport": "pipe"}, {}, None)
    span: dict[str, Any] = {}
    sid = None
    try:
        client = getattr(http_request, "client", None)
        if client is not None and getattr(client, "host", None):
            span["client.address"] = client.host
            if getattr(client, "port", None):
                span["client.port"] = int(client.port)
        headers = getattr(http_request, "headers", None)
        if headers is not None:
            sid = headers.get("mcp-session-id")
    except Exception:
        pass
    return _ServerConn({"network.transport": "tcp", "network.protocol.name": "http"}, span, sid)


def _watch_connection(inst: _Instruments, connection: Any, attrs: dict[str, Any]) -> None:
    """Record mcp.server.session.duration when an mcp 2.x connection closes (once per connection)."""
    state = getattr(connection, "state", None)
    if not isinstance(state, dict) or "mcp_exec.t0" in state:
        return
    t0 = time.perf_counter()
    state["mcp_exec.t0"] = t0
    session_attrs: dict[str, Any] = {k: attrs[k] for k in ("network.transport", "network.protocol.name") if k in attrs}

    def closed() -> None:
        version = getattr(connection, "protocol_version", None)
        if version:
            session_attrs["mcp.protocol.version"] = str(version)
        inst.server_session_duration.record(time.perf_counter() - t0, session_attrs)

    connection.exit_stack.callback(closed)


def _extract(meta: Any) -> Any:
    """The remote parent carried in ``params._meta`` (W3C traceparent), or None."""
    if not meta:
        return None
    try:
        carrier = meta.model_dump(by_alias=True) if hasattr(meta, "model_dump") else dict(meta)
    except Exception:
        return None
    if not carrier.get("traceparent"):
        return None
    ctx = _PROPAGATOR.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


def instrument_server(server: Any, telemetry: Any = None, capture_content: bool = False) -> Any:
    """Trace an existing server (``MCPServer``, ``FastMCP`` or a low-level ``Server``); returns it.

    With mcp 2.x the tracing middleware replaces the SDK's own ``OpenTelemetryMiddleware`` in the
    server's chain; with mcp 1.x every server is traced once :func:`instrument_mcp` has run, and
    this only checks that it has.
    """
    if telemetry is not None:
        instrument_mcp(telemetry, capture_content=capture_content)
    inst = _state.get("server")
    if inst is None:
        raise RuntimeError("call instrument_mcp(telemetry) first, or pass telemetry")
    low = getattr(server, "_lowlevel_server", server)
    middleware = getattr(low, "middleware", None)
    if isinstance(middleware, list):
        _install_middleware(middleware, inst)
    return server


def _install_middleware(middleware: list[Any], inst: _Instruments) -> None:
    mine = [m for m in middleware if isinstance(m, _ServerMiddleware)]
    for m in mine:
        if m._inst is not inst:
            m._inst = inst
    if mine:
        return
    for i, m in enumerate(middleware):
        if type(m).__name__ == "OpenTelemetryMiddleware":
            middleware[i] = _ServerMiddleware(inst)  # replace the SDK's span: one SERVER span per request
            return
    middleware.insert(0, _ServerMiddleware(inst))


# --------------------------------------------------------------------------- server, mcp 1.x


async def _legacy_received_request(inst: _Instruments, original: Callable[..., Any], self: Any, responder: Any) -> Any:
    """mcp 1.x: open the SERVER span when a request arrives; it ends when the response is sent."""
    if _state.get("server") is inst:
        try:
            _legacy_start(inst, self, responder)
        except Exception:
            pass
    try:
        return await original(self, responder)
    except BaseException as exc:
        _legacy_end(responder, exc=exc)
        raise


def _legacy_start(inst: _Instruments, session: Any, responder: Any) -> None:
    request = getattr(responder.request, "root", responder.request)
    method = str(getattr(request, "method", "") or "")
    params = getattr(request, "params", None)
    attrs, name, span_only = _op_attributes(method, params)
    metadata = getattr(responder, "message_metadata", None)
    conn = _server_connection(getattr(metadata, "request_context", None))
    attrs.update(conn.metric)
    protocol = getattr(session, "_mcp_exec_protocol", None)
    if protocol:
        attrs["mcp.protocol.version"] = protocol
    span_attrs = dict(attrs, **span_only, **conn.span)
    span_attrs["jsonrpc.request.id"] = str(responder.request_id)
    _set_quietly(session, "_mcp_exec_transport", conn.metric["network.transport"])
    if conn.session_id:
        span_attrs["mcp.session.id"] = conn.session_id
    if method == "tools/call":
        captured = inst.content(_param(params, "arguments") or {})
        if captured is not None:
            span_attrs["gen_ai.tool.call.arguments"] = captured
    meta = getattr(params, "meta", None) if params is not None else None
    parent = _extract(meta)
    span = inst.tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=span_attrs)
    original_respond = responder.respond

    async def respond(response: Any) -> None:
        _legacy_result(inst, session, responder, method, response)
        try:
            await original_respond(response)
        finally:
            _legacy_end(responder)

    responder._mcp_exec = (inst, span, attrs, time.perf_counter(), [None])
    responder.respond = respond


def _legacy_result(inst: _Instruments, session: Any, responder: Any, method: str, response: Any) -> None:
    entry = getattr(responder, "_mcp_exec", None)
    if entry is None:
        return
    _, span, _, _, error = entry
    try:
        result = getattr(response, "root", response)
        if type(result).__name__ == "ErrorData":
            error[0] = _mark_error_data(span, result)
        elif method == "initialize":
            version = _protocol_version_of(result)
            if version:
                _set_quietly(session, "_mcp_exec_protocol", version)
                span.set_attribute("mcp.protocol.version", version)
                entry[2]["mcp.protocol.version"] = version
        elif method == "tools/call":
            if _is_tool_error(result):
                error[0] = _mark_tool_error(span)
            else:
                captured = inst.content(tool_result_payload(result))
                if captured is not None:
                    span.set_attribute("gen_ai.tool.call.result", captured)
    except Exception:
        pass


def _legacy_end(responder: Any, exc: BaseException | None = None) -> None:
    entry = getattr(responder, "_mcp_exec", None)
    if entry is None:
        return
    responder._mcp_exec = None
    inst, span, attrs, t0, error = entry
    try:
        if exc is not None and error[0] is None:
            error[0] = _mark_failed(span, exc)
        inst.server_duration.record(time.perf_counter() - t0, _with_error(dict(attrs), error[0]))
    except Exception:
        pass
    finally:
        span.end()


async def _legacy_handle_request(original: Callable[..., Any], self: Any, message: Any, *args: Any, **kwargs: Any) -> Any:
    """mcp 1.x: run the handler under the request's SERVER span (so its own spans nest)."""
    entry = getattr(message, "_mcp_exec", None)
    token = otel_context.attach(trace.set_span_in_context(entry[1])) if entry is not None else None
    try:
        return await original(self, message, *args, **kwargs)
    except BaseException as exc:
        _legacy_end(message, exc=exc)
        raise
    finally:
        if token is not None:
            otel_context.detach(token)
        if entry is not None and getattr(message, "_mcp_exec", None) is not None and getattr(message, "_completed", False):
            _legacy_end(message)


async def _legacy_server_enter(inst: _Instruments, original: Callable[..., Any], self: Any) -> Any:
    _set_quietly(self, "_mcp_exec_t0", time.perf_counter())
    return await original(self)


async def _legacy_server_exit(inst: _Instruments, original: Callable[..., Any], self: Any, exc_type: Any, exc: Any, tb: Any) -> Any:
    try:
        return await original(self, exc_type, exc, tb)
    finally:
        t0 = getattr(self, "_mcp_exec_t0", None)
        if t0 is not None and _state.get("server") is inst:
            _set_quietly(self, "_mcp_exec_t0", None)
            attrs: dict[str, Any] = {"network.transport": getattr(self, "_mcp_exec_transport", "pipe")}
            if attrs["network.transport"] == "tcp":
                attrs["network.protocol.name"] = "http"
            protocol = getattr(self, "_mcp_exec_protocol", None)
            if protocol:
                attrs["mcp.protocol.version"] = protocol
            if exc_type is not None:
                attrs["error.type"] = exc_type.__qualname__
            try:
                inst.server_session_duration.record(time.perf_counter() - t0, attrs)
            except Exception:
                pass


# --------------------------------------------------------------------------- patching


class _Patches:
    """Class attributes replaced while instrumented, and how to put each back."""

    def __init__(self) -> None:
        self._undo: list[tuple[Any, str, Any, bool]] = []

    def replace(self, owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        own = name in vars(owner)
        original = getattr(owner, name)
        replacement = make(original)
        try:
            replacement.__wrapped__ = original
        except Exception:
            pass
        setattr(owner, name, replacement)
        self._undo.append((owner, name, original, own))

    def restore(self) -> None:
        for owner, name, original, own in reversed(self._undo):
            if own:
                setattr(owner, name, original)
            else:
                try:
                    delattr(owner, name)
                except AttributeError:
                    pass
        self._undo.clear()


def mcp_major() -> int:
    """The installed MCP SDK's major version (1 or 2)."""
    from importlib.metadata import version

    return int(version("mcp").split(".")[0])


def _install(inst: _Instruments) -> _Patches:
    from mcp.client.session import ClientSession

    legacy = mcp_major() < 2
    patches = _Patches()

    def method(fn: Callable[..., Any], *bound: Any) -> Callable[[Any], Any]:
        def make(original: Callable[..., Any]) -> Callable[..., Any]:
            async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                return await fn(*bound[:1], original, *bound[1:], self, *args, **kwargs)

            return wrapper

        return make

    patches.replace(ClientSession, "send_request", method(_send_request, inst, legacy))
    patches.replace(ClientSession, "send_notification", method(_send_notification, inst))
    patches.replace(ClientSession, "call_tool", method(_call_tool, inst))
    patches.replace(ClientSession, "list_tools", method(_list_tools, inst))
    patches.replace(ClientSession, "__aenter__", method(_client_enter, inst))
    patches.replace(ClientSession, "__aexit__", method(_client_exit, inst))
    try:
        from mcp.client.streamable_http import StreamableHTTPTransport

        def make_post_writer(original: Callable[..., Any]) -> Callable[..., Any]:
            async def post_writer(self: Any, *args: Any, **kwargs: Any) -> Any:
                return await _post_writer(original, self, *args, **kwargs)

            return post_writer

        patches.replace(StreamableHTTPTransport, "post_writer", make_post_writer)
    except ImportError:  # pragma: no cover - every supported version has it
        pass
    try:  # mcp 2.x's SSE client posts through this module-level helper (mcp 1.x posts inline: pipe)
        from mcp.client import sse as sse_module

        if hasattr(sse_module, "request_within_origin"):

            def make_sse_post(original: Callable[..., Any]) -> Callable[..., Any]:
                async def sse_post(client: Any, method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
                    return await _sse_post(original, client, method, url, *args, **kwargs)

                return sse_post

            patches.replace(sse_module, "request_within_origin", make_sse_post)
    except ImportError:  # pragma: no cover - the SSE client's dependencies are missing
        pass

    if legacy:
        from mcp.server.lowlevel.server import Server
        from mcp.server.session import ServerSession

        patches.replace(ServerSession, "_received_request", method(_legacy_received_request, inst))
        patches.replace(ServerSession, "__aenter__", method(_legacy_server_enter, inst))
        patches.replace(ServerSession, "__aexit__", method(_legacy_server_exit, inst))

        def make_handle(original: Callable[..., Any]) -> Callable[..., Any]:
            async def _handle_request(self: Any, message: Any, *args: Any, **kwargs: Any) -> Any:
                return await _legacy_handle_request(original, self, message, *args, **kwargs)

            return _handle_request

        patches.replace(Server, "_handle_request", make_handle)
    else:
        import mcp.shared.jsonrpc_dispatcher as dispatcher
        from mcp.server.lowlevel.server import Server

        patches.replace(dispatcher, "otel_span", lambda original: _absorbing_otel_span(inst))

        def make_init(original: Callable[..., Any]) -> Callable[..., Any]:
            def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)
                try:
                    if isinstance(getattr(self, "middleware", None), list) and _state.get("server") is not None:
                        _install_middleware(self.middleware, _state["server"])
                except Exception:
                    pass

            return __init__

        patches.replace(Server, "__init__", make_init)
    return patches


def _instrument(inst: _Instruments) -> None:
    with _lock:
        if _state.get("patches") is not None:
            _state["patches"].restore()
        _state.clear()
        _state["server"] = inst  # before patching: servers built from now on pick it up
        _state["patches"] = _install(inst)
        _state["client"] = inst


def instrument_mcp(telemetry: Any, capture_content: bool = False) -> None:
    """Trace every ``ClientSession`` and every server from now on into ``telemetry``.

    The application's ``list_tools`` calls become discovery queries and each tool call ends the
    search. Calling it again re-targets the instrumentation to the new session.
    """
    _instrument(_Instruments(telemetry.tracer, telemetry.meter, telemetry, capture_content))


def uninstrument_mcp() -> None:
    """Undo :func:`instrument_mcp` (or ``McpInstrumentor().instrument()``); servers stop recording too."""
    with _lock:
        patches = _state.get("patches")
        if patches is not None:
            patches.restore()
        _state.clear()


def is_instrumented() -> bool:
    return _state.get("patches") is not None


# --------------------------------------------------------------------------- tool bridge


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
        if _is_tool_error(result):
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
