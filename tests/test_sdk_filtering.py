"""SDK generation and data filtering: averages, cache utilization, reduction ratio, tokens saved."""

from __future__ import annotations

import pytest

from mcp_exec_telemetry.testing import capture


def test_sdk_generation_averages_and_cache_utilization(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.sdk.generate(tools_included=10) as g:
        g.set_result(4000)
    with tel.sdk.generate(tools_included=6) as g:
        g.set_result(2000, cache_hit=True)
    tel.sdk.record(generation_time_ms=30, tools_included=2, ipc_handler_size_bytes=0, cache_hit=True)
    s = tel.get_sdk_metrics()
    assert (s.total_generations, s.tools_included, s.ipc_handler_size_bytes, s.cache_hits) == (3, 18, 6000, 2)
    assert s.avg_tools_included == 6.0
    assert s.cache_utilization == round(2 / 3, 6)
    assert tel.get_execution_metrics().sdk_generation_time_ms >= 30.0


def test_reduction_ratio_is_over_byte_sums_not_an_average_of_ratios(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.filtering.operation("filter", 1000) as f:
        f.set_output(100)  # ratio 0.9
    with tel.filtering.operation("map", 9000) as f:
        f.set_output(9000)  # ratio 0.0
    f = tel.get_filtering_metrics()
    assert f.avg_reduction_ratio == round(1 - 9100 / 10000, 6)  # 0.09, not (0.9 + 0) / 2
    assert f.context_tokens_saved == 900 // 4
    assert f.operation_distribution == {"filter": 1, "map": 1}


def test_tokens_saved_divisor_is_configurable():
    with capture(bytes_per_token=3) as cap:
        with cap.telemetry.filtering.operation("reduce", 3000) as f:
            f.set_output(0)
        assert cap.summary()["filtering"]["estimated_tokens_saved"] == 1000


def test_filtering_without_output_saves_nothing_and_errors_are_counted(telemetry_capture):
    tel = telemetry_capture.telemetry
    with pytest.raises(ValueError):
        with tel.filtering.operation("filter", 500):
            raise ValueError("bad json")
    f = tel.get_filtering_metrics()
    assert (f.total_operations, f.failed_operations, f.total_input_bytes, f.total_output_bytes, f.context_tokens_saved) == (1, 1, 500, 500, 0)


def test_filtering_that_grows_data_has_a_negative_ratio(telemetry_capture):
    tel = telemetry_capture.telemetry
    tel.filtering.record("map", 100, 150, duration_ms=1)
    f = tel.get_filtering_metrics()
    assert f.avg_reduction_ratio == -0.5
    assert f.context_tokens_saved == -12
