"""Invalid input never breaks the agent: dropped, logged once, counted; strict mode raises ValueError."""

from __future__ import annotations

import logging
import math

import pytest

from mcp_exec_telemetry import MetricsCollector, observe
from mcp_exec_telemetry.testing import capture


def _dropped(tel) -> dict[tuple[str, str], int]:
    data = tel.metrics_data()
    out = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name.endswith(".sdk.dropped_inputs"):
                    for p in m.data.data_points:
                        out[(p.attributes["field"], p.attributes["reason"])] = p.value
    return out


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda m: m.record_discovery_response_time(-5, 1), "duration_ms"),
        (lambda m: m.record_discovery_response_time(math.nan, 1), "duration_ms"),
        (lambda m: m.record_execution_complete(math.inf, True), "duration_ms"),
        (lambda m: m.record_discovery_response_time("fast", 1), "duration_ms"),
        (lambda m: m.record_discovery_response_time(5, -1), "result_count"),
        (lambda m: m.record_sdk_generation(5, 2**70), "tools_included"),
        (lambda m: m.record_filtering_operation("filter", None, 1, 1), "input_size_bytes"),
        (lambda m: m.record_skill_created(None, "python3"), "skill_name"),
        (lambda m: m.record_tokens_created(-1), "n"),
        (lambda m: m.record_execution_memory(math.nan), "memory_mb"),
    ],
)
def test_strict_mode_raises_value_error_naming_the_field(call, field):
    m = MetricsCollector(strict=True, history=False)
    with pytest.raises(ValueError, match=field):
        call(m)
    m.shutdown()


def test_default_mode_drops_counts_and_logs_once_per_kind(caplog):
    caplog.set_level(logging.WARNING, logger="mcp_exec_telemetry")
    with observe(history=False) as tel:
        for _ in range(3):
            tel.discovery.record("k", "name-only", duration_ms=-1, result_count=1)
        tel.discovery.record("k", "name-only", duration_ms=math.nan, result_count=1)
        with tel.execution.run(12345) as ex:  # wrong type: the block still runs
            ex.set_result(0)
        with tel.discovery.search("k", "everything") as q:
            q.set_results(1)
        tel.discovery.record("k", "name-only", duration_ms=3, result_count=1)
        assert tel.get_discovery_metrics().total_queries == 1
        assert tel.get_execution_metrics().total_executions == 0
        dropped = _dropped(tel)
    assert dropped[("duration_ms", "must be finite, >= 0 and at most 1e12 ms")] == 4
    assert dropped[("language", "must be a str, got int")] == 1
    assert dropped[("detail_level", "must be one of name-only, name-and-description, full")] == 1
    messages = [r.getMessage() for r in caplog.records if "duration_ms" in r.getMessage()]
    assert len(messages) == 1


def test_free_text_label_is_recorded_as_other_not_as_an_attribute():
    with observe(history=False) as tel:
        with tel.execution.run("Python 3 for jane@example.com") as ex:
            ex.set_result(0)
        assert tel.get_execution_metrics().language_distribution == {"other": 1}
    with capture() as cap, pytest.raises(ValueError, match="language"):
        cap.telemetry.execution.run("Python 3 for jane@example.com")


def test_handle_setters_drop_bad_values_without_raising():
    with observe(history=False) as tel:
        with tel.execution.run("python3") as ex:
            ex.set_result("zero", memory_mb=-3)
        with tel.filtering.operation("filter", 100) as f:
            f.set_output(-1)
        e = tel.get_execution_metrics()
        assert e.total_executions == 1 and e.memory_peak_mb == 0.0
        assert tel.get_filtering_metrics().total_output_bytes == 100


def test_a_broken_span_processor_does_not_reach_the_host():
    class Exploding:
        def on_start(self, span, parent_context=None):
            raise RuntimeError("processor bug")

        def on_end(self, span):
            raise RuntimeError("processor bug")

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=30000):
            return True

    with observe(history=False, span_processors=(Exploding(),)) as tel:
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        assert tel.get_execution_metrics().total_executions == 1
