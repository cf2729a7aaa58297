"""The design's data structures: per-operation records and the per-step metric views.

Records (``QueryRecord``, ``ExecutionRecord`` ...) are what the bounded ``recent_*`` buffers hold.
The ``*Metrics`` classes are what ``MetricsCollector.get_*_metrics()`` return; their counts and
ratios are computed from the in-memory reader's data points, never kept in a parallel counter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = [
    "DetailLevel",
    "QueryRecord",
    "ExecutionRecord",
    "SdkGenerationRecord",
    "FilteringRecord",
    "SkillUsageRecord",
    "AuditEvent",
    "DiscoveryMetrics",
    "ExecutionMetrics",
    "SdkMetrics",
    "FilteringMetrics",
    "SkillStats",
    "SkillMetrics",
    "SecurityMetrics",
]


class DetailLevel(str, enum.Enum):
    """How much of each tool a discovery query asks for; the values are the wire strings."""

    NAME_ONLY = "name-only"
    NAME_AND_DESCRIPTION = "name-and-description"
    FULL = "full"

    def __str__(self) -> str:
        return self.value


def utc(ns: int) -> datetime:
    """A nanosecond epoch timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


@dataclass(slots=True)
class QueryRecord:
    keyword: str
    detail_level: str
    result_count: int
    response_time_ms: float
    timestamp: datetime
    success: bool
    cache_hit: bool = False
    agent_continued_search: bool = False
    """True once the session's next discovery query came before any other step."""


@dataclass(slots=True)
class ExecutionRecord:
    language: str
    duration_ms: float
    success: bool
    exit_code: int | None
    memory_used_mb: float | None
    result_size_bytes: int | None
    timestamp: datetime
    timed_out: bool = False


@dataclass(slots=True)
class SdkGenerationRecord:
    generation_time_ms: float
    tools_included: int
    ipc_handler_size_bytes: int
    cache_hit: bool
    timestamp: datetime


@dataclass(slots=True)
class FilteringRecord:
    operation: str
    input_size_bytes: int
    output_size_bytes: int
    duration_ms: float
    tokens_saved_estimate: int
    timestamp: datetime


@dataclass(slots=True)
class SkillUsageRecord:
    skill_name: str
    success: bool
    duration_ms: float
    timestamp: datetime


@dataclass(slots=True)
class AuditEvent:
    """A security audit event: ``pii_detected``, ``tokenized``, ``detokenized`` ..."""

    event_type: str
    pattern_type: str
    timestamp: datetime
    severity: str


@dataclass
class DiscoveryMetrics:
    total_queries: int = 0
    successful_queries: int = 0
    failed_queries: int = 0
    continued_queries: int = 0
    hits: int = 0
    """Queries that were successful and not continued: the hit rate's numerator."""
    total_time_ms: float = 0.0
    avg_response_time_ms: float = 0.0
    detail_level_distribution: dict[str, int] = field(default_factory=dict)
    hit_rate: float = 0.0
    cache_hits: int = 0
    interrupted: dict[str, int] = field(default_factory=dict)
    """Operations stopped from outside, by outcome (``cancelled``, ``abandoned``): counted in the total, not as failures."""
    recent_queries: list[QueryRecord] = field(default_factory=list)


@dataclass
class ExecutionMetrics:
    total_executions: int = 0
    successful_executions: int = 0
    failed_executions: int = 0
    timeouts: int = 0
    total_duration_ms: float = 0.0
    avg_duration_ms: float = 0.0
    success_rate: float = 0.0
    language_distribution: dict[str, int] = field(default_factory=dict)
    memory_peak_mb: float = 0.0
    memory_avg_mb: float = 0.0
    memory_samples: int = 0
    sdk_generation_time_ms: float = 0.0
    duration_buckets_ms: dict[str, int] = field(default_factory=dict)
    """Executions per duration bucket, keyed by upper bound in ms ("+Inf" last); not cumulative."""
    interrupted: dict[str, int] = field(default_factory=dict)
    """Operations stopped from outside, by outcome (``cancelled``, ``abandoned``): counted in the total, not as failures."""
    recent_executions: list[ExecutionRecord] = field(default_factory=list)


@dataclass
class SdkMetrics:
    total_generations: int = 0
    failed_generations: int = 0
    total_generation_time_ms: float = 0.0
    avg_generation_time_ms: float = 0.0
    tools_included: int = 0
    avg_tools_included: float = 0.0
    ipc_handler_size_bytes: int = 0
    avg_ipc_handler_size_bytes: float = 0.0
    cache_hits: int = 0
    cache_utilization: float = 0.0
    interrupted: dict[str, int] = field(default_factory=dict)
    """Operations stopped from outside, by outcome (``cancelled``, ``abandoned``): counted in the total, not as failures."""
    recent_generations: list[SdkGenerationRecord] = field(default_factory=list)


@dataclass
class FilteringMetrics:
    total_operations: int = 0
    failed_operations: int = 0
    operation_distribution: dict[str, int] = field(default_factory=dict)
    total_input_bytes: int = 0
    total_output_bytes: int = 0
    avg_reduction_ratio: float = 0.0
    context_tokens_saved: int = 0
    total_duration_ms: float = 0.0
    interrupted: dict[str, int] = field(default_factory=dict)
    """Operations stopped from outside, by outcome (``cancelled``, ``abandoned``): counted in the total, not as failures."""
    recent_operations: list[FilteringRecord] = field(default_factory=list)


@dataclass(slots=True)
class SkillStats:
    name: str
    language: str = ""
    execution_count: int = 0
    success_count: int = 0
    total_duration_ms: float = 0.0
    avg_duration_ms: float = 0.0
    created_at: datetime | None = None
    last_used: datetime | None = None


@dataclass
class SkillMetrics:
    total_skills: int = 0
    active_skills: int = 0
    deleted_skills: int = 0
    total_executions: int = 0
    successful_executions: int = 0
    skill_stats: dict[str, SkillStats] = field(default_factory=dict)
    reuse_ratio: float = 0.0
    interrupted: dict[str, int] = field(default_factory=dict)
    """Operations stopped from outside, by outcome (``cancelled``, ``abandoned``): counted in the total, not as failures."""
    recent_skill_usage: list[SkillUsageRecord] = field(default_factory=list)


@dataclass
class SecurityMetrics:
    pii_detections: int = 0
    pattern_distribution: dict[str, int] = field(default_factory=dict)
    tokens_created: int = 0
    tokenized_detections: int = 0
    """Detections replaced by a token; / pii_detections is the protection rate."""
    audit_event_count: int = 0
    audit_event_types: dict[str, int] = field(default_factory=dict)
    audit_events: list[AuditEvent] = field(default_factory=list)
