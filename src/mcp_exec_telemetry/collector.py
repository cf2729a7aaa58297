"""The design's ``MetricsCollector`` API in Python, on top of a :class:`Telemetry` session.

Runtimes that report steps after the fact (``record_execution_start`` ... ``record_execution_complete``)
use this class; each call goes to the same step instruments and spans as the context-manager API,
so both kinds of call add up in one summary.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .records import (
    DetailLevel,
    DiscoveryMetrics,
    ExecutionMetrics,
    FilteringMetrics,
    SdkMetrics,
    SecurityMetrics,
    SkillMetrics,
)
from .steps.execution import FAILURE, SUCCESS, TIMEOUT
from .telemetry import Telemetry

__all__ = ["MetricsCollector"]


class MetricsCollector:
    """Records the design's events and answers its queries; makes its own in-memory session when none is given.

    A discovery query is reported in two calls (``record_discovery_query`` then
    ``record_discovery_response_time``), an execution in two or more (``record_execution_start``,
    then ``record_execution_complete`` or ``record_execution_timeout``, then optionally memory and
    result size). The pending half is kept per thread, so concurrent agents do not mix them up.
    """

    def __init__(self, telemetry: Telemetry | None = None, **config: Any) -> None:
        if telemetry is not None and config:
            raise TypeError("pass either a Telemetry or configuration options, not both")
        self._owns = telemetry is None
        self.telemetry = telemetry if telemetry is not None else Telemetry(**config)
        self._local = threading.local()

    # --- discovery ------------------------------------------------------------------------

    def record_discovery_query(self, keyword: str, detail_level: DetailLevel | str = DetailLevel.NAME_AND_DESCRIPTION) -> None:
        """Start a discovery query; completed by :meth:`record_discovery_response_time`."""
        self._local.query = (keyword, detail_level)

    def record_discovery_response_time(self, duration_ms: float, result_count: int) -> None:
        """Complete the pending discovery query with its response time and result count."""
        keyword, level = getattr(self._local, "query", None) or ("", DetailLevel.NAME_AND_DESCRIPTION)
        self._local.query = None
        cache_hit = getattr(self._local, "cache_hit", False)
        self._local.cache_hit = False
        self.telemetry.discovery.record(keyword, level, duration_ms, result_count, cache_hit=cache_hit)

    def record_discovery_cache_hit(self) -> None:
        """Count a discovery query answered from a cache."""
        if getattr(self._local, "query", None) is not None:
            self._local.cache_hit = True  # applied when the pending query completes
        else:
            self.telemetry.discovery.record_cache_hit()

    # --- execution ------------------------------------------------------------------------

    def record_execution_start(self, language: str) -> None:
        """Start an execution; completed by :meth:`record_execution_complete` or :meth:`record_execution_timeout`."""
        self._local.execution = (language, time.perf_counter())

    def record_execution_complete(self, duration_ms: float, success: bool, exit_code: int | None = None) -> None:
        """Complete the pending execution; ``success`` False is a failed execution."""
        language = self._pop_language()
        g = self.telemetry.execution._s.guard
        try:
            success = g.flag(success, "success")
        except Exception as exc:
            g.contain(exc, "record_execution_complete")
            return
        outcome = SUCCESS if success else FAILURE
        if exit_code is None:
            exit_code = 0 if success is True else None
        self.telemetry.execution.record(language, duration_ms, outcome, exit_code)

    def record_execution_timeout(self) -> None:
        """Complete the pending execution as timed out: a failed execution counted in ``timeouts``."""
        pending = getattr(self._local, "execution", None)
        if pending is None:
            g = self.telemetry.execution._s.guard
            try:
                raise g.reject("execution", "record_execution_timeout without record_execution_start")
            except Exception as exc:
                g.contain(exc, "record_execution_timeout")
                return
        language, started = pending
        self._local.execution = None
        self._local.last_language = language
        self.telemetry.execution.record(language, (time.perf_counter() - started) * 1000.0, TIMEOUT)

    def record_execution_memory(self, memory_mb: float) -> None:
        self.telemetry.execution.record_memory(self._last_language(), memory_mb)

    def record_result_size(self, size_bytes: int) -> None:
        self.telemetry.execution.record_result_size(self._last_language(), size_bytes)

    def _pop_language(self) -> str:
        pending = getattr(self._local, "execution", None)
        self._local.execution = None
        language = pending[0] if pending else "unknown"
        self._local.last_language = language
        return language

    def _last_language(self) -> str:
        pending = getattr(self._local, "execution", None)
        if pending:
            return pending[0]
        return getattr(self._local, "last_language", "unknown")

    # --- the other steps ------------------------------------------------------------------

    def record_sdk_generation(self, generation_time_ms: float, tools_included: int, ipc_handler_size_bytes: int = 0, cache_hit: bool = False) -> None:
        self.telemetry.sdk.record(generation_time_ms, tools_included, ipc_handler_size_bytes, cache_hit)

    def record_filtering_operation(self, operation: str, input_size_bytes: int, output_size_bytes: int, duration_ms: float) -> None:
        self.telemetry.filtering.record(operation, input_size_bytes, output_size_bytes, duration_ms)

    def record_skill_created(self, name: str, language: str) -> None:
        self.telemetry.skills.save(name, language)

    def record_skill_deleted(self, name: str) -> None:
        self.telemetry.skills.delete(name)

    def record_skill_execution(self, skill_name: str, duration_ms: float, success: bool = True) -> None:
        self.telemetry.skills.record(skill_name, duration_ms, success)

    def record_pii_detection(self, pattern_type: str) -> None:
        self.telemetry.security.pii_detected(pattern_type, 1)

    def record_audit_event(self, event_type: str, pattern_type: str, severity: str) -> None:
        self.telemetry.security.audit(event_type, pattern_type, severity)

    def record_tokens_created(self, count: int) -> None:
        self.telemetry.security.tokens_created(count)

    # --- queries and exports --------------------------------------------------------------

    def get_discovery_metrics(self) -> DiscoveryMetrics:
        return self.telemetry.get_discovery_metrics()

    def get_execution_metrics(self) -> ExecutionMetrics:
        return self.telemetry.get_execution_metrics()

    def get_sdk_metrics(self) -> SdkMetrics:
        return self.telemetry.get_sdk_metrics()

    def get_filtering_metrics(self) -> FilteringMetrics:
        return self.telemetry.get_filtering_metrics()

    def get_skill_metrics(self) -> SkillMetrics:
        return self.telemetry.get_skill_metrics()

    def get_security_metrics(self) -> SecurityMetrics:
        return self.telemetry.get_security_metrics()

    def get_summary(self) -> dict[str, Any]:
        return self.telemetry.summary()

    def export_json(self) -> dict[str, Any]:
        """The design's JSON export as a JSON-ready dict."""
        return self.telemetry.summary()

    def export_prometheus(self) -> str:
        """The Prometheus text exposition, rendered by the official exporter."""
        return self.telemetry.export_prometheus()

    def shutdown(self) -> None:
        """Shut down the session this collector made for itself (a given Telemetry is left to its owner)."""
        if self._owns:
            self.telemetry.shutdown()
