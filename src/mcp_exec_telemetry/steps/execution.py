"""Code execution: how fast and how reliably the agent's code runs in the sandbox.

One span and one duration-histogram record per execution, split by ``language`` and ``outcome``
(``success``, ``failure`` for a non-zero exit code, ``timeout``, ``error`` when the block raised,
``cancelled`` when it was cancelled, ``abandoned`` when the session ended first).
Execution counts, success rate and timeouts are all derived from that histogram; memory and result
size, when reported, go to histograms of their own whose max and mean give the peak and average.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Histogram
from opentelemetry.trace import Status, StatusCode

from ..records import ExecutionRecord, utc
from ..views import EXECUTION, EXECUTION_DURATION, EXECUTION_MEMORY, EXECUTION_OVERHEAD, EXECUTION_RESULT_SIZE
from ._base import ERROR_TYPE, NOOP, AttributeSets, NoopOperation, Operation, Step, error_outcome, outcome_attributes

if TYPE_CHECKING:  # pragma: no cover
    from .._session import Session

SUCCESS, FAILURE, TIMEOUT, ERROR = "success", "failure", "timeout", "error"
OUTCOMES = frozenset((SUCCESS, FAILURE, TIMEOUT, ERROR))


class RunOperation(Operation):
    """Handle of one code execution: report its exit code with :meth:`set_result`."""

    __slots__ = ("language", "exit_code", "memory_mb", "result_size_bytes", "timed_out", "code_duration_s", "overhead_s")
    SPAN_NAME = "execution.run"
    _step: ExecutionStep  # the slot of Operation, narrowed: a run belongs to an execution step

    def __init__(self, step: "ExecutionStep", language: str) -> None:
        super().__init__(step)
        self.language = language
        self.exit_code: int | None = None
        self.memory_mb: float | None = None
        self.result_size_bytes: int | None = None
        self.timed_out = False
        self.code_duration_s: float | None = None
        self.overhead_s: float | None = None

    def _span_attributes(self) -> dict[str, Any]:
        return {"mcp_exec.execution.language": self.language}

    def _begin(self) -> None:
        self._step._s.begin("execution")

    def set_result(self, exit_code: int, memory_mb: float | None = None, result_size_bytes: int | None = None) -> None:
        """Report the child's exit code (0 is success) and, when known, its peak memory and result size."""
        g = self._step._s.guard
        try:
            self.exit_code = g.exit_code(exit_code, "exit_code")
            if memory_mb is not None:
                self.memory_mb = g.number(memory_mb, "memory_mb")
            if result_size_bytes is not None:
                self.result_size_bytes = g.count(result_size_bytes, "result_size_bytes")
        except Exception as exc:
            g.contain(exc, "execution.set_result")

    def set_timed_out(self) -> None:
        """Mark the execution as killed by its timeout: a failed execution counted in ``timeouts``."""
        self.timed_out = True

    def set_code_duration(self, duration_ms: float, overhead_ms: float | None = None) -> None:
        """Report the code's own run time, measured where it ran; it replaces the block's duration in
        ``execution.duration``. ``overhead_ms``, the executor's time around it, goes to ``execution.overhead``."""
        g = self._step._s.guard
        try:
            self.code_duration_s = g.duration_ms(duration_ms, "duration_ms") / 1000.0
            if overhead_ms is not None:
                self.overhead_s = g.duration_ms(overhead_ms, "overhead_ms") / 1000.0
        except Exception as exc:
            g.contain(exc, "execution.set_code_duration")

    def _finish(self, duration_s: float, error_type: str | None) -> None:
        span = self.span
        attrs: dict[str, Any] = {}
        step = self._step
        if self.code_duration_s is not None:
            duration_s = self.code_duration_s
        if self.overhead_s is not None:
            attrs["mcp_exec.execution.overhead_ms"] = self.overhead_s * 1000.0
            step._buf.record(step._overhead, self.overhead_s, step._language_attributes[self.language])
        if self.exit_code is not None:
            attrs["process.exit.code"] = self.exit_code
        if self.timed_out:
            attrs["mcp_exec.execution.timed_out"] = True
        if self.memory_mb is not None:
            attrs["mcp_exec.execution.memory_mb"] = self.memory_mb
        if self.result_size_bytes is not None:
            attrs["mcp_exec.execution.result_size_bytes"] = self.result_size_bytes
        if attrs:
            span.set_attributes(attrs)  # one call (one lock) for all of them
        outcome = step.outcome(self.exit_code, self.timed_out, error_type)
        if outcome in (FAILURE, TIMEOUT) and error_type is None:
            span.set_status(Status(StatusCode.ERROR, outcome))
        step._record(self.language, duration_s, outcome, error_type, self.exit_code, self.memory_mb, self.result_size_bytes, self._wall0)


class ExecutionStep(Step):
    """Code executions: ``with tel.execution.run("python3") as ex: ex.set_result(0)``."""

    name = "execution"
    SPECS = EXECUTION
    _duration: Histogram
    _memory: Histogram
    _result_size: Histogram
    _overhead: Histogram

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._duration_attributes: AttributeSets[tuple[str, str, str | None]] = AttributeSets(lambda key: outcome_attributes("language", key))
        """The duration histogram's attributes: ``language``, ``outcome`` and ``error.type`` when set."""
        self._language_attributes: AttributeSets[str] = AttributeSets(lambda language: {"language": language})
        """The attributes of memory, result size and overhead: ``language`` alone."""

    def _create_instruments(self) -> None:
        self._duration = self._histogram(EXECUTION_DURATION)
        self._memory = self._histogram(EXECUTION_MEMORY)
        self._result_size = self._histogram(EXECUTION_RESULT_SIZE)
        self._overhead = self._histogram(EXECUTION_OVERHEAD)

    def run(self, language: str) -> RunOperation | NoopOperation:
        """Time one execution of code in ``language`` (``python3``, ``javascript`` ...)."""
        if not self._on:
            return NOOP
        g = self._s.guard
        try:
            return RunOperation(self, g.label(language, "language"))
        except Exception as exc:
            g.contain(exc, "execution.run")
            return NOOP

    @staticmethod
    def outcome(exit_code: int | None, timed_out: bool, error_type: str | None) -> str:
        if error_type is not None:
            return error_outcome(error_type)
        if timed_out:
            return TIMEOUT
        if exit_code not in (None, 0):
            return FAILURE
        return SUCCESS

    def _record(self, language: str, duration_s: float, outcome: str, error_type: str | None, exit_code: int | None, memory_mb: float | None, result_size: int | None, wall_ns: int) -> None:
        buf = self._buf
        duration_attrs = self._duration_attributes[language, outcome, error_type]
        if memory_mb is None and result_size is None:
            buf.record(self._duration, duration_s, duration_attrs)
        else:  # the step as README shows it: the three values in one append
            lang = self._language_attributes[language]
            entries: list[Any] = [self._duration, duration_attrs, duration_s]
            if memory_mb is not None:
                entries += (self._memory, lang, memory_mb)
            if result_size is not None:
                entries += (self._result_size, lang, result_size)
            buf.record_many(entries)
        self._s.recent_executions.append(
            ExecutionRecord(language, duration_s * 1000.0, outcome == SUCCESS, exit_code, memory_mb, result_size, utc(wall_ns), outcome == TIMEOUT)
        )

    def record(self, language: str, duration_ms: float, outcome: str, exit_code: int | None = None) -> None:
        """Record an execution that already happened (the design's ``record_execution_*`` calls)."""
        if not self._on:
            return
        g = self._s.guard
        try:
            language = g.label(language, "language")
            if not isinstance(outcome, str) or outcome not in OUTCOMES:
                raise g.reject("outcome", "must be one of success, failure, timeout, error")
            duration_s = g.duration_ms(duration_ms, "duration_ms") / 1000.0
            if exit_code is not None:
                exit_code = g.exit_code(exit_code, "exit_code")
            self._s.begin("execution")
            self._record(language, duration_s, outcome, None, exit_code, None, None, self._s.clock())
            attrs: dict[str, Any] = {"mcp_exec.execution.language": language}
            if exit_code is not None:
                attrs["process.exit.code"] = exit_code
            self._past_span("execution.run", duration_s, attrs, None if outcome == SUCCESS else outcome)
        except Exception as exc:
            g.contain(exc, "execution.record")

    def record_memory(self, language: str, memory_mb: Any) -> None:
        """Record the peak memory of an execution reported separately from its completion."""
        if not self._on:
            return
        g = self._s.guard
        try:
            value = g.number(memory_mb, "memory_mb")
            language = g.label(language, "language")
            self._buf.record(self._memory, value, self._language_attributes[language])
            last = self._s.recent_executions[-1] if self._s.recent_executions else None
            if last is not None and last.memory_used_mb is None:
                last.memory_used_mb = value
        except Exception as exc:
            g.contain(exc, "execution.record_memory")

    def record_result_size(self, language: str, size_bytes: Any) -> None:
        """Record the size of an execution's result reported separately from its completion."""
        if not self._on:
            return
        g = self._s.guard
        try:
            value = g.count(size_bytes, "size_bytes")
            language = g.label(language, "language")
            self._buf.record(self._result_size, value, self._language_attributes[language])
            last = self._s.recent_executions[-1] if self._s.recent_executions else None
            if last is not None and last.result_size_bytes is None:
                last.result_size_bytes = value
        except Exception as exc:
            g.contain(exc, "execution.record_result_size")
