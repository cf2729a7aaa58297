"""Tool discovery: query counts, hit rate, continued searches, detail levels, cache hits, spans."""

from __future__ import annotations

import pytest
from opentelemetry.trace import StatusCode

from mcp_exec_telemetry import DetailLevel


def test_query_with_results_is_successful(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.discovery.search("read files", DetailLevel.NAME_ONLY) as q:
        q.set_results(3)
    d = tel.get_discovery_metrics()
    assert (d.total_queries, d.successful_queries, d.failed_queries) == (1, 1, 0)
    assert d.hit_rate == 1.0
    assert d.detail_level_distribution == {"name-only": 1}
    assert d.recent_queries[0].keyword == "read files" and d.recent_queries[0].result_count == 3


def test_empty_query_is_not_successful(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.discovery.search("nothing") as q:
        q.set_results(0)
    tel.security.tokens_created(1)  # another step: the search was not continued
    d = tel.get_discovery_metrics()
    assert (d.total_queries, d.successful_queries, d.failed_queries, d.hit_rate) == (1, 0, 1, 0.0)


def test_search_again_straight_away_turns_a_success_into_a_miss(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.discovery.search("files") as q:
        q.set_results(2)
    with tel.discovery.search("read file") as q:  # the agent kept looking
        q.set_results(1)
    with tel.execution.run("python3") as ex:  # then moved on
        ex.set_result(0)
    with tel.discovery.search("write file") as q:
        q.set_results(1)
    d = tel.get_discovery_metrics()
    assert d.total_queries == 3 and d.successful_queries == 3
    assert [r.agent_continued_search for r in d.recent_queries] == [True, False, False]
    assert d.continued_queries == 1
    assert d.hit_rate == round(2 / 3, 6)


def test_detail_level_accepts_plain_strings_and_rejects_unknown_ones(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.discovery.search("x", "full") as q:
        q.set_results(1)
    assert tel.get_discovery_metrics().detail_level_distribution == {"full": 1}
    with pytest.raises(ValueError, match="detail_level"):
        tel.discovery.search("x", "everything")
    assert DetailLevel("name-and-description") is DetailLevel.NAME_AND_DESCRIPTION
    assert str(DetailLevel.NAME_ONLY) == "name-only"


def test_cache_hits_and_average_response_time(telemetry_capture):
    tel = telemetry_capture.telemetry
    for i in range(4):
        tel.discovery.record(f"k{i}", "name-only", duration_ms=10 * (i + 1), result_count=1, cache_hit=i % 2 == 0)
        tel.security.tokens_created(0)
    d = tel.get_discovery_metrics()
    assert d.cache_hits == 2
    assert d.avg_response_time_ms == 25.0
    assert d.total_time_ms == 100.0


def test_failed_query_marks_span_error_counts_failure_and_reraises(telemetry_capture):
    tel = telemetry_capture.telemetry
    with pytest.raises(KeyError):
        with tel.discovery.search("broken") as q:
            raise KeyError("index missing")
    span = telemetry_capture.spans("discovery.search")[0]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "KeyError"
    assert span.attributes["mcp_exec.discovery.keyword"] == "broken"
    points = telemetry_capture.metric_points("discovery.duration")
    assert [(p.attributes["outcome"], p.attributes["error.type"], p.count) for p in points] == [("error", "KeyError", 1)]
    assert tel.get_discovery_metrics().failed_queries == 1


def test_keyword_is_on_the_span_and_never_a_metric_attribute(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.discovery.search("customer jane@example.com") as q:
        q.set_results(1)
        q.span.set_attribute("app.extra", 7)
    span = telemetry_capture.spans("discovery.search")[0]
    assert span.attributes["mcp_exec.discovery.result_count"] == 1 and span.attributes["app.extra"] == 7
    for name in ("discovery.duration", "discovery.queries"):
        for p in telemetry_capture.metric_points(name):
            assert "jane@example.com" not in repr(dict(p.attributes))
            assert set(p.attributes) <= {"detail_level", "outcome", "error.type"}


@pytest.mark.parametrize(
    "act",
    [
        pytest.param(lambda tel: tel.discovery.end_search(), id="tool call (end_search)"),
        pytest.param(lambda tel: tel.execution.record("python3", 5.0, "success", 0), id="execution"),
        pytest.param(lambda tel: tel.sdk.record(4.0, 3, 1200), id="sdk generation"),
        pytest.param(lambda tel: tel.filtering.record("filter", 10_000, 500, 1.0), id="filter"),
        pytest.param(lambda tel: tel.skills.record("report", 3.0, True), id="skill run"),
    ],
)
def test_a_query_is_continued_only_when_the_next_step_is_another_query(telemetry_capture, act):
    tel = telemetry_capture.telemetry
    for _ in range(3):  # search, act on it: three hits
        with tel.discovery.search("orders") as q:
            q.set_results(2)
        act(tel)
        act(tel)
    with tel.discovery.search("orders") as q:  # searched again straight away: continued
        q.set_results(2)
    with tel.discovery.search("invoices") as q:
        q.set_results(1)
    d = tel.get_discovery_metrics()
    assert (d.total_queries, d.continued_queries, d.hit_rate) == (5, 1, 0.8)
