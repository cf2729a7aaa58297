"""The design's per-step metrics and JSON summary, computed from the in-memory reader's data points.

There is no second counting system: every count, sum, rate and ratio here is read from the
OpenTelemetry data points that the step instruments produced (a histogram's count is a total,
its ``outcome`` attribute splits it). Only the ``recent_*`` records, the audit-event buffer and
skill metadata come from the session. Ratios are 0 when their denominator is 0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Callable, Iterable

from opentelemetry.sdk.metrics.export import HistogramDataPoint, MetricsData, NumberDataPoint

from .records import (
    DiscoveryMetrics,
    ExecutionMetrics,
    FilteringMetrics,
    SdkMetrics,
    SecurityMetrics,
    SkillMetrics,
    SkillStats,
    utc,
)

if TYPE_CHECKING:  # pragma: no cover
    from ._session import Session

OVERFLOW = "otel.metric.overflow"
INTERRUPTED = ("cancelled", "abandoned")
"""Outcomes of operations stopped from outside (a cancelled task, a session that ended first):
counted in each step's total and in ``interrupted``, never as failures nor in success rates."""
_BUCKET_KEYS: dict[tuple[float, ...], list[str]] = {}


def ratio(num: float, den: float) -> float:
    """``num / den``, or 0 when the denominator is 0 (the design's rule for empty sessions)."""
    return num / den if den else 0.0


def _r(x: float, digits: int = 6) -> float:
    return round(x, digits)


class Points:
    """Data points of one collection, indexed by metric name (without the namespace)."""

    def __init__(self, data: MetricsData | None, namespace: str) -> None:
        self.by_name: dict[str, list[Any]] = defaultdict(list)
        self._by_attr: dict[tuple[str, str], dict[Any, float]] = {}
        self.start_ns: int | None = None
        self.time_ns: int | None = None
        prefix = namespace + "."
        if data is None:
            return
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if not metric.name.startswith(prefix):
                        continue
                    pts = self.by_name[metric.name[len(prefix):]]
                    for p in metric.data.data_points:
                        pts.append(p)
                        if self.time_ns is None or p.time_unix_nano > self.time_ns:
                            self.time_ns = p.time_unix_nano
                        start = getattr(p, "start_time_unix_nano", None)
                        if start and (self.start_ns is None or start < self.start_ns):
                            self.start_ns = start

    def _index(self, name: str, key: str) -> dict[Any, float]:
        """Totals of ``name`` (counts of a histogram, values of a counter) by one attribute; memoized."""
        idx = self._by_attr.get((name, key))
        if idx is None:
            idx = {}
            for p in self.by_name.get(name, ()):
                v = p.attributes.get(key)
                idx[v] = idx.get(v, 0) + (p.count if isinstance(p, HistogramDataPoint) else p.value)
            self._by_attr[(name, key)] = idx
        return idx

    def interrupted(self, name: str) -> dict[str, int]:
        """Counts of ``name`` with an interrupted outcome, by outcome (only those that occurred)."""
        return {o: n for o in INTERRUPTED if (n := self.count_where(name, "outcome", o))}

    def count_where(self, name: str, key: str, value: Any) -> int:
        """Total of ``name`` over the points whose attribute ``key`` equals ``value``."""
        return int(self._index(name, key).get(value, 0))

    def points(self, name: str, where: Callable[[dict], bool] | None = None) -> Iterable[Any]:
        pts = self.by_name.get(name, ())
        return pts if where is None else (p for p in pts if where(p.attributes))

    def total(self, name: str, where: Callable[[dict], bool] | None = None) -> float:
        """Sum of a counter's values, or of a histogram's counts."""
        t = 0.0
        for p in self.points(name, where):
            t += p.count if isinstance(p, HistogramDataPoint) else p.value
        return t

    def count(self, name: str, where: Callable[[dict], bool] | None = None) -> int:
        return int(self.total(name, where))

    def hsum(self, name: str, where: Callable[[dict], bool] | None = None) -> float:
        """Sum of a histogram's recorded values."""
        return sum(p.sum for p in self.points(name, where))

    def hmax(self, name: str) -> float:
        values = [p.max for p in self.points(name) if p.count and p.max is not None and math.isfinite(p.max)]
        return max(values) if values else 0.0

    def split(self, name: str, key: str) -> dict[str, int]:
        """Counts of a counter or histogram grouped by one attribute."""
        out: dict[str, int] = defaultdict(int)
        for p in self.points(name):
            label = p.attributes.get(key)
            if label is None:
                label = "other" if p.attributes.get(OVERFLOW) else None
            if label is None:
                continue
            out[str(label)] += int(p.count if isinstance(p, HistogramDataPoint) else p.value)
        return dict(sorted(out.items()))

    def buckets(self, name: str) -> dict[str, int]:
        """A histogram's per-bucket counts (not cumulative) summed over attribute sets."""
        bounds: tuple[float, ...] | None = None
        counts: list[int] = []
        for p in self.points(name):
            if bounds is None:
                bounds = tuple(p.explicit_bounds)
                counts = [0] * len(p.bucket_counts)
            for i, c in enumerate(p.bucket_counts):
                counts[i] += c
        if bounds is None:
            return {}
        keys = _BUCKET_KEYS.get(bounds)
        if keys is None:
            keys = _BUCKET_KEYS[bounds] = [f"{b * 1000:g}" for b in bounds] + ["+Inf"]
        return dict(zip(keys, counts))


def discovery(p: Points, s: "Session | None", recent: bool = True) -> DiscoveryMetrics:
    total = p.count("discovery.duration")
    ok = p.count_where("discovery.duration", "outcome", "success")
    stopped = p.interrupted("discovery.duration")
    continued_ok = p.count_where("discovery.continued_queries", "outcome", "success")
    time_ms = p.hsum("discovery.duration") * 1000.0
    return DiscoveryMetrics(
        total_queries=total,
        successful_queries=ok,
        failed_queries=total - ok - sum(stopped.values()),
        continued_queries=p.count("discovery.continued_queries"),
        total_time_ms=_r(time_ms, 3),
        avg_response_time_ms=_r(ratio(time_ms, total), 3),
        detail_level_distribution=p.split("discovery.duration", "detail_level"),
        hits=ok - continued_ok,
        hit_rate=_r(ratio(ok - continued_ok, total)),
        cache_hits=p.count("discovery.cache_hits"),
        interrupted=stopped,
        recent_queries=list(s.recent_queries) if s and recent else [],
    )


def execution(p: Points, s: "Session | None", recent: bool = True) -> ExecutionMetrics:
    total = p.count("execution.duration")
    ok = p.count_where("execution.duration", "outcome", "success")
    stopped = p.interrupted("execution.duration")
    finished = total - sum(stopped.values())
    time_ms = p.hsum("execution.duration") * 1000.0
    mem_n = p.count("execution.memory")
    return ExecutionMetrics(
        total_executions=total,
        successful_executions=ok,
        failed_executions=finished - ok,
        timeouts=p.count_where("execution.duration", "outcome", "timeout"),
        total_duration_ms=_r(time_ms, 3),
        avg_duration_ms=_r(ratio(time_ms, total), 3),
        success_rate=_r(ratio(ok, finished)),
        language_distribution=p.split("execution.duration", "language"),
        memory_peak_mb=_r(p.hmax("execution.memory"), 3),
        memory_avg_mb=_r(ratio(p.hsum("execution.memory"), mem_n), 3),
        memory_samples=mem_n,
        sdk_generation_time_ms=_r(p.hsum("sdk.duration") * 1000.0, 3),
        duration_buckets_ms=p.buckets("execution.duration"),
        interrupted=stopped,
        recent_executions=list(s.recent_executions) if s and recent else [],
    )


def sdk(p: Points, s: "Session | None", recent: bool = True) -> SdkMetrics:
    total = p.count("sdk.duration")
    time_ms = p.hsum("sdk.duration") * 1000.0
    hits = p.count_where("sdk.duration", "cache_hit", True)
    tools = p.count("sdk.tools_included")
    ipc = p.count("sdk.ipc_handler_size")
    return SdkMetrics(
        total_generations=total,
        failed_generations=p.count_where("sdk.duration", "outcome", "error"),
        total_generation_time_ms=_r(time_ms, 3),
        avg_generation_time_ms=_r(ratio(time_ms, total), 3),
        tools_included=tools,
        avg_tools_included=_r(ratio(tools, total), 3),
        ipc_handler_size_bytes=ipc,
        avg_ipc_handler_size_bytes=_r(ratio(ipc, total), 3),
        cache_hits=hits,
        cache_utilization=_r(ratio(hits, total)),
        interrupted=p.interrupted("sdk.duration"),
        recent_generations=list(s.recent_generations) if s and recent else [],
    )


def filtering(p: Points, s: "Session | None", bytes_per_token: float, recent: bool = True) -> FilteringMetrics:
    inp = p.count("filtering.input_size")
    out = p.count("filtering.output_size")
    return FilteringMetrics(
        total_operations=p.count("filtering.duration"),
        failed_operations=p.count_where("filtering.duration", "outcome", "error"),
        operation_distribution=p.split("filtering.duration", "operation"),
        total_input_bytes=inp,
        total_output_bytes=out,
        avg_reduction_ratio=_r(1.0 - out / inp if inp else 0.0),
        context_tokens_saved=int((inp - out) / bytes_per_token),
        total_duration_ms=_r(p.hsum("filtering.duration") * 1000.0, 3),
        interrupted=p.interrupted("filtering.duration"),
        recent_operations=list(s.recent_operations) if s and recent else [],
    )


def skills(p: Points, s: "Session | None", recent: bool = True, top: int | None = None) -> SkillMetrics:
    """Skill metrics; with ``top``, ``skill_stats`` holds only the ``top`` most-run skills."""
    created = p.count("skills.created")
    deleted = p.count("skills.deleted")
    active = max(0, created - deleted)
    runs = p.count("skills.duration")
    totals: dict[str, list[float]] = {}  # name -> [runs, successes, seconds]
    for pt in p.points("skills.duration"):
        attrs = pt.attributes
        name = attrs.get("skill.name")
        if name is None:
            if not attrs.get(OVERFLOW):
                continue
            name = OVERFLOW
        t = totals.get(name)
        if t is None:
            t = totals[name] = [0, 0, 0.0]
        t[0] += pt.count
        if attrs.get("outcome") == "success":
            t[1] += pt.count
        t[2] += pt.sum
    if s is not None and recent:  # metadata (language, created, last used) is for get_skill_metrics()
        for name in list(s.skills):
            totals.setdefault(name, [0, 0, 0.0])
    order = sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))
    if top is not None:
        order = order[:top]
    stats: dict[str, SkillStats] = {}
    for name, (n, ok, seconds) in order:
        total_ms = round(seconds * 1000.0, 3)
        stats[name] = SkillStats(name, "", int(n), int(ok), total_ms, round(total_ms / n, 3) if n else 0.0)
    if s is not None and recent:
        for name, st in stats.items():
            info = s.skills.get(name)
            if info is not None:
                st.language, st.created_at, st.last_used = info.language, info.created_at, info.last_used
        for rec in s.recent_skill_usage:
            used = stats.get(rec.skill_name)
            if used is not None and (used.last_used is None or rec.timestamp > used.last_used):
                used.last_used = rec.timestamp
    return SkillMetrics(
        total_skills=created,
        active_skills=active,
        deleted_skills=deleted,
        total_executions=runs,
        successful_executions=p.count_where("skills.duration", "outcome", "success"),
        skill_stats=stats,
        reuse_ratio=_r(ratio(runs, active)),
        interrupted=p.interrupted("skills.duration"),
        recent_skill_usage=list(s.recent_skill_usage) if s and recent else [],
    )


def security(p: Points, s: "Session | None", recent: bool = True) -> SecurityMetrics:
    return SecurityMetrics(
        pii_detections=p.count("pii.detections"),
        pattern_distribution=p.split("pii.detections", "pattern"),
        tokens_created=p.count("security.tokens_created"),
        tokenized_detections=p.count("security.tokenized"),
        audit_event_count=p.count("security.audit_events"),
        audit_event_types=p.split("security.audit_events", "event_type"),
        audit_events=list(s.audit_events) if s and recent else [],
    )


def summary_json(p: Points, s: "Session | None", *, bytes_per_token: float, start_ns: int, end_ns: int, service_name: str, top_skills: int = 10) -> dict[str, Any]:
    """The design's JSON export, plus the fields the dashboard and the history need."""
    # The JSON holds no recent records: skip copying the buffers.
    d = discovery(p, s, recent=False)
    e = execution(p, s, recent=False)
    g = sdk(p, s, recent=False)
    f = filtering(p, s, bytes_per_token, recent=False)
    k = skills(p, s, recent=False, top=top_skills)
    sec = security(p, s, recent=False)
    return {
        "timestamp": utc(end_ns).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "start_time": utc(start_ns).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "session_duration_ms": max(0, (end_ns - start_ns) // 1_000_000),
        "service_name": service_name,
        "discovery": {
            "total_queries": d.total_queries,
            "successful_queries": d.successful_queries,
            "failed_queries": d.failed_queries,
            "continued_queries": d.continued_queries,
            "hits": d.hits,
            "hit_rate": d.hit_rate,
            "avg_response_time_ms": d.avg_response_time_ms,
            "total_time_ms": d.total_time_ms,
            "cache_hits": d.cache_hits,
            "detail_levels": d.detail_level_distribution,
            "interrupted": d.interrupted,
        },
        "execution": {
            "total_executions": e.total_executions,
            "successful_executions": e.successful_executions,
            "failed_executions": e.failed_executions,
            "success_rate": e.success_rate,
            "avg_duration_ms": e.avg_duration_ms,
            "total_duration_ms": e.total_duration_ms,
            "languages": e.language_distribution,
            "timeouts": e.timeouts,
            "memory_peak_mb": e.memory_peak_mb,
            "memory_avg_mb": e.memory_avg_mb,
            "memory_samples": e.memory_samples,
            "duration_buckets_ms": e.duration_buckets_ms,
            "interrupted": e.interrupted,
        },
        "sdk": {
            "total_generations": g.total_generations,
            "failed_generations": g.failed_generations,
            "avg_generation_time_ms": g.avg_generation_time_ms,
            "total_generation_time_ms": g.total_generation_time_ms,
            "tools_included": g.tools_included,
            "ipc_handler_size_bytes": g.ipc_handler_size_bytes,
            "cache_hits": g.cache_hits,
            "cache_utilization": g.cache_utilization,
            "interrupted": g.interrupted,
        },
        "filtering": {
            "total_operations": f.total_operations,
            "failed_operations": f.failed_operations,
            "avg_reduction_ratio": f.avg_reduction_ratio,
            "estimated_tokens_saved": f.context_tokens_saved,
            "total_input_bytes": f.total_input_bytes,
            "total_output_bytes": f.total_output_bytes,
            "operations": f.operation_distribution,
            "interrupted": f.interrupted,
        },
        "skills": {
            "total_skills": k.total_skills,
            "active_skills": k.active_skills,
            "deleted_skills": k.deleted_skills,
            "executions": k.total_executions,
            "successful_executions": k.successful_executions,
            "reuse_ratio": k.reuse_ratio,
            "interrupted": k.interrupted,
            "top_skills": [
                {"name": st.name, "runs": st.execution_count, "successes": st.success_count, "avg_duration_ms": st.avg_duration_ms}
                for st in list(k.skill_stats.values())[:top_skills]
                if st.execution_count
            ],
        },
        "security": {
            "pii_detected": sec.pii_detections,
            "patterns": sec.pattern_distribution,
            "tokens_created": sec.tokens_created,
            "tokenized_detections": sec.tokenized_detections,
            "protection_rate": _r(ratio(sec.tokenized_detections, sec.pii_detections)),
            "audit_events": sec.audit_event_count,
            "audit_event_types": sec.audit_event_types,
        },
    }
