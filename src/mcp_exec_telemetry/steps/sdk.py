"""SDK generation: how long generating the tool wrappers takes and how often a cache answers it.

One span and one duration-histogram record per generation, split by ``cache_hit`` and ``outcome``;
the tools included and the IPC handler bytes are counters whose sums, divided by the histogram's
count, give the averages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Counter, Histogram

from ..records import SdkGenerationRecord, utc
from ..views import SDK, SDK_DURATION, SDK_IPC_HANDLER_SIZE, SDK_TOOLS_INCLUDED
from ._base import ERROR_TYPE, NOOP, AttributeSets, NoopOperation, Operation, Step, error_outcome, outcome_attributes

if TYPE_CHECKING:  # pragma: no cover
    from .._session import Session


class GenerateOperation(Operation):
    """Handle of one SDK generation: report the IPC handler size with :meth:`set_result`."""

    __slots__ = ("tools_included", "ipc_handler_size_bytes", "cache_hit")
    SPAN_NAME = "sdk.generate"
    _step: SdkStep  # the slot of Operation, narrowed: a generation belongs to an SDK step

    def __init__(self, step: "SdkStep", tools_included: int) -> None:
        super().__init__(step)
        self.tools_included = tools_included
        self.ipc_handler_size_bytes = 0
        self.cache_hit = False

    def _span_attributes(self) -> dict[str, Any]:
        return {"mcp_exec.sdk.tools_included": self.tools_included}

    def _begin(self) -> None:
        self._step._s.begin("sdk")

    def set_result(self, ipc_handler_size_bytes: int, cache_hit: bool = False) -> None:
        """Report the generated IPC handler's size and whether the SDK came from a cache."""
        g = self._step._s.guard
        try:
            self.ipc_handler_size_bytes = g.count(ipc_handler_size_bytes, "ipc_handler_size_bytes")
            self.cache_hit = g.flag(cache_hit, "cache_hit")
        except Exception as exc:
            g.contain(exc, "sdk.set_result")

    def _finish(self, duration_s: float, error_type: str | None) -> None:
        self.span.set_attribute("mcp_exec.sdk.ipc_handler_size_bytes", self.ipc_handler_size_bytes)
        self.span.set_attribute("mcp_exec.sdk.cache_hit", self.cache_hit)
        self._step._record(duration_s, self.tools_included, self.ipc_handler_size_bytes, self.cache_hit, error_type, self._wall0)


class SdkStep(Step):
    """SDK generations: ``with tel.sdk.generate(tools_included=12) as g: g.set_result(4096)``."""

    name = "sdk"
    SPECS = SDK
    _duration: Histogram
    _tools_included: Counter
    _ipc_handler_size: Counter

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._duration_attributes: AttributeSets[tuple[bool, str, str | None]] = AttributeSets(lambda key: outcome_attributes("cache_hit", key))
        """The duration histogram's attributes: ``cache_hit``, ``outcome`` and ``error.type`` when set."""

    def _create_instruments(self) -> None:
        self._duration = self._histogram(SDK_DURATION)
        self._tools_included = self._counter(SDK_TOOLS_INCLUDED)
        self._ipc_handler_size = self._counter(SDK_IPC_HANDLER_SIZE)

    def generate(self, tools_included: int) -> GenerateOperation | NoopOperation:
        """Time one SDK generation covering ``tools_included`` tools."""
        if not self._on:
            return NOOP
        g = self._s.guard
        try:
            return GenerateOperation(self, g.count(tools_included, "tools_included"))
        except Exception as exc:
            g.contain(exc, "sdk.generate")
            return NOOP

    def _record(self, duration_s: float, tools: int, ipc_bytes: int, cache_hit: bool, error_type: str | None, wall_ns: int) -> None:
        outcome = error_outcome(error_type) if error_type is not None else "success"
        self._buf.record(self._duration, duration_s, self._duration_attributes[cache_hit, outcome, error_type])
        if tools:
            self._buf.add(self._tools_included, tools)
        if ipc_bytes:
            self._buf.add(self._ipc_handler_size, ipc_bytes)
        self._s.recent_generations.append(SdkGenerationRecord(duration_s * 1000.0, tools, ipc_bytes, cache_hit, utc(wall_ns)))

    def record(self, generation_time_ms: float, tools_included: int, ipc_handler_size_bytes: int = 0, cache_hit: bool = False) -> None:
        """Record a generation that already happened (the design's ``record_sdk_generation``)."""
        if not self._on:
            return
        g = self._s.guard
        try:
            duration_s = g.duration_ms(generation_time_ms, "generation_time_ms") / 1000.0
            tools = g.count(tools_included, "tools_included")
            ipc = g.count(ipc_handler_size_bytes, "ipc_handler_size_bytes")
            cache_hit = g.flag(cache_hit, "cache_hit")
            self._s.begin("sdk")
            self._record(duration_s, tools, ipc, cache_hit, None, self._s.clock())
            self._past_span("sdk.generate", duration_s, {"mcp_exec.sdk.tools_included": tools, "mcp_exec.sdk.ipc_handler_size_bytes": ipc, "mcp_exec.sdk.cache_hit": cache_hit})
        except Exception as exc:
            g.contain(exc, "sdk.record")
