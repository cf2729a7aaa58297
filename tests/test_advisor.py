"""The advisor: the design's four use cases plus timeouts and growing filters, as structured findings."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mcp_exec_telemetry.advisor import Finding, Thresholds, advise, pii_protection_rate
from mcp_exec_telemetry.testing import capture
from tests.test_history import make_summary

HEALTHY: dict[str, Any] = dict(queries=10, hits=9, runs=10, runs_ok=10, run_ms=8000.0, skills=[("a", 5, 5, 1.0), ("b", 5, 5, 1.0)], pii=20, tokens_created=20)


def checks(findings: list[Finding]) -> list[str]:
    return [f.check for f in findings]


def test_a_healthy_session_has_no_findings() -> None:
    assert advise(make_summary(**HEALTHY)) == []


def test_low_discovery_hit_rate_below_080() -> None:
    assert advise(make_summary(**{**HEALTHY, "hits": 8})) == []  # 0.8 is not below 0.8
    [f] = advise(make_summary(**{**HEALTHY, "hits": 7}))
    assert f == Finding(
        "low_discovery_hit_rate", "discovery.hit_rate", 0.7, 0.8, "warning",
        "The agent often misses the tools it searches for or searches again: improve tool names and descriptions, or add aliases.",
    )


def test_slow_execution_above_2000_ms_and_critical_above_twice_that() -> None:
    assert advise(make_summary(**{**HEALTHY, "run_ms": 20_000.0})) == []  # exactly 2000 ms
    [f] = advise(make_summary(**{**HEALTHY, "run_ms": 25_000.0}))
    assert (f.check, f.metric, f.value, f.threshold, f.severity) == ("slow_execution", "execution.avg_duration_ms", 2500.0, 2000.0, "warning")
    [f] = advise(make_summary(**{**HEALTHY, "run_ms": 45_000.0}))
    assert f.severity == "critical"


def test_underutilized_skills_below_ten_percent_of_skill_executions() -> None:
    s = make_summary(**{**HEALTHY, "skills": [("busy", 19, 19, 1.0), ("rare", 1, 1, 1.0)]})  # 1 / 20 = 0.05
    [f] = advise(s)
    assert (f.check, f.subject, f.metric, f.value, f.threshold, f.severity) == ("underutilized_skill", "rare", "skills.utilization", 0.05, 0.1, "info")
    s = make_summary(**{**HEALTHY, "skills": [("busy", 9, 9, 1.0), ("ok", 1, 1, 1.0)]})  # 1 / 10 = 0.1
    assert advise(s) == []


def test_pii_protection_rate_is_tokenized_detections_over_detections() -> None:
    assert pii_protection_rate(make_summary(pii=20, tokens_created=19)) == 0.95
    assert pii_protection_rate(make_summary(pii=20, tokens_created=40)) == 1.0  # capped
    assert pii_protection_rate(make_summary(pii=0, tokens_created=0)) is None  # nothing to protect
    assert advise(make_summary(**{**HEALTHY, "tokens_created": 19})) == []
    [f] = advise(make_summary(**{**HEALTHY, "tokens_created": 18}))
    assert (f.check, f.metric, f.value, f.threshold, f.severity) == ("low_pii_protection", "security.pii_protection_rate", 0.9, 0.95, "critical")


def test_timeout_rate_above_five_percent() -> None:
    [f] = advise(make_summary(**{**HEALTHY, "timeouts": 1, "runs_ok": 9, "runs": 10}))  # 0.1
    assert (f.check, f.metric, f.value, f.threshold) == ("high_timeout_rate", "execution.timeout_rate", 0.1, 0.05)


def test_filtering_that_grows_data() -> None:
    [f] = advise(make_summary(**{**HEALTHY, "in_bytes": 1000, "out_bytes": 1500}))
    assert (f.check, f.metric, f.value, f.threshold) == ("filtering_grows_data", "filtering.avg_reduction_ratio", -0.5, 0.0)


def test_thresholds_are_configurable_and_findings_come_most_severe_first() -> None:
    s = make_summary(**{**HEALTHY, "hits": 7, "tokens_created": 10, "skills": [("busy", 19, 19, 1.0), ("rare", 1, 1, 1.0)]})
    assert checks(advise(s)) == ["low_pii_protection", "low_discovery_hit_rate", "underutilized_skill"]
    relaxed = Thresholds(min_discovery_hit_rate=0.5, min_pii_protection_rate=0.4, min_skill_utilization=0.01)
    assert advise(s, relaxed) == []
    assert checks(advise(make_summary(**HEALTHY), Thresholds(max_avg_execution_ms=500))) == ["slow_execution"]


def test_checks_without_data_stay_silent() -> None:
    empty = make_summary(queries=0, hits=0, successful=0, continued=0, runs=0, runs_ok=0, run_ms=0.0, buckets={}, in_bytes=0, out_bytes=0, skills=[], active=0, pii=0, tokens_created=0)
    assert advise(empty) == []


def test_findings_are_logged_as_structured_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mcp_exec_telemetry.advisor")
    advise(make_summary(**{**HEALTHY, "hits": 7, "tokens_created": 10}))
    records = [r for r in caplog.records if r.name == "mcp_exec_telemetry.advisor"]
    assert [(r.levelname, r.finding_check, r.finding_metric, r.finding_value, r.finding_threshold, r.finding_severity) for r in records] == [  # type: ignore[attr-defined]
        ("ERROR", "low_pii_protection", "security.pii_protection_rate", 0.5, 0.95, "critical"),
        ("WARNING", "low_discovery_hit_rate", "discovery.hit_rate", 0.7, 0.8, "warning"),
    ]
    assert records[1].getMessage().startswith("WARNING low_discovery_hit_rate: discovery.hit_rate=0.7 (threshold 0.8). ")


def test_advise_reads_a_live_session() -> None:
    with capture() as cap:
        tel = cap.telemetry
        for n in (0, 0, 3):
            tel.discovery.record("tools", "full", 5.0, n)
            tel.execution.record("python3", 10.0, "success", 0)  # another step: no continued search
        tel.security.pii_detected("email", 2)
        findings = advise(tel.summary())
    assert checks(findings) == ["low_pii_protection", "low_discovery_hit_rate"]
    assert findings[1].value == round(1 / 3, 6)
