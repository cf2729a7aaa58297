"""Readers: one in-memory reader aggregates; Prometheus and OTLP read from it.

Every reader attached to a ``MeterProvider`` aggregates every measurement again, so the cost of a
record grows with the number of readers. A session therefore attaches exactly one reader, the
in-memory one behind :meth:`Telemetry.summary`. Prometheus scrapes and OTLP pushes are served by
the official ``PrometheusMetricReader`` and ``PeriodicExportingMetricReader`` classes whose
``collect`` takes that reader's snapshot (plus the derived series) instead of aggregating anew.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from opentelemetry.sdk.metrics.export import MetricExporter, MetricsData, PeriodicExportingMetricReader

_logger = logging.getLogger("mcp_exec_telemetry")

Snapshot = Callable[[], "MetricsData | None"]


class PushReader(PeriodicExportingMetricReader):
    """Pushes the session's snapshot to ``exporter`` every interval and once more at shutdown."""

    def __init__(self, exporter: MetricExporter, snapshot: Snapshot, interval_ms: float, timeout_ms: float) -> None:
        super().__init__(exporter, export_interval_millis=interval_ms, export_timeout_millis=timeout_ms)
        self._snapshot = snapshot

    def collect(self, timeout_millis: float = 10_000) -> None:  # type: ignore[override]
        try:
            data = self._snapshot()
        except Exception as exc:  # a failed collection skips one export, never more
            _logger.warning("mcp-exec-telemetry could not collect metrics for export: %r", exc)
            return
        if data is not None:
            self._receive_metrics(data, timeout_millis=timeout_millis)


def prometheus_bridge(snapshot: Snapshot, registry: Any) -> Any:
    """A ``PrometheusMetricReader`` registered in ``registry`` that renders the session's snapshot."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    class _SnapshotPrometheusReader(PrometheusMetricReader):
        def collect(self, timeout_millis: float = 10_000) -> None:  # type: ignore[override]
            data = snapshot()
            if data is not None:
                self._receive_metrics(data)

    return _SnapshotPrometheusReader(scope_info_enabled=False, registry=registry)
