"""Wrappers around the exporters a session ships to: scrub what leaves, count what was lost.

Every span, log and metric export goes through one of these wrappers (the span one, in
:mod:`._span_exporter`, is imported only by a session that exports spans). Each applies the session's
scrubbing stage (when on) to the outgoing data and counts what the wrapped exporter failed to
deliver, so that shutdown can say, in one warning, what was dropped.

Shutdown is on the exit path of every short-lived agent process, so it must be quick when nothing
can be delivered: :class:`CollectorGate` notices at shutdown that the OTLP collector refuses
connections (one TCP connect) and fails the remaining exports at once instead of letting the OTLP
exporters retry until the export timeout; :func:`stop_http_server` stops the Prometheus endpoint
without waiting for its serving loop's half-second poll.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from typing import Any, Callable, Sequence

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

_logger = logging.getLogger("mcp_exec_telemetry")


def serve_prometheus(port: int, host: str, registry: Any) -> Any:
    """Serve ``registry`` on ``http://host:port/metrics``; the server, or None when the port is taken.

    A port already in use (a second agent on the host) or a host that cannot be bound must not stop
    the session: one warning says so, and the session runs without ``/metrics``. Port 0 asks the
    kernel for a free port, so it never collides.
    """
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        _logger.warning(
            "mcp-exec-telemetry: cannot serve /metrics on %s:%s (%s); Prometheus serving is off for this session "
            "(prometheus=0 picks a free port)", host, port, exc.strerror or exc,
        )
        return None
    return server


class ExportStats:
    """What the exporters of a session failed to deliver, by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended = itertools.count()
        self.spans_exported = 0
        self.logs_dropped = 0
        self.metric_exports_failed = 0
        self.last_metric_export_ok: bool | None = None
        self.gate: CollectorGate | None = None

    def spans_delivered(self, n: int) -> None:
        """``n`` spans the span exporter delivered."""
        with self._lock:
            self.spans_exported += n

    def logs_lost(self, n: int) -> None:
        """``n`` log records the log exporter failed to deliver."""
        with self._lock:
            self.logs_dropped += n

    def metric_export_failed(self) -> None:
        """One metric export the exporter failed to deliver."""
        with self._lock:
            self.metric_exports_failed += 1

    def span_ended(self) -> None:
        next(self._ended)  # atomic under the GIL, no lock on the hot path

    @property
    def spans_ended(self) -> int:
        return int(repr(self._ended)[6:-1])

    def describe(self, expect_metrics: bool) -> str:
        """A short list of what was not delivered, or an empty string when everything was.

        Spans: every span ended on an exporting pipeline but not exported, whether its export
        failed, the queue was full, or it was still queued at the deadline. Metrics are cumulative,
        so only the last export matters: it is reported unless it was confirmed.
        """
        parts = []
        spans = self.spans_ended - self.spans_exported
        if spans > 0:
            parts.append(f"{spans} spans")
        if self.logs_dropped:
            parts.append(f"{self.logs_dropped} log records")
        if expect_metrics and self.last_metric_export_ok is not True:
            parts.append("the final metrics export")
        return ", ".join(parts)


class CollectorGate:
    """The OTLP exporters of one session, and whether their collector refuses connections.

    The OTLP exporters retry a refused connection with backoff until their timeout, so an agent
    whose collector is down would wait the whole export timeout at every exit. At shutdown,
    :meth:`check` tries one TCP connection to the collector; when it is refused, the gate closes:
    every guarded exporter behind it fails its exports at once (they are counted as dropped) and
    the OTLP exporters are shut down, which aborts a retry already under way in a background
    export. A collector that accepts connections but does not answer is left to the exporters and
    their timeout, as before.
    """

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.refused = False
        self._inner: list[Any] = []
        self._shut: set[int] = set()
        self._lock = threading.Lock()

    def watch(self, inner: Any) -> None:
        """Register an OTLP exporter that exports to this gate's collector."""
        self._inner.append(inner)

    def address(self) -> tuple[str, int] | None:
        """``(host, port)`` of the collector, or None when the endpoint names no explicit port."""
        from urllib.parse import urlsplit

        text = self.endpoint.strip()
        if text.startswith("unix:"):
            return None
        try:
            parts = urlsplit(text if "://" in text else "//" + text)
            port = parts.port
        except ValueError:
            return None
        if not parts.hostname or port is None:
            return None
        return parts.hostname, port

    def check(self, timeout_s: float = 0.1) -> bool:
        """Close the gate when the collector refuses a TCP connection now; return whether it did."""
        address = self.address()
        if address is None:
            return False
        try:
            socket.create_connection(address, timeout=timeout_s).close()
        except ConnectionRefusedError:
            self.refused = True
        except OSError:  # unreachable, timed out, unknown host: the exporters and their timeout decide
            return False
        if self.refused:
            for inner in self._inner:
                self.shutdown(inner)
        return self.refused

    def shutdown(self, inner: Any, **kwargs: Any) -> None:
        """Shut ``inner`` down once (the OTLP exporters warn on a second call)."""
        with self._lock:
            if id(inner) in self._shut:
                return
            self._shut.add(id(inner))
        try:
            inner.shutdown(**kwargs)
        except Exception:  # a failing shutdown of an exporter that cannot deliver anyway
            pass


def stop_http_server(server: Any, timeout_s: float = 1.0) -> None:
    """Stop a ``socketserver`` serving loop (``prometheus_client.start_http_server``) in milliseconds.

    ``server.shutdown()`` only sets a flag that the serving loop checks between two polls of its
    socket, half a second apart when no request comes. So while it waits, this connects to the
    server, which wakes the loop at once; the connection carries no request and is closed.
    """
    stopper = threading.Thread(target=server.shutdown, name="mcp-exec-telemetry-prometheus-stop", daemon=True)
    stopper.start()
    host, port = server.server_address[:2]
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    deadline = time.monotonic() + timeout_s
    while stopper.is_alive() and time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=0.05).close()
        except OSError:
            pass
        stopper.join(0.002)
    server.server_close()


class SpanEndCounter(SpanProcessor):
    """A span processor that counts ended spans, so shutdown can tell how many never left."""

    def __init__(self, stats: ExportStats) -> None:
        self._stats = stats

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        self._stats.span_ended()

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class GuardedMetricExporter(MetricExporter):
    """Records whether each metrics export to ``inner`` succeeded (data arrives already scrubbed)."""

    def __init__(self, inner: MetricExporter, stats: ExportStats, gate: CollectorGate | None = None) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner = inner
        self._stats = stats
        self._gate = gate
        if gate is not None:
            gate.watch(inner)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            if self._gate is not None and self._gate.refused:
                result = MetricExportResult.FAILURE
            else:
                result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            result = MetricExportResult.FAILURE
        ok = result is MetricExportResult.SUCCESS
        self._stats.last_metric_export_ok = ok
        if not ok:
            self._stats.metric_export_failed()
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._gate is not None:
            self._gate.shutdown(self._inner, timeout_millis=timeout_millis, **kwargs)
        else:
            self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def guarded_log_exporter(inner: Any, stats: ExportStats, scrub_log: Callable[[Any], Any] | None, gate: CollectorGate | None = None) -> Any:
    """A log exporter that scrubs records before ``inner`` exports them and counts failures."""
    from opentelemetry.sdk._logs.export import LogRecordExporter

    if gate is not None:
        gate.watch(inner)

    class _GuardedLogExporter(LogRecordExporter):
        def export(self, batch: Sequence[Any]) -> Any:
            try:
                if gate is not None and gate.refused:
                    raise ConnectionRefusedError(gate.endpoint)
                if scrub_log is not None:
                    batch = [scrub_log(r) for r in batch]
                result = inner.export(batch)
            except Exception:
                result = None
            if getattr(result, "name", "") != "SUCCESS":
                stats.logs_lost(len(batch))
            return result

        def shutdown(self) -> None:
            if gate is not None:
                gate.shutdown(inner)
            else:
                inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis) if hasattr(inner, "force_flush") else True

    return _GuardedLogExporter()
