"""What every step shares: its instruments, the operation handle that times a block, the no-op path.

An operation handle is a context manager: entering starts the step's span and makes it current;
leaving measures the elapsed time, records the step's histogram with prepared attributes, and ends
the span. When the block raises, the operation is marked failed (span status ERROR, ``error.type``
on the span and the metric) and the exception propagates unchanged. Telemetry's own failures never
propagate (unless the session is strict).

Outcomes that are not failures: a block interrupted by ``asyncio.CancelledError`` (a cancelled
task, an ``asyncio.wait_for`` timeout) or ``GeneratorExit`` (a generator closed early) ends with
outcome ``cancelled``; a step still open when its session ends is recorded by the session with
outcome ``abandoned``. Both keep ``error.type`` on the metric and span, neither sets span status ERROR.

The context is restored whatever happens: the span's context is detached even when ``end()``
raises (a span processor failing in ``on_end``); a handle exited out of order (interleaved
generators, a handle left open) never leaves an ended span current; and a handle exited from
another task or thread leaves that task's context alone instead of printing OpenTelemetry's
"Failed to detach context" traceback.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Hashable, Literal, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.metrics import Counter, Histogram
from opentelemetry.trace import INVALID_SPAN, Span, Status, StatusCode

from .._buffer import buffer_for
from .._session import restore_context
from ..views import ERROR_TYPE, InstrumentSpec

if TYPE_CHECKING:  # pragma: no cover
    from .._session import Session

_perf_ns = time.perf_counter_ns
ERROR, CANCELLED, ABANDONED = "error", "cancelled", "abandoned"
CANCELLATIONS = frozenset(("CancelledError", "GeneratorExit", "Cancelled"))
"""``error.type`` values that mean the block was cancelled, not failed (asyncio and concurrent.futures
``CancelledError``, ``GeneratorExit``, trio/anyio ``Cancelled``)."""


def error_outcome(error_type: str) -> str:
    """The outcome of an operation that ended with ``error_type``: ``cancelled``, ``abandoned`` or ``error``."""
    if error_type in CANCELLATIONS:
        return CANCELLED
    return ABANDONED if error_type == ABANDONED else ERROR


ATTRIBUTE_SETS_KEPT = 4096
"""Distinct attribute sets each of a step's caches keeps; past that, a set is built afresh on every
record, so an unbounded stream of values (skill names) cannot grow a cache without limit."""

Key = TypeVar("Key", bound=Hashable)


class AttributeSets(dict[Key, dict[str, Any]]):
    """The attribute dicts of one attribute set, by key: ``sets[key]`` builds a dict once (with
    ``build(key)``) and hands the same one out on every record after that.

    A dict whose ``__missing__`` builds the set, so a record's lookup is one subscript done in C: no
    dict is built on the hot path, and the buffer sums counter increments per dict. Past
    :data:`ATTRIBUTE_SETS_KEPT` keys a set is built afresh each time and not kept.
    """

    __slots__ = ("_build",)

    def __init__(self, build: Callable[[Key], dict[str, Any]]) -> None:
        super().__init__()
        self._build = build

    def __missing__(self, key: Key) -> dict[str, Any]:
        attrs = self._build(key)
        if len(self) < ATTRIBUTE_SETS_KEPT:
            self[key] = attrs
        return attrs


def outcome_attributes(key: str, what: tuple[Any, str, str | None]) -> dict[str, Any]:
    """The attributes of a step's duration histogram from ``(value, outcome, error_type)``: what was
    done (``key``: ``value``), ``outcome``, and ``error.type`` when the operation ended with one."""
    value, outcome, error_type = what
    attrs: dict[str, Any] = {key: value, "outcome": outcome}
    if error_type is not None:
        attrs[ERROR_TYPE] = error_type
    return attrs


class Step:
    """A step of the design: owns its instruments and opens one span per operation.

    A step's ``SPECS`` is its block of the instrument table in :mod:`~mcp_exec_telemetry.views`
    (which the views are built from); the step annotates each instrument as a typed attribute and
    creates them in :meth:`_create_instruments` through :meth:`_histogram` and :meth:`_counter`.
    Instruments exist only when the session is enabled.
    """

    name: ClassVar[str] = ""
    SPECS: ClassVar[tuple[InstrumentSpec, ...]] = ()

    def __init__(self, session: "Session") -> None:
        self._s = session
        self._on = session.enabled
        self._buf: Any = None
        if self._on:
            self._create_instruments()
            # Metric records go through the session's per-thread buffer (see _buffer.py); a step
            # first used after the session ended drops and counts them like the others.
            self._buf = session.after_close or buffer_for(session)

    def _create_instruments(self) -> None:
        """Create the step's instruments (enabled sessions only): one ``self._<measure> = ...`` per spec."""

    def _histogram(self, spec: InstrumentSpec) -> Histogram:
        """The histogram ``spec`` declares, named in the session's namespace."""
        if spec.kind != "histogram":  # the view built from the spec would not match the instrument
            raise TypeError(f"{spec.group}.{spec.measure} is declared as a {spec.kind}, not a histogram")
        return self._s.meter.create_histogram(spec.name(self._s.config.namespace), unit=spec.unit, description=spec.description)

    def _counter(self, spec: InstrumentSpec) -> Counter:
        """The monotonic counter ``spec`` declares, named in the session's namespace."""
        if spec.kind != "counter":
            raise TypeError(f"{spec.group}.{spec.measure} is declared as a {spec.kind}, not a counter")
        return self._s.meter.create_counter(spec.name(self._s.config.namespace), unit=spec.unit, description=spec.description)

    def _past_span(self, span_name: str, duration_s: float, attributes: dict[str, Any], error_type: str | None = None) -> None:
        """A span for an operation reported after the fact (the design's record_* API)."""
        s = self._s
        try:
            end = time.time_ns()
            span = s.tracer.start_span(span_name, attributes=attributes, start_time=end - int(duration_s * 1e9))
            if error_type is not None:
                span.set_attribute(ERROR_TYPE, error_type)
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=end)
        except Exception as exc:  # never break the host
            s.guard.contain(exc, f"{self.name} span")


class Operation:
    """Base of the handles returned by step context managers; ``span`` is the operation's span.

    Each subclass narrows ``_step`` to its own step's class with a bare class-level annotation
    (``_step: ExecutionStep``): the type checker then knows the step's methods, and the slot stays
    a plain slot, with nothing added on the hot path.
    """

    __slots__ = ("_step", "span", "_t0", "_token", "_wall0", "_ctx")
    SPAN_NAME: ClassVar[str] = ""

    def __init__(self, step: Step) -> None:
        self._step = step
        self.span: Span = INVALID_SPAN
        self._token: object | None = None
        self._ctx: Context | None = None
        self._t0 = 0
        self._wall0 = 0

    def _span_attributes(self) -> dict[str, Any] | None:
        return None

    def __enter__(self) -> "Operation":
        s = self._step._s
        s.open_operations[self] = True  # the session records what is still open when it ends
        try:
            self.span = s.tracer.start_span(self.SPAN_NAME, attributes=self._span_attributes())
            self._ctx = ctx = trace.set_span_in_context(self.span)
            self._token = otel_context.attach(ctx)
            self._begin()
        except Exception as exc:
            s.guard.contain(exc, self.SPAN_NAME)
        self._wall0 = s.clock()
        self._t0 = _perf_ns()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        duration_s = (_perf_ns() - self._t0) / 1e9
        s = self._step._s
        span = self.span
        try:
            # Whoever removes the handle from the open set finishes it: this exit, or the session's
            # end (which recorded it as abandoned; then there is nothing left to record here).
            if s.open_operations.pop(self, None) is not None:
                try:
                    error_type: str | None = None
                    if exc is not None:
                        error_type = exc_type.__qualname__ if exc_type is not None else type(exc).__qualname__
                        span.set_attribute(ERROR_TYPE, error_type)
                        if error_type not in CANCELLATIONS:
                            span.record_exception(exc)
                            span.set_status(Status(StatusCode.ERROR, error_type))
                    self._finish(duration_s, error_type)
                except Exception as internal:
                    s.guard.contain(internal, self.SPAN_NAME)
                try:
                    span.end()
                except Exception as internal:  # a span processor raising in on_end
                    s.guard.contain(internal, self.SPAN_NAME + " end")
        finally:  # also when strict mode re-raises a failure of our own
            self._restore_context()
        return False

    def _restore_context(self) -> None:
        """Detach this handle's context, leaving a sane one current whatever order handles exit in."""
        token, self._token = self._token, None
        if token is None:
            return
        try:
            restore_context(token, self._ctx, self.span)
        except Exception as internal:  # pragma: no cover - contextvars do not raise here
            self._step._s.guard.contain(internal, self.SPAN_NAME + " detach")

    def _abandon(self) -> None:
        """Record this handle as ``abandoned``: its session ended while it was still open."""
        duration_s = (_perf_ns() - self._t0) / 1e9
        span = self.span
        try:
            span.set_attribute(ERROR_TYPE, ABANDONED)
            self._finish(duration_s, ABANDONED)
        except Exception as internal:
            self._step._s.guard.contain(internal, self.SPAN_NAME)
        try:
            span.end()
        except Exception as internal:
            self._step._s.guard.contain(internal, self.SPAN_NAME + " end")

    async def __aenter__(self) -> "Operation":
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    def _begin(self) -> None:
        """Hook run once the span is current."""

    def _finish(self, duration_s: float, error_type: str | None) -> None:  # pragma: no cover
        raise NotImplementedError


class NoopOperation:
    """The shared handle of a disabled session: every method does nothing, at close to no cost."""

    __slots__ = ()
    span: Span = INVALID_SPAN

    def __enter__(self) -> "NoopOperation":
        return self

    def __exit__(self, *exc: Any) -> Literal[False]:
        return False

    async def __aenter__(self) -> "NoopOperation":
        return self

    async def __aexit__(self, *exc: Any) -> Literal[False]:
        return False

    def set_results(self, *args: Any, **kwargs: Any) -> None:
        return None

    set_result = set_timed_out = set_output = set_success = set_code_duration = set_results


NOOP = NoopOperation()
