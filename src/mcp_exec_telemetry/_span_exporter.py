"""The span exporter wrapper: scrub what leaves, count what was delivered.

Kept apart from :mod:`._exporters` because it subclasses OpenTelemetry's ``SpanExporter``, whose
module (with the batch processor's machinery) only a session that exports spans needs to import.
"""

from __future__ import annotations

from typing import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from ._exporters import CollectorGate, ExportStats


class GuardedSpanExporter(SpanExporter):
    """Scrubs spans before ``inner`` exports them; counts spans it failed to export."""

    def __init__(self, inner: SpanExporter, stats: ExportStats, scrub_span: Callable[[ReadableSpan], ReadableSpan] | None, gate: CollectorGate | None = None) -> None:
        self._inner = inner
        self._stats = stats
        self._scrub = scrub_span
        self._gate = gate
        if gate is not None:
            gate.watch(inner)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._gate is not None and self._gate.refused:
            return SpanExportResult.FAILURE
        try:
            if self._scrub is not None:
                spans = [self._scrub(s) for s in spans]
            result = self._inner.export(spans)
        except Exception:
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self._stats.spans_delivered(len(spans))
        return result

    def shutdown(self) -> None:
        if self._gate is not None:
            self._gate.shutdown(self._inner)
        else:
            self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)
