"""Code execution: success rate, timeouts, languages, memory, result sizes, buckets, spans."""

from __future__ import annotations

import pytest
from opentelemetry.trace import StatusCode


def test_exit_codes_decide_success_and_languages_split_counts(telemetry_capture):
    tel = telemetry_capture.telemetry
    for lang, code in [("python3", 0), ("python3", 1), ("javascript", 0), ("python3", 0)]:
        with tel.execution.run(lang) as ex:
            ex.set_result(code)
    e = tel.get_execution_metrics()
    assert (e.total_executions, e.successful_executions, e.failed_executions) == (4, 3, 1)
    assert e.success_rate == 0.75
    assert e.language_distribution == {"javascript": 1, "python3": 3}


def test_timeout_counts_as_failed_execution_and_as_timeout(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.execution.run("python3") as ex:
        ex.set_timed_out()
    with tel.execution.run("python3") as ex:
        ex.set_result(0)
    e = tel.get_execution_metrics()
    assert (e.total_executions, e.failed_executions, e.timeouts, e.success_rate) == (2, 1, 1, 0.5)
    span = telemetry_capture.spans("execution.run")[0]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["mcp_exec.execution.timed_out"] is True
    assert e.recent_executions[0].timed_out and not e.recent_executions[0].success


def test_memory_peak_is_the_largest_report_and_average_their_mean(telemetry_capture):
    tel = telemetry_capture.telemetry
    for mb in (10, 50, 30):
        with tel.execution.run("python3") as ex:
            ex.set_result(0, memory_mb=mb, result_size_bytes=mb * 100)
    e = tel.get_execution_metrics()
    assert e.memory_peak_mb == 50.0
    assert e.memory_avg_mb == 30.0
    assert [r.result_size_bytes for r in e.recent_executions] == [1000, 5000, 3000]
    sizes = telemetry_capture.metric_points("execution.result_size")
    assert sizes[0].sum == 9000 and sizes[0].count == 3


def test_duration_buckets_include_the_design_boundaries(telemetry_capture):
    tel = telemetry_capture.telemetry
    for ms in (70, 300, 700, 1500, 90_000):
        tel.execution.record("python3", ms, "success", exit_code=0)
    (point,) = telemetry_capture.metric_points("execution.duration")
    bounds = list(point.explicit_bounds)
    for boundary in (0.1, 0.5, 1.0):
        assert boundary in bounds
    buckets = tel.get_execution_metrics().duration_buckets_ms
    assert buckets["100"] == 1 and buckets["500"] == 1 and buckets["1000"] == 1 and buckets["2000"] == 1 and buckets["+Inf"] == 1
    assert sum(buckets.values()) == 5
    assert point.sum == pytest.approx(92.57)


def test_raising_block_is_an_error_execution_and_the_exception_propagates(telemetry_capture):
    tel = telemetry_capture.telemetry
    with pytest.raises(ZeroDivisionError):
        with tel.execution.run("python3"):
            1 / 0
    e = tel.get_execution_metrics()
    assert (e.total_executions, e.failed_executions) == (1, 1)
    (point,) = telemetry_capture.metric_points("execution.duration")
    assert point.attributes["outcome"] == "error" and point.attributes["error.type"] == "ZeroDivisionError"
    span = telemetry_capture.spans("execution.run")[0]
    assert span.status.status_code is StatusCode.ERROR
    assert [ev.name for ev in span.events] == ["exception"]


def test_execution_span_carries_exit_code_and_nests_under_the_session(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.execution.run("javascript") as ex:
        ex.set_result(3, memory_mb=12.5)
    span = telemetry_capture.spans("execution.run")[0]
    assert span.attributes["process.exit.code"] == 3
    assert span.attributes["mcp_exec.execution.language"] == "javascript"
    assert span.parent.span_id == tel.session_span.get_span_context().span_id


def test_measured_duration_is_real_time(telemetry_capture):
    import time

    tel = telemetry_capture.telemetry
    with tel.execution.run("python3") as ex:
        time.sleep(0.05)
        ex.set_result(0)
    e = tel.get_execution_metrics()
    assert 45 <= e.avg_duration_ms < 1000
