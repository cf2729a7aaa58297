"""State a telemetry session shares between its steps: configuration, guard, tracer, meter, buffers.

Nothing here counts: counts live in the OpenTelemetry instruments. The session holds only what the
instruments cannot: the bounded ``recent_*`` record buffers, which step ran last (to know whether
the agent kept searching), the metadata of the skills saved in this session, and the operations
still open (so that the session's end can record them as ``abandoned`` instead of losing them).

Once the session has ended, :meth:`Session.close` puts :class:`AfterClose` in place of the tracer
and of every step's metric buffer: later records are dropped without a word per record (the
providers are shut down) and counted, one warning in all.
"""

# Annotations here are evaluated, not strings (no ``from __future__ import annotations``): a typed
# NamedTuple compiles each string annotation into a ``ForwardRef`` at import.

import contextvars
import functools
import itertools
import logging
import threading
from collections import deque
from datetime import datetime
from typing import Any, Callable, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import Meter
from opentelemetry.trace import INVALID_SPAN, Tracer

from ._guard import Guard
from .config import TelemetryConfig
from .records import AuditEvent, ExecutionRecord, FilteringRecord, QueryRecord, SdkGenerationRecord, SkillUsageRecord

_logger = logging.getLogger("mcp_exec_telemetry")

# How many skill names the session remembers metadata for (language, creation and last use).
MAX_TRACKED_SKILLS = 10_000


def reset_context(token: Any) -> bool:
    """Restore the context that ``token`` replaced; False (and nothing logged) when it cannot be.

    OpenTelemetry's ``detach`` logs a traceback when the token belongs to another context (a
    generator closed from another task); resetting the context variable directly fails quietly.
    """
    try:
        var = getattr(token, "var", None)
        if var is not None:
            var.reset(token)
        else:  # a runtime context that is not contextvars
            otel_context.detach(token)
        return True
    except (ValueError, RuntimeError):
        return False


_ORPHANED: dict[int, tuple[Any, Any]] = {}
"""Spans whose context was exited out of order (by a step or a session): id -> (span, the context
current before it). Whoever later restores such a context steps over it to that earlier one."""
_MAX_ORPHANED = 10_000


def _current(token: Any) -> Any:
    """The current context, read straight from the context variable ``token`` belongs to when it can be."""
    var = getattr(token, "var", None)
    return var.get(None) if var is not None else otel_context.get_current()


def restore_context(token: Any, ctx: Any, span: Any) -> None:
    """Detach ``ctx`` (attached with ``token`` to make ``span`` current), whatever order exits come in.

    In order, the context before it comes back; when that one belongs to a span already exited out
    of order, the nearest earlier context whose span is still open is made current instead. Out of
    order (another context is current: a step or session entered later and still open, or the exit
    runs in another task or thread), the current context is left alone and ``span`` is noted, so
    that whoever restores its context later steps over it.
    """
    if _current(token) is not ctx:
        if span is INVALID_SPAN or not span.get_span_context().is_valid:
            return  # nothing to step over: no span of ours was made current
        old = getattr(token, "old_value", None)
        if old is contextvars.Token.MISSING:  # nothing was attached before it: the empty context
            old = otel_context.Context()
        if isinstance(old, otel_context.Context):
            if len(_ORPHANED) >= _MAX_ORPHANED:  # exits that nobody ever stepped over: bounded
                _ORPHANED.clear()
            _ORPHANED[id(span)] = (span, old)
        return
    if not reset_context(token) or not _ORPHANED:
        return
    current = otel_context.get_current()
    entry = _ORPHANED.pop(id(trace.get_current_span(current)), None)
    if entry is None:
        return
    while entry is not None:
        current = entry[1]
        entry = _ORPHANED.pop(id(trace.get_current_span(current)), None)
    otel_context.attach(current)


class DroppedAfterClose(NamedTuple):
    """Records made after the session ended, and dropped: spans not started, metric measurements not taken."""

    spans: int
    measurements: int


def _count_of(counter: "itertools.count[int]") -> int:
    return int(repr(counter)[6:-1])


class AfterClose(trace.NoOpTracer):
    """The tracer and metric buffer of an ended session: drops every record and counts it.

    Without it, each span ended after close reaches shut-down processors (the SDK logs one line per
    span) and each measurement reaches a shut-down meter provider.
    """

    def __init__(self) -> None:
        self._spans = itertools.count()
        self._measurements = itertools.count()
        self._warned = False

    def _first(self) -> None:
        if not self._warned:
            self._warned = True
            _logger.warning(
                "mcp-exec-telemetry: a record arrived after the session ended; it and later ones are dropped "
                "(Telemetry.dropped_after_close counts them)"
            )

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        next(self._spans)
        self._first()
        return INVALID_SPAN

    def record(self, instrument: Any, value: Any, attributes: Any = None) -> None:
        next(self._measurements)
        self._first()

    add = record

    def flush(self) -> None:
        return None

    def pending(self) -> int:
        return 0

    @property
    def dropped(self) -> DroppedAfterClose:
        return DroppedAfterClose(_count_of(self._spans), _count_of(self._measurements))


class SkillInfo:
    """What a session knows of one skill: its language, when it was saved, when it last ran."""

    __slots__ = ("language", "created_at", "last_used")

    def __init__(self, language: str, created_at: datetime | None, last_used: datetime | None = None) -> None:
        self.language = language
        self.created_at = created_at
        self.last_used = last_used


class Session:
    """Shared, internal state of one :class:`~mcp_exec_telemetry.Telemetry`."""

    def __init__(self, config: TelemetryConfig, meter: Meter | None, tracer: Tracer | None, enabled: bool) -> None:
        self.config = config
        self.meter: Any = meter
        self.tracer: Any = tracer
        self.enabled = enabled
        self.guard = Guard(bool(config.strict))
        self.clock = config.clock
        n = config.recent_limit
        self.recent_queries: deque[QueryRecord] = deque(maxlen=n)
        self.recent_executions: deque[ExecutionRecord] = deque(maxlen=n)
        self.recent_generations: deque[SdkGenerationRecord] = deque(maxlen=n)
        self.recent_operations: deque[FilteringRecord] = deque(maxlen=n)
        self.recent_skill_usage: deque[SkillUsageRecord] = deque(maxlen=n)
        self.audit_events: deque[AuditEvent] = deque(maxlen=n)
        self.skills: dict[str, SkillInfo] = {}
        self.lock = threading.Lock()
        self._last_step: str | None = None
        self.last_query: QueryRecord | None = None
        self.flush_hooks: list[Callable[[], None]] = []
        self.open_operations: dict[Any, bool] = {}
        """Operation handles entered and not yet exited (insertion and removal are atomic under the GIL)."""
        self.after_close: AfterClose | None = None

    def flush(self) -> None:
        """Run before every collection: hands measurements buffered on the hot path to the instruments."""
        for hook in self.flush_hooks:
            try:
                hook()
            except Exception as exc:
                self.guard.contain(exc, "flush")

    def begin(self, step: str) -> str | None:
        """Note that an operation of ``step`` starts; return the step that ran before it."""
        prev = self._last_step
        self._last_step = step
        return prev

    def abandon_open(self) -> list[str]:
        """Record every operation still open as ``abandoned``; returns their span names.

        Each handle is claimed by removing it from :attr:`open_operations`, so a handle exiting at
        the same moment on another thread is recorded once, by whichever removed it first.
        """
        names: list[str] = []
        for op in list(self.open_operations):
            if self.open_operations.pop(op, None) is None:
                continue  # it exited meanwhile
            op._abandon()
            names.append(op.SPAN_NAME)
        return names

    def close(self, built_steps: Callable[[], list[Any]]) -> None:
        """From now on, drop and count what the host records (see :class:`AfterClose`).

        ``built_steps`` is asked for the steps only once the session is marked closed, so a step
        built meanwhile on another thread is either among them or sees the mark (see
        :meth:`drop_records_of`): no lock is held, and the session's end never waits for a step.
        """
        dropper = AfterClose()
        self.after_close = dropper
        self.tracer = dropper
        for step in built_steps():
            self.drop_records_of(step)

    def drop_records_of(self, step: Any) -> None:
        """Once the session is closed, send ``step``'s measurements to the dropper that counts them."""
        dropper = self.after_close
        if dropper is not None and getattr(step, "_buf", None) is not None:
            step._buf = dropper


_POOLS_LOCK = threading.Lock()
_pools_propagate = False


def propagate_context_to_thread_pools() -> None:
    """Make ``ThreadPoolExecutor`` workers run each task in the OpenTelemetry context current at ``submit()``.

    Without it a step run in a worker thread starts a new trace: its span is under neither the
    session span nor the span that submitted it. When ``opentelemetry-instrumentation-threading``
    is installed, its ``ThreadingInstrumentor`` does this (and the same for ``threading.Thread`` and
    ``Timer``); otherwise ``submit`` is wrapped here in the same way: the submitting thread's
    context is captured, attached around the task in the worker, and detached after it. Only the
    OpenTelemetry context travels, not the host's other context variables. Done once per process.
    """
    global _pools_propagate
    if _pools_propagate:
        return
    with _POOLS_LOCK:
        if _pools_propagate:
            return
        _pools_propagate = True
        try:
            from opentelemetry.instrumentation.threading import ThreadingInstrumentor
        except ImportError:
            ThreadingInstrumentor = None
        if ThreadingInstrumentor is not None:
            instrumentor = ThreadingInstrumentor()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()
            return
        # Imported here: with the instrumentor above, or before the first session, the thread pool
        # module (and its queue) is not loaded on the package's behalf.
        from concurrent.futures import Executor, Future, ThreadPoolExecutor

        # Typed without its ParamSpec, which mypy cannot carry through functools.wraps.
        original: Callable[..., Future[Any]] = ThreadPoolExecutor.submit

        @functools.wraps(original)
        def submit(self: Executor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
            ctx = otel_context.get_current()

            def in_context(*a: Any, **k: Any) -> Any:
                token = otel_context.attach(ctx)
                try:
                    return fn(*a, **k)
                finally:
                    reset_context(token)

            return original(self, in_context, *args, **kwargs)

        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
