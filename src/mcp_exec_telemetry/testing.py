"""Testing helpers: assert on exact telemetry with an in-memory span exporter and metric reader.

``capture()`` runs a strict session (invalid input raises ``ValueError``) whose spans go to an
in-memory exporter; the ``telemetry_capture`` pytest fixture (registered through the ``pytest11``
entry point) yields the same object::

    def test_search_counts(telemetry_capture):
        with telemetry_capture.telemetry.discovery.search("files") as q:
            q.set_results(2)
        assert telemetry_capture.summary()["discovery"]["total_queries"] == 1
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from opentelemetry.sdk.metrics.export import MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .telemetry import Telemetry

__all__ = ["Capture", "capture"]


class Capture:
    """What :func:`capture` yields: the session and its recorded spans and metrics."""

    def __init__(self, telemetry: Telemetry, exporter: InMemorySpanExporter) -> None:
        self.telemetry = telemetry
        self._exporter = exporter

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, oldest first; only those called ``name`` when given."""
        spans = list(self._exporter.get_finished_spans())
        return spans if name is None else [s for s in spans if s.name == name]

    def metrics(self) -> MetricsData | None:
        """The in-memory reader's cumulative data, with the derived series."""
        return self.telemetry.metrics_data()

    def metric_points(self, name: str) -> list[Any]:
        """Data points of the metric ``<namespace>.<name>`` (e.g. ``"execution.duration"``)."""
        full = f"{self.telemetry.config.namespace}.{name}"
        data = self.metrics()
        out: list[Any] = []
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == full:
                        out.extend(metric.data.data_points)
        return out

    def summary(self) -> dict[str, Any]:
        return self.telemetry.summary()

    def clear_spans(self) -> None:
        self._exporter.clear()


@contextmanager
def capture(**config: Any) -> Iterator[Capture]:
    """A strict, in-memory telemetry session for tests; ``config`` as for :func:`observe`."""
    exporter = InMemorySpanExporter()
    config.setdefault("strict", True)
    config.setdefault("history", False)
    tel = Telemetry(**config)
    # Synchronous export through the scrubbing stage: tests see exactly what an exporter would.
    tel.add_span_exporter(exporter, batch=False)
    with tel:
        yield Capture(tel, exporter)
