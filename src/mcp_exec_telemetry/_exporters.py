"""Wrappers around the exporters a session ships to: scrub what leaves, count what was lost.

Every span, log and metric export goes through one of these wrappers. Each applies the session's
scrubbing stage (when on) to the outgoing data and counts what the wrapped exporter failed to
deliver, so that shutdown can say, in one warning, what was dropped.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Callable, Sequence

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

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

    def add(self, kind: str, n: int) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + n)

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


class GuardedSpanExporter(SpanExporter):
    """Scrubs spans before ``inner`` exports them; counts spans it failed to export."""

    def __init__(self, inner: SpanExporter, stats: ExportStats, scrub_span: Callable[[ReadableSpan], ReadableSpan] | None) -> None:
        self._inner = inner
        self._stats = stats
        self._scrub = scrub_span

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            if self._scrub is not None:
                spans = [self._scrub(s) for s in spans]
            result = self._inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self._stats.add("spans_exported", len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class GuardedMetricExporter(MetricExporter):
    """Records whether each metrics export to ``inner`` succeeded (data arrives already scrubbed)."""

    def __init__(self, inner: MetricExporter, stats: ExportStats) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner = inner
        self._stats = stats

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            result = MetricExportResult.FAILURE
        ok = result is MetricExportResult.SUCCESS
        self._stats.last_metric_export_ok = ok
        if not ok:
            self._stats.add("metric_exports_failed", 1)
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def guarded_log_exporter(inner: Any, stats: ExportStats, scrub_log: Callable[[Any], Any] | None) -> Any:
    """A log exporter that scrubs records before ``inner`` exports them and counts failures."""
    from opentelemetry.sdk._logs.export import LogRecordExporter

    class _GuardedLogExporter(LogRecordExporter):
        def export(self, batch: Sequence[Any]) -> Any:
            try:
                if scrub_log is not None:
                    batch = [scrub_log(r) for r in batch]
                result = inner.export(batch)
            except Exception:
                result = None
            if getattr(result, "name", "") != "SUCCESS":
                stats.add("logs_dropped", len(batch))
            return result

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis) if hasattr(inner, "force_flush") else True

    return _GuardedLogExporter()
