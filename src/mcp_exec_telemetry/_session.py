"""State a telemetry session shares between its steps: configuration, guard, tracer, meter, buffers.

Nothing here counts: counts live in the OpenTelemetry instruments. The session holds only what the
instruments cannot: the bounded ``recent_*`` record buffers, which step ran last (to know whether
the agent kept searching), and the metadata of the skills saved in this session.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from opentelemetry.metrics import Meter
from opentelemetry.trace import Tracer

from ._guard import Guard
from .config import TelemetryConfig
from .records import AuditEvent, ExecutionRecord, FilteringRecord, QueryRecord, SdkGenerationRecord, SkillUsageRecord

# How many skill names the session remembers metadata for (language, creation and last use).
MAX_TRACKED_SKILLS = 10_000


@dataclass(slots=True)
class SkillInfo:
    language: str
    created_at: datetime | None
    last_used: datetime | None = None


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
