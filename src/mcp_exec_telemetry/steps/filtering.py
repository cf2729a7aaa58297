"""Data filtering: how much the sandbox shrank tool results before they reached the model's context.

One span and one duration-histogram record per operation, plus two byte counters split by the
operation kind (``filter``, ``map``, ``reduce`` ...). The reduction ratio and the estimated context
tokens saved are derived from the byte counters' sums at collection time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Counter, Histogram

from ..records import FilteringRecord, utc
from ..views import FILTERING, FILTERING_DURATION, FILTERING_INPUT_SIZE, FILTERING_OUTPUT_SIZE
from ._base import ERROR_TYPE, NOOP, AttributeSets, NoopOperation, Operation, Step, error_outcome, outcome_attributes

if TYPE_CHECKING:  # pragma: no cover
    from .._session import Session


class FilterOperation(Operation):
    """Handle of one filtering operation: report the output size with :meth:`set_output`."""

    __slots__ = ("kind", "input_bytes", "output_bytes")
    SPAN_NAME = "filtering.operation"
    _step: FilteringStep  # the slot of Operation, narrowed: an operation belongs to a filtering step

    def __init__(self, step: "FilteringStep", kind: str, input_bytes: int) -> None:
        super().__init__(step)
        self.kind = kind
        self.input_bytes = input_bytes
        self.output_bytes: int | None = None

    def _span_attributes(self) -> dict[str, Any]:
        return {"mcp_exec.filtering.operation": self.kind, "mcp_exec.filtering.input_bytes": self.input_bytes}

    def _begin(self) -> None:
        self._step._s.begin("filtering")

    def set_output(self, output_bytes: int) -> None:
        """Report how many bytes the operation handed on; without it, nothing counts as saved."""
        g = self._step._s.guard
        try:
            self.output_bytes = g.count(output_bytes, "output_bytes")
        except Exception as exc:
            g.contain(exc, "filtering.set_output")

    def _finish(self, duration_s: float, error_type: str | None) -> None:
        output = self.input_bytes if self.output_bytes is None else self.output_bytes
        self.span.set_attribute("mcp_exec.filtering.output_bytes", output)
        self._step._record(self.kind, self.input_bytes, output, duration_s, error_type, self._wall0)


class FilteringStep(Step):
    """Filtering operations: ``with tel.filtering.operation("filter", 52_000) as f: f.set_output(1_200)``."""

    name = "filtering"
    SPECS = FILTERING
    _duration: Histogram
    _input_size: Counter
    _output_size: Counter

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._duration_attributes: AttributeSets[tuple[str, str, str | None]] = AttributeSets(lambda key: outcome_attributes("operation", key))
        """The duration histogram's attributes: ``operation``, ``outcome`` and ``error.type`` when set."""
        self._operation_attributes: AttributeSets[str] = AttributeSets(lambda kind: {"operation": kind})
        """The attributes of the byte counters: the ``operation`` kind alone."""

    def _create_instruments(self) -> None:
        self._duration = self._histogram(FILTERING_DURATION)
        self._input_size = self._counter(FILTERING_INPUT_SIZE)
        self._output_size = self._counter(FILTERING_OUTPUT_SIZE)

    def operation(self, kind: str, input_bytes: int) -> FilterOperation | NoopOperation:
        """Time one filtering operation of ``kind`` over ``input_bytes`` bytes."""
        if not self._on:
            return NOOP
        g = self._s.guard
        try:
            return FilterOperation(self, g.label(kind, "operation"), g.count(input_bytes, "input_bytes"))
        except Exception as exc:
            g.contain(exc, "filtering.operation")
            return NOOP

    def _record(self, kind: str, input_bytes: int, output_bytes: int, duration_s: float, error_type: str | None, wall_ns: int) -> None:
        outcome = error_outcome(error_type) if error_type is not None else "success"
        self._buf.record(self._duration, duration_s, self._duration_attributes[kind, outcome, error_type])
        attrs = self._operation_attributes[kind]
        self._buf.add(self._input_size, input_bytes, attrs)
        self._buf.add(self._output_size, output_bytes, attrs)
        saved = int((input_bytes - output_bytes) / self._s.config.bytes_per_token)
        self._s.recent_operations.append(FilteringRecord(kind, input_bytes, output_bytes, duration_s * 1000.0, saved, utc(wall_ns)))

    def record(self, operation: str, input_size_bytes: int, output_size_bytes: int, duration_ms: float) -> None:
        """Record an operation that already happened (the design's ``record_filtering_operation``)."""
        if not self._on:
            return
        g = self._s.guard
        try:
            kind = g.label(operation, "operation")
            inp = g.count(input_size_bytes, "input_size_bytes")
            out = g.count(output_size_bytes, "output_size_bytes")
            duration_s = g.duration_ms(duration_ms, "duration_ms") / 1000.0
            self._s.begin("filtering")
            self._record(kind, inp, out, duration_s, None, self._s.clock())
            self._past_span("filtering.operation", duration_s, {"mcp_exec.filtering.operation": kind, "mcp_exec.filtering.input_bytes": inp, "mcp_exec.filtering.output_bytes": out})
        except Exception as exc:
            g.contain(exc, "filtering.record")
