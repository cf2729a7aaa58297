"""The design's data structures: per-operation records and the per-step metric views.

Records (``QueryRecord``, ``ExecutionRecord`` ...) are what the bounded ``recent_*`` buffers hold.
The ``*Metrics`` classes are what ``MetricsCollector.get_*_metrics()`` return; their counts and
ratios are computed from the in-memory reader's data points, never kept in a parallel counter.
"""

# Annotations here are evaluated, not strings (no ``from __future__ import annotations``): ``@dataclass``
# matches every string annotation against ``ClassVar`` / ``InitVar`` patterns at import, a third of its work.

import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

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


# Every class below is a dataclass (``dataclasses.fields``, ``replace`` and ``asdict`` work, as the
# scrubbing stage and users rely on), but its ``__init__`` is written out and ``__repr__`` / ``__eq__``
# are shared: ``@dataclass`` would otherwise generate and ``exec`` three functions per class when
# the module is imported (about 0.4 ms per class, 13 classes, in every process that imports
# ``observe``).  ``tests/test_records.py`` checks each against the class ``@dataclass`` generates.


class _Factory:
    """The default of a field whose default is a fresh container (``dataclasses``' ``<factory>``)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY: Any = _Factory()


def _record_repr(self: Any) -> str:
    fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__dataclass_fields__)
    return f"{type(self).__qualname__}({fields})"


def _record_eq(self: Any, other: Any) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    names = self.__dataclass_fields__
    return tuple(getattr(self, n) for n in names) == tuple(getattr(other, n) for n in names)


_record = dataclass(init=False, repr=False, eq=False)
_slotted = dataclass(init=False, repr=False, eq=False, slots=True)


def utc(ns: int) -> datetime:
    """A nanosecond epoch timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc)


@_slotted
class QueryRecord:
    """One discovery query: keyword, detail level, result count, response time, outcome."""

    keyword: str
    detail_level: str
    result_count: int
    response_time_ms: float
    timestamp: datetime
    success: bool
    cache_hit: bool = False
    agent_continued_search: bool = False
    """True once the session's next discovery query came before any other step."""

    def __init__(
        self,
        keyword: str,
        detail_level: str,
        result_count: int,
        response_time_ms: float,
        timestamp: datetime,
        success: bool,
        cache_hit: bool = False,
        agent_continued_search: bool = False,
    ) -> None:
        self.keyword = keyword
        self.detail_level = detail_level
        self.result_count = result_count
        self.response_time_ms = response_time_ms
        self.timestamp = timestamp
        self.success = success
        self.cache_hit = cache_hit
        self.agent_continued_search = agent_continued_search

    __repr__ = _record_repr
    __eq__ = _record_eq


@_slotted
class ExecutionRecord:
    """One code execution: language, duration, outcome, exit code, memory and result size."""

    language: str
    duration_ms: float
    success: bool
    exit_code: int | None
    memory_used_mb: float | None
    result_size_bytes: int | None
    timestamp: datetime
    timed_out: bool = False

    def __init__(
        self,
        language: str,
        duration_ms: float,
        success: bool,
        exit_code: int | None,
        memory_used_mb: float | None,
        result_size_bytes: int | None,
        timestamp: datetime,
        timed_out: bool = False,
    ) -> None:
        self.language = language
        self.duration_ms = duration_ms
        self.success = success
        self.exit_code = exit_code
        self.memory_used_mb = memory_used_mb
        self.result_size_bytes = result_size_bytes
        self.timestamp = timestamp
        self.timed_out = timed_out

    __repr__ = _record_repr
    __eq__ = _record_eq


@_slotted
class SdkGenerationRecord:
    """One SDK generation: time, tools included, IPC handler size, cache hit."""

    generation_time_ms: float
    tools_included: int
    ipc_handler_size_bytes: int
    cache_hit: bool
    timestamp: datetime

    def __init__(
        self,
        generation_time_ms: float,
        tools_included: int,
        ipc_handler_size_bytes: int,
        cache_hit: bool,
        timestamp: datetime,
    ) -> None:
        self.generation_time_ms = generation_time_ms
        self.tools_included = tools_included
        self.ipc_handler_size_bytes = ipc_handler_size_bytes
        self.cache_hit = cache_hit
        self.timestamp = timestamp

    __repr__ = _record_repr
    __eq__ = _record_eq


@_slotted
class FilteringRecord:
    """One filtering operation: input and output sizes, duration, tokens saved."""

    operation: str
    input_size_bytes: int
    output_size_bytes: int
    duration_ms: float
    tokens_saved_estimate: int
    timestamp: datetime

    def __init__(
        self,
        operation: str,
        input_size_bytes: int,
        output_size_bytes: int,
        duration_ms: float,
        tokens_saved_estimate: int,
        timestamp: datetime,
    ) -> None:
        self.operation = operation
        self.input_size_bytes = input_size_bytes
        self.output_size_bytes = output_size_bytes
        self.duration_ms = duration_ms
        self.tokens_saved_estimate = tokens_saved_estimate
        self.timestamp = timestamp

    __repr__ = _record_repr
    __eq__ = _record_eq


@_slotted
class SkillUsageRecord:
    """One use of a saved skill: its name, outcome and duration."""

    skill_name: str
    success: bool
    duration_ms: float
    timestamp: datetime

    def __init__(
        self,
        skill_name: str,
        success: bool,
        duration_ms: float,
        timestamp: datetime,
    ) -> None:
        self.skill_name = skill_name
        self.success = success
        self.duration_ms = duration_ms
        self.timestamp = timestamp

    __repr__ = _record_repr
    __eq__ = _record_eq


@_slotted
class AuditEvent:
    """A security audit event: ``pii_detected``, ``tokenized``, ``detokenized`` ..."""

    event_type: str
    pattern_type: str
    timestamp: datetime
    severity: str

    def __init__(
        self,
        event_type: str,
        pattern_type: str,
        timestamp: datetime,
        severity: str,
    ) -> None:
        self.event_type = event_type
        self.pattern_type = pattern_type
        self.timestamp = timestamp
        self.severity = severity

    __repr__ = _record_repr
    __eq__ = _record_eq


@_record
class DiscoveryMetrics:
    """What ``get_discovery_metrics()`` returns."""

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

    def __init__(
        self,
        total_queries: int = 0,
        successful_queries: int = 0,
        failed_queries: int = 0,
        continued_queries: int = 0,
        hits: int = 0,
        total_time_ms: float = 0.0,
        avg_response_time_ms: float = 0.0,
        detail_level_distribution: dict[str, int] = _FACTORY,
        hit_rate: float = 0.0,
        cache_hits: int = 0,
        interrupted: dict[str, int] = _FACTORY,
        recent_queries: list[QueryRecord] = _FACTORY,
    ) -> None:
        self.total_queries = total_queries
        self.successful_queries = successful_queries
        self.failed_queries = failed_queries
        self.continued_queries = continued_queries
        self.hits = hits
        self.total_time_ms = total_time_ms
        self.avg_response_time_ms = avg_response_time_ms
        self.detail_level_distribution = dict() if detail_level_distribution is _FACTORY else detail_level_distribution
        self.hit_rate = hit_rate
        self.cache_hits = cache_hits
        self.interrupted = dict() if interrupted is _FACTORY else interrupted
        self.recent_queries = list() if recent_queries is _FACTORY else recent_queries

    __repr__ = _record_repr
    __eq__ = _record_eq


@_record
class ExecutionMetrics:
    """What ``get_execution_metrics()`` returns."""

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

    def __init__(
        self,
        total_executions: int = 0,
        successful_executions: int = 0,
        failed_executions: int = 0,
        timeouts: int = 0,
        total_duration_ms: float = 0.0,
        avg_duration_ms: float = 0.0,
        success_rate: float = 0.0,
        language_distribution: dict[str, int] = _FACTORY,
        memory_peak_mb: float = 0.0,
        memory_avg_mb: float = 0.0,
        memory_samples: int = 0,
        sdk_generation_time_ms: float = 0.0,
        duration_buckets_ms: dict[str, int] = _FACTORY,
        interrupted: dict[str, int] = _FACTORY,
        recent_executions: list[ExecutionRecord] = _FACTORY,
    ) -> None:
        self.total_executions = total_executions
        self.successful_executions = successful_executions
        self.failed_executions = failed_executions
        self.timeouts = timeouts
        self.total_duration_ms = total_duration_ms
        self.avg_duration_ms = avg_duration_ms
        self.success_rate = success_rate
        self.language_distribution = dict() if language_distribution is _FACTORY else language_distribution
        self.memory_peak_mb = memory_peak_mb
        self.memory_avg_mb = memory_avg_mb
        self.memory_samples = memory_samples
        self.sdk_generation_time_ms = sdk_generation_time_ms
        self.duration_buckets_ms = dict() if duration_buckets_ms is _FACTORY else duration_buckets_ms
        self.interrupted = dict() if interrupted is _FACTORY else interrupted
        self.recent_executions = list() if recent_executions is _FACTORY else recent_executions

    __repr__ = _record_repr
    __eq__ = _record_eq


@_record
class SdkMetrics:
    """What ``get_sdk_metrics()`` returns."""

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

    def __init__(
        self,
        total_generations: int = 0,
        failed_generations: int = 0,
        total_generation_time_ms: float = 0.0,
        avg_generation_time_ms: float = 0.0,
        tools_included: int = 0,
        avg_tools_included: float = 0.0,
        ipc_handler_size_bytes: int = 0,
        avg_ipc_handler_size_bytes: float = 0.0,
        cache_hits: int = 0,
        cache_utilization: float = 0.0,
        interrupted: dict[str, int] = _FACTORY,
        recent_generations: list[SdkGenerationRecord] = _FACTORY,
    ) -> None:
        self.total_generations = total_generations
        self.failed_generations = failed_generations
        self.total_generation_time_ms = total_generation_time_ms
        self.avg_generation_time_ms = avg_generation_time_ms
        self.tools_included = tools_included
        self.avg_tools_included = avg_tools_included
        self.ipc_handler_size_bytes = ipc_handler_size_bytes
        self.avg_ipc_handler_size_bytes = avg_ipc_handler_size_bytes
        self.cache_hits = cache_hits
        self.cache_utilization = cache_utilization
        self.interrupted = dict() if interrupted is _FACTORY else interrupted
        self.recent_generations = list() if recent_generations is _FACTORY else recent_generations

    __repr__ = _record_repr
    __eq__ = _record_eq


@_record
class FilteringMetrics:
    """What ``get_filtering_metrics()`` returns."""

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

    def __init__(
        self,
        total_operations: int = 0,
        failed_operations: int = 0,
        operation_distribution: dict[str, int] = _FACTORY,
        total_input_bytes: int = 0,
        total_output_bytes: int = 0,
        avg_reduction_ratio: float = 0.0,
        context_tokens_saved: int = 0,
        total_duration_ms: float = 0.0,
        interrupted: dict[str, int] = _FACTORY,
        recent_operations: list[FilteringRecord] = _FACTORY,
    ) -> None:
        self.total_operations = total_operations
        self.failed_operations = failed_operations
        self.operation_distribution = dict() if operation_distribution is _FACTORY else operation_distribution
        self.total_input_bytes = total_input_bytes
        self.total_output_bytes = total_output_bytes
        self.avg_reduction_ratio = avg_reduction_ratio
        self.context_tokens_saved = context_tokens_saved
        self.total_duration_ms = total_duration_ms
        self.interrupted = dict() if interrupted is _FACTORY else interrupted
        self.recent_operations = list() if recent_operations is _FACTORY else recent_operations

    __repr__ = _record_repr
    __eq__ = _record_eq


@_slotted
class SkillStats:
    """Per-skill counts and times in :class:`SkillMetrics`."""

    name: str
    language: str = ""
    execution_count: int = 0
    success_count: int = 0
    total_duration_ms: float = 0.0
    avg_duration_ms: float = 0.0
    created_at: datetime | None = None
    last_used: datetime | None = None

    def __init__(
        self,
        name: str,
        language: str = "",
        execution_count: int = 0,
        success_count: int = 0,
        total_duration_ms: float = 0.0,
        avg_duration_ms: float = 0.0,
        created_at: datetime | None = None,
        last_used: datetime | None = None,
    ) -> None:
        self.name = name
        self.language = language
        self.execution_count = execution_count
        self.success_count = success_count
        self.total_duration_ms = total_duration_ms
        self.avg_duration_ms = avg_duration_ms
        self.created_at = created_at
        self.last_used = last_used

    __repr__ = _record_repr
    __eq__ = _record_eq


@_record
class SkillMetrics:
    """What ``get_skill_metrics()`` returns."""

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

    def __init__(
        self,
        total_skills: int = 0,
        active_skills: int = 0,
        deleted_skills: int = 0,
        total_executions: int = 0,
        successful_executions: int = 0,
        skill_stats: dict[str, SkillStats] = _FACTORY,
        reuse_ratio: float = 0.0,
        interrupted: dict[str, int] = _FACTORY,
        recent_skill_usage: list[SkillUsageRecord] = _FACTORY,
    ) -> None:
        self.total_skills = total_skills
        self.active_skills = active_skills
        self.deleted_skills = deleted_skills
        self.total_executions = total_executions
        self.successful_executions = successful_executions
        self.skill_stats = dict() if skill_stats is _FACTORY else skill_stats
        self.reuse_ratio = reuse_ratio
        self.interrupted = dict() if interrupted is _FACTORY else interrupted
        self.recent_skill_usage = list() if recent_skill_usage is _FACTORY else recent_skill_usage

    __repr__ = _record_repr
    __eq__ = _record_eq


@_record
class SecurityMetrics:
    """What ``get_security_metrics()`` returns."""

    pii_detections: int = 0
    pattern_distribution: dict[str, int] = field(default_factory=dict)
    tokens_created: int = 0
    tokenized_detections: int = 0
    """Detections replaced by a token; / pii_detections is the protection rate."""
    audit_event_count: int = 0
    audit_event_types: dict[str, int] = field(default_factory=dict)
    audit_events: list[AuditEvent] = field(default_factory=list)

    def __init__(
        self,
        pii_detections: int = 0,
        pattern_distribution: dict[str, int] = _FACTORY,
        tokens_created: int = 0,
        tokenized_detections: int = 0,
        audit_event_count: int = 0,
        audit_event_types: dict[str, int] = _FACTORY,
        audit_events: list[AuditEvent] = _FACTORY,
    ) -> None:
        self.pii_detections = pii_detections
        self.pattern_distribution = dict() if pattern_distribution is _FACTORY else pattern_distribution
        self.tokens_created = tokens_created
        self.tokenized_detections = tokenized_detections
        self.audit_event_count = audit_event_count
        self.audit_event_types = dict() if audit_event_types is _FACTORY else audit_event_types
        self.audit_events = list() if audit_events is _FACTORY else audit_events

    __repr__ = _record_repr
    __eq__ = _record_eq

