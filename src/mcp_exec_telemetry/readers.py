"""Readers: one in-memory reader aggregates; Prometheus and OTLP read from it.

Every reader attached to a ``MeterProvider`` aggregates every measurement again, so the cost of a
record grows with the number of readers. A session therefore attaches exactly one reader, the
in-memory one behind :meth:`Telemetry.summary`. Prometheus scrapes and OTLP pushes are served by
the official ``PrometheusMetricReader`` and ``PeriodicExportingMetricReader`` classes, attached to
no provider: the collect callback a provider would set on them is set to one that returns that
reader's snapshot (plus the derived series) instead of aggregating anew.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader, MetricsData, PeriodicExportingMetricReader

_logger = logging.getLogger("mcp_exec_telemetry")

Snapshot = Callable[[], "MetricsData | None"]


def _collect_from(reader: MetricReader, collect: Callable[..., MetricsData | None]) -> None:
    """Make ``reader.collect()`` export what ``collect`` returns, as a ``MeterProvider`` would.

    ``MetricReader.collect`` is final; it calls this callback as ``collect(reader, timeout_millis=...)``
    and exports its result unless None, as it does with the provider's own callback.
    """
    # The SDK annotates the callback as (reader, temporality) -> MetricsData, but calls it as above
    # and sets its own MeasurementConsumer.collect, which has our signature and may return None.
    reader._set_collect_callback(collect)  # type: ignore[arg-type]


class PushReader(PeriodicExportingMetricReader):
    """Pushes the session's snapshot to ``exporter`` every interval and once more at shutdown."""

    def __init__(self, exporter: MetricExporter, snapshot: Snapshot, interval_ms: float, timeout_ms: float) -> None:
        super().__init__(exporter, export_interval_millis=interval_ms, export_timeout_millis=timeout_ms)
        self._snapshot = snapshot
        _collect_from(self, self._snapshot_or_none)

    def _snapshot_or_none(self, reader: MetricReader, timeout_millis: float = 10_000) -> MetricsData | None:
        try:
            return self._snapshot()
        except Exception as exc:  # a failed collection skips one export, never more
            _logger.warning("mcp-exec-telemetry could not collect metrics for export: %r", exc)
            return None


def prometheus_bridge(snapshot: Snapshot, registry: Any) -> Any:
    """A ``PrometheusMetricReader`` registered in ``registry`` that renders the session's snapshot."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    reader = PrometheusMetricReader(scope_info_enabled=False, registry=registry)
    _collect_from(reader, lambda _reader, timeout_millis=10_000: snapshot())
    return reader
