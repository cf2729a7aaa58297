"""Series derived at collection time, appended to what the readers export.

The hot path records one histogram per operation. The design's headline series (query totals, hit
rate, success rate, reduction ratio, tokens saved, skill reuse ratio) are computed from those data
points each time a reader collects, and added as ordinary OpenTelemetry metrics under the scope
``mcp_exec_telemetry.derived``. So Prometheus and OTLP carry them without any instrument being
recorded twice.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from . import summary as _summary
from ._version import __version__

DERIVED_SCOPE = InstrumentationScope("mcp_exec_telemetry.derived", __version__)


def _point(value: float, start: int, now: int, attributes: dict[str, Any] | None = None) -> NumberDataPoint:
    return NumberDataPoint(attributes=attributes or {}, start_time_unix_nano=start, time_unix_nano=now, value=value)


def _gauge(name: str, description: str, value: float, start: int, now: int) -> Metric:
    return Metric(name=name, description=description, unit="1", data=Gauge(data_points=[_point(value, start, now)]))


def _counter(name: str, description: str, unit: str, points: list[NumberDataPoint]) -> Metric:
    return Metric(
        name=name,
        description=description,
        unit=unit,
        data=Sum(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE, is_monotonic=True),
    )


def derived_metrics(data: MetricsData | None, namespace: str, bytes_per_token: float) -> list[Metric]:
    """The derived series for one collection; a ratio is only emitted once its denominator is > 0."""
    p = _summary.Points(data, namespace)
    if p.time_ns is None:
        return []
    now = p.time_ns
    start = p.start_ns or now
    ns = namespace
    out: list[Metric] = []

    queries = [_point(pt.count, pt.start_time_unix_nano, pt.time_unix_nano, dict(pt.attributes)) for pt in p.points("discovery.duration")]
    if queries:
        out.append(_counter(f"{ns}.discovery.queries", "Tool discovery queries (derived from the duration histogram's count)", "{query}", queries))
        d = _summary.discovery(p, None)
        out.append(_gauge(f"{ns}.discovery.hit_rate", "Queries that found tools and were not followed by another search / all queries", d.hit_rate, start, now))

    e_total = p.count("execution.duration")
    if e_total:
        e = _summary.execution(p, None)
        out.append(_gauge(f"{ns}.execution.success_rate", "Successful executions / executions that finished (cancelled and abandoned ones aside)", e.success_rate, start, now))

    inp = p.count("filtering.input_size")
    if inp:
        f = _summary.filtering(p, None, bytes_per_token)
        out.append(_gauge(f"{ns}.filtering.reduction_ratio", "1 - output bytes / input bytes over all filtering operations", f.avg_reduction_ratio, start, now))
        out.append(_counter(f"{ns}.context.tokens_saved", "Estimated context tokens saved by filtering", "{token}", [_point(max(0, f.context_tokens_saved), start, now)]))

    k = _summary.skills(p, None)
    if k.total_skills or k.deleted_skills:
        out.append(_gauge(f"{ns}.skills.active", "Skills saved and not deleted in this session", k.active_skills, start, now))
    if k.active_skills:
        out.append(_gauge(f"{ns}.skill.reuse_ratio", "Skill executions / active skills", k.reuse_ratio, start, now))
    return out


def with_derived(data: MetricsData | None, namespace: str, bytes_per_token: float) -> MetricsData | None:
    """``data`` with the derived series appended as one more scope of the first resource."""
    if data is None or not data.resource_metrics:
        return data
    extra = derived_metrics(data, namespace, bytes_per_token)
    if not extra:
        return data
    first = data.resource_metrics[0]
    scope = ScopeMetrics(scope=DERIVED_SCOPE, metrics=extra, schema_url="")
    patched = ResourceMetrics(resource=first.resource, scope_metrics=[*first.scope_metrics, scope], schema_url=first.schema_url)
    return MetricsData(resource_metrics=[patched, *data.resource_metrics[1:]])


__all__ = ["derived_metrics", "with_derived", "DERIVED_SCOPE"]
