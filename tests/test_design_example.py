"""The design's example session, recorded through the design's MetricsCollector API, reproduces its JSON."""

from __future__ import annotations

import json

from mcp_exec_telemetry import DetailLevel, MetricsCollector

# The "JSON Export" example of the design document, verbatim.
DESIGN_JSON = json.loads(
    """
{
  "timestamp": "2024-11-08T10:30:45Z",
  "session_duration_ms": 45000,
  "discovery": {"total_queries": 12, "successful_queries": 11, "hit_rate": 0.92, "avg_response_time_ms": 45, "cache_hits": 3},
  "execution": {"total_executions": 8, "successful_executions": 7, "success_rate": 0.875, "avg_duration_ms": 850,
                "languages": {"python3": 5, "javascript": 3}, "timeouts": 0},
  "filtering": {"total_operations": 14, "avg_reduction_ratio": 0.65, "estimated_tokens_saved": 8500},
  "skills": {"total_skills": 3, "executions": 2, "reuse_ratio": 0.67},
  "security": {"pii_detected": 5, "patterns": {"email": 2, "ssn": 1, "api_key": 2}}
}
"""
)


def _record_design_session(m: MetricsCollector) -> None:
    executions = [("python3", 100, True), ("javascript", 400, True), ("python3", 800, True), ("python3", 900, True),
                  ("javascript", 1000, False), ("python3", 1200, True), ("javascript", 1200, True), ("python3", 1200, True)]
    filters = [(3736, 1308)] * 13 + [(3740, 1304)]
    others: list = [("exec", e) for e in executions] + [("filter", f) for f in filters]
    for i in range(12):
        m.record_discovery_query(f"keyword {i}", DetailLevel.NAME_AND_DESCRIPTION)
        if i < 3:
            m.record_discovery_cache_hit()
        m.record_discovery_response_time(45, 1 if i < 11 else 0)
        # Another step between queries: the agent found what it needed and moved on.
        kind, item = others.pop(0)
        if kind == "exec":
            lang, ms, ok = item
            m.record_execution_start(lang)
            m.record_execution_complete(ms, ok, exit_code=0 if ok else 1)
        else:
            m.record_filtering_operation("filter", item[0], item[1], 3)
    for kind, item in others:
        if kind == "exec":
            m.record_execution_start(item[0])
            m.record_execution_complete(item[1], item[2], exit_code=0 if item[2] else 1)
        else:
            m.record_filtering_operation("filter", item[0], item[1], 3)
    for name in ("filter_test_files", "analyze_rs_files", "export_json"):
        m.record_skill_created(name, "python3")
    m.record_skill_execution("filter_test_files", 120)
    m.record_skill_execution("analyze_rs_files", 80)
    for pattern in ("email", "email", "ssn", "api_key", "api_key"):
        m.record_pii_detection(pattern)


def _assert_matches(expected: dict, actual: dict, path: str = "") -> None:
    for key, want in expected.items():
        assert key in actual, f"{path}{key} missing"
        got = actual[key]
        if isinstance(want, dict):
            _assert_matches(want, got, f"{path}{key}.")
        elif isinstance(want, float):
            # The design prints ratios rounded to a few decimals: compare at its precision.
            decimals = len(repr(want).split(".")[1])
            assert round(got, decimals) == want, f"{path}{key}: {got} != {want}"
        else:
            assert got == want, f"{path}{key}: {got!r} != {want!r}"


def test_design_example_session_reproduces_the_design_json(fake_clock):
    m = MetricsCollector(strict=True, history=False, clock=fake_clock)
    _record_design_session(m)
    fake_clock.advance(45)
    exported = m.export_json()
    _assert_matches(DESIGN_JSON, exported)
    assert json.loads(json.dumps(exported)) == exported  # JSON-ready: plain types only
    m.shutdown()


def test_design_example_exact_values_behind_the_rounded_ones(fake_clock):
    m = MetricsCollector(strict=True, history=False, clock=fake_clock)
    _record_design_session(m)
    d = m.get_discovery_metrics()
    assert d.hit_rate == round(11 / 12, 6)
    assert d.avg_response_time_ms == 45.0
    assert d.detail_level_distribution == {"name-and-description": 12}
    assert [q.agent_continued_search for q in d.recent_queries] == [False] * 12
    e = m.get_execution_metrics()
    assert e.total_duration_ms == 6800.0 and e.failed_executions == 1
    f = m.get_filtering_metrics()
    assert (f.total_input_bytes, f.total_output_bytes, f.context_tokens_saved) == (52308, 18308, 8500)
    assert f.avg_reduction_ratio == round(1 - 18308 / 52308, 6)
    k = m.get_skill_metrics()
    assert k.reuse_ratio == round(2 / 3, 6)
    assert {n: s.execution_count for n, s in k.skill_stats.items()} == {"analyze_rs_files": 1, "filter_test_files": 1, "export_json": 0}
    assert m.get_security_metrics().pattern_distribution == {"api_key": 2, "email": 2, "ssn": 1}
    m.shutdown()


def test_design_prometheus_series_for_the_example(fake_clock):
    from prometheus_client.parser import text_string_to_metric_families

    m = MetricsCollector(strict=True, history=False, clock=fake_clock, namespace="vtcode")
    _record_design_session(m)
    families = {f.name: f for f in text_string_to_metric_families(m.export_prometheus())}
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert families["vtcode_discovery_queries"].type == "counter"
    assert sum(s.value for s in families["vtcode_discovery_queries"].samples if s.name.endswith("_total")) == 12
    assert round(value[("vtcode_discovery_hit_rate", ())], 2) == 0.92
    assert value[("vtcode_pii_detections_total", (("pattern", "email"),))] == 2
    assert round(value[("vtcode_skill_reuse_ratio", ())], 2) == 0.67
    assert value[("vtcode_context_tokens_saved_total", ())] == 8500
    # Execution duration histogram, cumulative over both languages, at the design's boundaries.
    buckets: dict[str, float] = {}
    for s in families["vtcode_execution_duration_seconds"].samples:
        if s.name.endswith("_bucket"):
            buckets[s.labels["le"]] = buckets.get(s.labels["le"], 0) + s.value
    assert (buckets["0.1"], buckets["0.5"], buckets["1.0"], buckets["+Inf"]) == (1, 2, 5, 8)
    m.shutdown()


def test_summary_carries_the_counts_that_history_needs_to_aggregate_exactly(telemetry_capture):
    tel = telemetry_capture.telemetry
    for count in (2, 0, 1):
        with tel.discovery.search("k") as q:
            q.set_results(count)
        tel.security.audit("tokenized", "email")
    with tel.execution.run("python3") as ex:
        ex.set_result(0, memory_mb=10)
    with tel.execution.run("python3") as ex:
        ex.set_result(0)
    s = telemetry_capture.summary()
    assert s["discovery"]["hits"] == 2
    assert s["execution"]["memory_samples"] == 1
    assert s["security"]["audit_event_types"] == {"tokenized": 3}
