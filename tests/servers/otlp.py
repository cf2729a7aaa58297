"""An in-process OTLP receiver: the test stand-in for an OpenTelemetry Collector.

No Collector binary can be installed here, so ``OtlpReceiver`` speaks the real
wire protocols instead: a grpcio server implementing the OTLP
MetricsService/TraceService/LogsService ``Export`` RPCs, and an HTTP server
accepting OTLP/HTTP protobuf POSTs on ``/v1/metrics``, ``/v1/traces`` and
``/v1/logs`` (plain, gzip or deflate bodies). Both bind free 127.0.0.1 ports.

Every accepted request is decoded and kept, so tests can assert what a real
exporter actually sent. ``mode`` switches failure behaviour at runtime:
``"ok"`` stores and answers success, ``"unavailable"`` answers HTTP 503 / gRPC
UNAVAILABLE without storing, ``"hang"`` accepts and never answers until the mode
changes or the receiver stops (stopping releases hung handlers at once).

Example::

    with OtlpReceiver() as rx:
        exporter = OTLPMetricExporter(endpoint=rx.grpc_endpoint, insecure=True)
        ...
        point = rx.wait_for(lambda: rx.latest("requests", {"route": "/"}))
        assert point.value == 3
"""

from __future__ import annotations

import contextlib
import gzip
import select
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from ._util import refused_endpoint as refused_endpoint  # re-exported for convenience

T = TypeVar("T")

Signal = Literal["metrics", "traces", "logs"]
Transport = Literal["grpc", "http"]
Mode = Literal["ok", "unavailable", "hang"]
_MODES: frozenset[str] = frozenset({"ok", "unavailable", "hang"})

_REQUEST_TYPES: dict[str, type[Message]] = {
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
_RESPONSE_TYPES: dict[str, type[Message]] = {
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}
_HTTP_PATHS: dict[str, Signal] = {"/v1/metrics": "metrics", "/v1/traces": "traces", "/v1/logs": "logs"}
_MAX_BODY = 64 * 1024 * 1024


# --------------------------------------------------------------------------- decoded views


@dataclass
class ReceivedRequest:
    """One stored export request, as received."""

    signal: Signal
    transport: Transport
    request: Any  # Export{Metrics,Trace,Logs}ServiceRequest
    raw: bytes  # serialized (decompressed) protobuf body
    headers: dict[str, str]  # HTTP headers or gRPC metadata, keys lower-cased
    index: int  # arrival order across all signals, from 0 (never reused, even after clear())
    received_at: float  # time.time()


@dataclass
class SpanEvent:
    """A span event with plain-Python attributes."""

    name: str
    attributes: dict[str, Any]
    time_unix_nano: int


@dataclass
class SpanLink:
    """A span link; ids are lower-case hex strings."""

    trace_id: str
    span_id: str
    attributes: dict[str, Any]


@dataclass
class Span:
    """A received span, flattened. Ids are lower-case hex; ``parent_span_id`` is None for roots.

    ``kind`` is ``internal|server|client|producer|consumer|unspecified`` (compare with
    ``SpanKind.X.name.lower()``); ``status_code`` is ``unset|ok|error``.
    """

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    attributes: dict[str, Any]
    events: list[SpanEvent]
    links: list[SpanLink]
    status_code: str
    status_description: str
    start_time_unix_nano: int
    end_time_unix_nano: int
    resource: dict[str, Any]
    scope_name: str
    scope_version: str
    dropped_attributes_count: int
    dropped_events_count: int
    transport: Transport
    request_index: int


@dataclass
class LogRecord:
    """A received log record, flattened. Ids are lower-case hex or None when absent."""

    body: Any
    severity_number: int
    severity_text: str
    attributes: dict[str, Any]
    trace_id: str | None
    span_id: str | None
    time_unix_nano: int
    observed_time_unix_nano: int
    event_name: str
    resource: dict[str, Any]
    scope_name: str
    transport: Transport
    request_index: int


@dataclass
class MetricPoint:
    """One data point of a received metric, flattened.

    ``kind`` is ``sum|gauge|histogram|exponential_histogram|summary``. Sums and
    gauges set ``value`` (int or float as sent); histograms set ``count``, ``sum``,
    ``bucket_counts``, ``explicit_bounds``, ``min``, ``max`` (None when not sent).
    ``temporality`` is ``cumulative|delta`` for sums and histograms, else None;
    ``is_monotonic`` is set for sums only.
    """

    name: str
    description: str
    unit: str
    kind: str
    attributes: dict[str, Any]
    value: int | float | None = None
    count: int | None = None
    sum: float | None = None
    bucket_counts: list[int] = field(default_factory=list)
    explicit_bounds: list[float] = field(default_factory=list)
    min: float | None = None
    max: float | None = None
    quantiles: dict[float, float] = field(default_factory=dict)  # summaries only
    is_monotonic: bool | None = None
    temporality: str | None = None
    start_time_unix_nano: int = 0
    time_unix_nano: int = 0
    exemplar_count: int = 0
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    transport: Transport = "grpc"
    request_index: int = 0


def any_value(value: common_pb2.AnyValue) -> Any:
    """Convert an OTLP ``AnyValue`` to plain Python (lists, dicts, bytes, None if empty)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    return getattr(value, which)


def attributes_dict(kvs: Any) -> dict[str, Any]:
    """Convert repeated ``KeyValue`` to a plain dict."""
    return {kv.key: any_value(kv.value) for kv in kvs}


def _hex(raw: bytes) -> str | None:
    return raw.hex() if raw else None


def _enum_short(full: str, prefix: str) -> str:
    return full[len(prefix) :].lower() if full.startswith(prefix) else full.lower()


# --------------------------------------------------------------------------- gRPC services


def _make_servicer(receiver: OtlpReceiver, signal: Signal, base: type) -> object:
    """Build a servicer whose Export stores the request via ``receiver``."""

    def Export(self: object, request: Message, context: grpc.ServicerContext) -> Message:  # noqa: N802
        headers = {k.lower(): v if isinstance(v, str) else repr(v) for k, v in context.invocation_metadata()}
        outcome = receiver._handle(signal, "grpc", request, request.SerializeToString(), headers, context.is_active)
        if outcome == "ok":
            return _RESPONSE_TYPES[signal]()
        if outcome == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "mcp-exec test receiver: mode=unavailable")
        context.abort(grpc.StatusCode.UNAVAILABLE, "mcp-exec test receiver: stopped or client gone")
        raise AssertionError("unreachable")  # context.abort raises

    return type(f"_{signal.title()}Servicer", (base,), {"Export": Export})()


# --------------------------------------------------------------------------- HTTP server


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    receiver: OtlpReceiver

    def __init__(self, receiver: OtlpReceiver) -> None:
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _HttpHandler)

    def close_connections(self) -> None:
        """Shut down every open client socket so blocked handler threads return."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def _client_alive(conn: socket.socket) -> bool:
    """True unless the peer has closed the connection (checked without consuming data)."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        if not readable:
            return True
        return conn.recv(1, socket.MSG_PEEK) != b""
    except (OSError, ValueError):
        return False


class _HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def _reply(self, status: int, body: bytes = b"", content_type: str = "text/plain") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError(f"body too large: {length}")
        return self.rfile.read(length)

    def do_GET(self) -> None:
        self._reply(405, b"OTLP receiver: use POST")

    def do_POST(self) -> None:
        try:
            body = self._read_body()
        except (OSError, ValueError) as err:
            self.close_connection = True
            self._reply(400, f"bad body: {err}".encode())
            return
        signal: Signal | None = _HTTP_PATHS.get(self.path.split("?", 1)[0].rstrip("/"))
        if signal is None:
            self._reply(404, f"unknown OTLP path {self.path!r}".encode())
            return
        if "json" in self.headers.get("Content-Type", "").lower():
            self._reply(415, b"this test receiver accepts only application/x-protobuf")
            return
        encoding = self.headers.get("Content-Encoding", "").strip().lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, -zlib.MAX_WBITS)
            elif encoding not in ("", "identity"):
                self._reply(415, f"unsupported Content-Encoding {encoding!r}".encode())
                return
            request = _REQUEST_TYPES[signal]()
            request.ParseFromString(body)
        except (OSError, EOFError, zlib.error, DecodeError) as err:
            self._reply(400, f"cannot decode body: {err}".encode())
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        conn = self.connection
        outcome = self.server.receiver._handle(signal, "http", request, body, headers, lambda: _client_alive(conn))
        if outcome == "ok":
            self._reply(200, _RESPONSE_TYPES[signal]().SerializeToString(), "application/x-protobuf")
        elif outcome == "unavailable":
            self._reply(503, b"mcp-exec test receiver: mode=unavailable")
        else:  # stopped or client gone: drop the connection without an answer
            self.close_connection = True


# --------------------------------------------------------------------------- receiver


class OtlpReceiver:
    """OTLP gRPC + HTTP receiver on free 127.0.0.1 ports that records what it receives.

    Use as a context manager (or ``start()``/``stop()``). Thread-safe.
    """

    def __init__(self, *, grpc_enabled: bool = True, http_enabled: bool = True, max_workers: int = 16) -> None:
        self._grpc_enabled = grpc_enabled
        self._http_enabled = http_enabled
        self._max_workers = max_workers
        self._cond = threading.Condition()
        self._records: list[ReceivedRequest] = []
        self._next_index = 0
        self._mode: Mode = "ok"
        self._stopping = False
        self._counts: Counter[str] = Counter()
        self._grpc_server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._grpc_port: int | None = None
        self._http_server: _HttpServer | None = None
        self._http_thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> OtlpReceiver:
        """Bind both servers and start serving (everything is torn down again if that fails)."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self._grpc_enabled:
            self._executor = futures.ThreadPoolExecutor(max_workers=self._max_workers, thread_name_prefix="otlp-grpc")
            server = grpc.server(
                self._executor,
                options=[("grpc.max_receive_message_length", _MAX_BODY), ("grpc.so_reuseport", 0)],
            )
            metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
                _make_servicer(self, "metrics", metrics_service_pb2_grpc.MetricsServiceServicer), server
            )
            trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
                _make_servicer(self, "traces", trace_service_pb2_grpc.TraceServiceServicer), server
            )
            logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
                _make_servicer(self, "logs", logs_service_pb2_grpc.LogsServiceServicer), server
            )
            self._grpc_port = server.add_insecure_port("127.0.0.1:0")
            if not self._grpc_port:
                raise RuntimeError("could not bind a gRPC port on 127.0.0.1")
            server.start()
            self._grpc_server = server
        if self._http_enabled:
            self._http_server = _HttpServer(self)
            self._http_thread = threading.Thread(
                target=self._http_server.serve_forever, kwargs={"poll_interval": 0.05}, name="otlp-http", daemon=True
            )
            self._http_thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop both servers, releasing hung handlers; returns within about ``timeout`` s."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        if self._grpc_server is not None:
            self._grpc_server.stop(grace=None).wait(timeout)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.close_connections()
            self._http_server.server_close()
        if self._http_thread is not None:
            self._http_thread.join(timeout)

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- endpoints

    @property
    def grpc_endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` for OTLP gRPC exporters (use ``insecure=True``)."""
        if self._grpc_port is None:
            raise RuntimeError("gRPC receiver not started")
        return f"http://127.0.0.1:{self._grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """Base URL ``http://127.0.0.1:PORT``; signal URLs are ``{base}/v1/metrics`` etc."""
        if self._http_server is None:
            raise RuntimeError("HTTP receiver not started")
        return f"http://127.0.0.1:{self._http_server.server_address[1]}"

    def http_url(self, signal: Signal) -> str:
        """Full OTLP/HTTP URL for ``signal`` (``metrics``, ``traces`` or ``logs``)."""
        return f"{self.http_endpoint}/v1/{signal}"

    @staticmethod
    def refused_endpoint() -> str:
        """``http://127.0.0.1:PORT`` with nothing listening."""
        return refused_endpoint()

    # ----------------------------------------------------------------- fault mode

    @property
    def mode(self) -> Mode:
        """``"ok"``, ``"unavailable"`` or ``"hang"``; settable at any time."""
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in _MODES:
            raise ValueError(f"mode must be one of {sorted(_MODES)}, not {value!r}")
        with self._cond:
            self._mode = value
            self._cond.notify_all()

    def stats(self) -> dict[str, int]:
        """Counters: ``accepted``, ``rejected`` (unavailable), ``hung``, ``abandoned`` (client
        left or receiver stopped while hung), plus ``<outcome>.<signal>.<transport>``."""
        with self._cond:
            return dict(self._counts)

    def _count(self, outcome: str, signal: str, transport: str) -> None:
        self._counts[outcome] += 1
        self._counts[f"{outcome}.{signal}.{transport}"] += 1

    def _handle(
        self,
        signal: Signal,
        transport: Transport,
        request: Message,
        raw: bytes,
        headers: dict[str, str],
        client_alive: Callable[[], bool],
    ) -> Literal["ok", "unavailable", "gone"]:
        """Apply the current mode to one decoded request; store it if accepted."""
        with self._cond:
            hung = False
            while not self._stopping and self._mode == "hang":
                if not hung:
                    hung = True
                    self._count("hung", signal, transport)
                self._cond.wait(0.05)
                if not client_alive():
                    self._count("abandoned", signal, transport)
                    return "gone"
            if self._stopping:
                if hung:
                    self._count("abandoned", signal, transport)
                return "gone"
            if self._mode == "unavailable":
                self._count("rejected", signal, transport)
                return "unavailable"
            record = ReceivedRequest(
                signal=signal,
                transport=transport,
                request=request,
                raw=raw,
                headers=headers,
                index=self._next_index,
                received_at=time.time(),
            )
            self._next_index += 1
            self._records.append(record)
            self._count("accepted", signal, transport)
            self._cond.notify_all()
            return "ok"

    # ----------------------------------------------------------------- raw access

    def requests(self, signal: Signal | None = None) -> list[ReceivedRequest]:
        """All stored requests in arrival order, optionally of one signal."""
        with self._cond:
            return [r for r in self._records if signal is None or r.signal == signal]

    def metric_requests(self) -> list[ReceivedRequest]:
        """Stored ExportMetricsServiceRequests (``.request``) with their ``.transport``."""
        return self.requests("metrics")

    def trace_requests(self) -> list[ReceivedRequest]:
        """Stored ExportTraceServiceRequests (``.request``) with their ``.transport``."""
        return self.requests("traces")

    def log_requests(self) -> list[ReceivedRequest]:
        """Stored ExportLogsServiceRequests (``.request``) with their ``.transport``."""
        return self.requests("logs")

    def raw_bytes(self) -> bytes:
        """All stored request bodies (decompressed protobuf) concatenated, to search for strings."""
        with self._cond:
            return b"".join(r.raw for r in self._records)

    def clear(self) -> None:
        """Forget every stored request and reset the counters (the mode is kept)."""
        with self._cond:
            self._records.clear()
            self._counts.clear()

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:
        """Wait until ``predicate()`` returns something truthy and return it.

        Re-evaluated whenever a request arrives (and every 50 ms). Raises
        ``TimeoutError`` with a summary of what was received.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"OtlpReceiver.wait_for timed out after {timeout:.1f}s; {self.summary()}")
            with self._cond:
                self._cond.wait(min(remaining, 0.05))

    def wait_for_spans(self, count: int = 1, name: str | None = None, timeout: float = 10.0) -> list[Span]:
        """Wait until at least ``count`` spans (named ``name``, if given) arrived; return them all."""

        def enough() -> list[Span] | None:
            found = self.spans(name)
            return found if len(found) >= count else None

        return self.wait_for(enough, timeout)

    def wait_for_metric(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        predicate: Callable[[MetricPoint], bool] | None = None,
        timeout: float = 10.0,
    ) -> MetricPoint:
        """Wait until ``latest(name, attributes)`` exists (and satisfies ``predicate``); return it.

        Example: ``rx.wait_for_metric("calls", {"tool": "x"}, lambda p: p.value >= 3)``.
        """

        def check() -> MetricPoint | None:
            point = self.latest(name, attributes)
            if point is None or (predicate is not None and not predicate(point)):
                return None
            return point

        return self.wait_for(check, timeout)

    def summary(self) -> str:
        """Short human-readable description of what was received, for error messages."""
        with self._cond:
            by_signal = Counter(f"{r.signal}/{r.transport}" for r in self._records)
            counts = dict(self._counts)
        names = sorted({p.name for p in self.metric_points()})
        spans = sorted({s.name for s in self.spans()})
        return f"mode={self._mode} requests={dict(by_signal)} counts={counts} metrics={names} spans={spans}"

    # ----------------------------------------------------------------- flattened views

    def spans(self, name: str | None = None) -> list[Span]:
        """Every received span in arrival order, optionally only those named ``name``."""
        out: list[Span] = []
        for rec in self.trace_requests():
            for rs in rec.request.resource_spans:
                resource = attributes_dict(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        if name is not None and s.name != name:
                            continue
                        out.append(
                            Span(
                                name=s.name,
                                kind=_enum_short(trace_pb2.Span.SpanKind.Name(s.kind), "SPAN_KIND_"),
                                trace_id=s.trace_id.hex(),
                                span_id=s.span_id.hex(),
                                parent_span_id=_hex(s.parent_span_id),
                                attributes=attributes_dict(s.attributes),
                                events=[
                                    SpanEvent(e.name, attributes_dict(e.attributes), e.time_unix_nano) for e in s.events
                                ],
                                links=[
                                    SpanLink(lk.trace_id.hex(), lk.span_id.hex(), attributes_dict(lk.attributes))
                                    for lk in s.links
                                ],
                                status_code=_enum_short(
                                    trace_pb2.Status.StatusCode.Name(s.status.code), "STATUS_CODE_"
                                ),
                                status_description=s.status.message,
                                start_time_unix_nano=s.start_time_unix_nano,
                                end_time_unix_nano=s.end_time_unix_nano,
                                resource=resource,
                                scope_name=ss.scope.name,
                                scope_version=ss.scope.version,
                                dropped_attributes_count=s.dropped_attributes_count,
                                dropped_events_count=s.dropped_events_count,
                                transport=rec.transport,
                                request_index=rec.index,
                            )
                        )
        return out

    def logs(self) -> list[LogRecord]:
        """Every received log record in arrival order."""
        out: list[LogRecord] = []
        for rec in self.log_requests():
            for rl in rec.request.resource_logs:
                resource = attributes_dict(rl.resource.attributes)
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        out.append(
                            LogRecord(
                                body=any_value(lr.body),
                                severity_number=int(lr.severity_number),
                                severity_text=lr.severity_text,
                                attributes=attributes_dict(lr.attributes),
                                trace_id=_hex(lr.trace_id),
                                span_id=_hex(lr.span_id),
                                time_unix_nano=lr.time_unix_nano,
                                observed_time_unix_nano=lr.observed_time_unix_nano,
                                event_name=getattr(lr, "event_name", ""),
                                resource=resource,
                                scope_name=sl.scope.name,
                                transport=rec.transport,
                                request_index=rec.index,
                            )
                        )
        return out

    def metric_points(self, name: str | None = None, attributes: Mapping[str, Any] | None = None) -> list[MetricPoint]:
        """Every received data point in arrival order, optionally filtered by metric
        name and by exact attribute set."""
        wanted = dict(attributes) if attributes is not None else None
        return [
            p
            for p in self._iter_points()
            if (name is None or p.name == name) and (wanted is None or p.attributes == wanted)
        ]

    def metric_names(self) -> list[str]:
        """Sorted distinct metric names received so far."""
        return sorted({p.name for p in self._iter_points()})

    def latest(self, name: str, attributes: Mapping[str, Any] | None = None) -> MetricPoint | None:
        """The point for ``name`` (and exactly ``attributes``) from the newest request holding it.

        For cumulative data this is the running total. Returns None if nothing
        matches. With ``attributes=None`` any attribute set matches, but if the
        newest request holds several different sets a ``ValueError`` is raised
        (the caller must say which one).
        """
        points = self.metric_points(name, attributes)
        if not points:
            return None
        newest = points[-1].request_index
        in_newest = [p for p in points if p.request_index == newest]
        if attributes is None:
            sets = {repr(sorted(p.attributes.items())) for p in in_newest}
            if len(sets) > 1:
                raise ValueError(f"metric {name!r} has several attribute sets, pass attributes=: {sorted(sets)}")
        return in_newest[-1]

    def _iter_points(self) -> Iterator[MetricPoint]:
        for rec in self.metric_requests():
            for rm in rec.request.resource_metrics:
                resource = attributes_dict(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        if kind is None:
                            continue
                        data = getattr(m, kind)
                        common: dict[str, Any] = {
                            "name": m.name,
                            "description": m.description,
                            "unit": m.unit,
                            "kind": kind,
                            "resource": resource,
                            "scope_name": sm.scope.name,
                            "transport": rec.transport,
                            "request_index": rec.index,
                        }
                        if kind in ("sum", "histogram", "exponential_histogram"):
                            common["temporality"] = _enum_short(
                                metrics_pb2.AggregationTemporality.Name(data.aggregation_temporality),
                                "AGGREGATION_TEMPORALITY_",
                            )
                        if kind == "sum":
                            common["is_monotonic"] = data.is_monotonic
                        for dp in data.data_points:
                            yield self._point(kind, dp, common)

    @staticmethod
    def _point(kind: str, dp: Any, common: dict[str, Any]) -> MetricPoint:
        p = MetricPoint(
            attributes=attributes_dict(dp.attributes),
            start_time_unix_nano=dp.start_time_unix_nano,
            time_unix_nano=dp.time_unix_nano,
            **common,
        )
        if kind in ("sum", "gauge"):
            which = dp.WhichOneof("value")
            p.value = getattr(dp, which) if which else None
            p.exemplar_count = len(dp.exemplars)
        elif kind in ("histogram", "exponential_histogram"):
            p.count = dp.count
            p.sum = dp.sum if dp.HasField("sum") else None
            p.min = dp.min if dp.HasField("min") else None
            p.max = dp.max if dp.HasField("max") else None
            p.exemplar_count = len(dp.exemplars)
            if kind == "histogram":
                p.bucket_counts = list(dp.bucket_counts)
                p.explicit_bounds = list(dp.explicit_bounds)
        elif kind == "summary":
            p.count = dp.count
            p.sum = dp.sum
            p.quantiles = {q.quantile: q.value for q in dp.quantile_values}
        return p
