"""Prometheus: the design's series through the official exporter, in text and served on /metrics."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from mcp_exec_telemetry import observe


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _session(tel) -> None:
    for i, count in enumerate([2, 0, 5]):
        with tel.discovery.search(f"q{i}") as q:
            q.set_results(count)
        tel.security.pii_detected("email")
    for ms in (80, 450, 900, 1600):
        tel.execution.record("python3", ms, "success", exit_code=0)
    tel.skills.save("export_json", "python3")
    tel.skills.record("export_json", 10)
    tel.skills.record("export_json", 12)
    tel.filtering.record("filter", 4000, 400, 2)


def test_namespace_vtcode_gives_the_design_series():
    with observe(namespace="vtcode", history=False) as tel:
        _session(tel)
        text = tel.export_prometheus()
    s = _samples(text)
    assert sum(v for (name, _), v in s.items() if name == "vtcode_discovery_queries_total") == 3
    assert s[("vtcode_discovery_queries_total", (("detail_level", "name-and-description"), ("outcome", "empty")))] == 1
    assert s[("vtcode_discovery_hit_rate", ())] == round(2 / 3, 6)
    assert s[("vtcode_pii_detections_total", (("pattern", "email"),))] == 3
    assert s[("vtcode_skill_reuse_ratio", ())] == 2.0
    assert s[("vtcode_context_tokens_saved_total", ())] == 900
    labels = (("language", "python3"), ("outcome", "success"))
    bucket = {dict(k)["le"]: v for (name, k), v in s.items() if name == "vtcode_execution_duration_seconds_bucket"}
    assert (bucket["0.1"], bucket["0.5"], bucket["1.0"], bucket["2.0"], bucket["+Inf"]) == (1, 2, 3, 4, 4)
    assert s[("vtcode_execution_duration_seconds_count", labels)] == 4
    assert abs(s[("vtcode_execution_duration_seconds_sum", labels)] - 3.03) < 1e-9


def test_default_namespace_and_types():
    with observe(history=False) as tel:
        _session(tel)
        families = {f.name: f.type for f in text_string_to_metric_families(tel.export_prometheus())}
    assert families["mcp_exec_discovery_queries"] == "counter"
    assert families["mcp_exec_discovery_hit_rate"] == "gauge"
    assert families["mcp_exec_execution_duration_seconds"] == "histogram"
    assert families["mcp_exec_skill_reuse_ratio"] == "gauge"


def test_prometheus_port_serves_metrics_over_http():
    with observe(history=False, prometheus=0, namespace="vtcode") as tel:
        _session(tel)
        port = tel.prometheus_port
        assert port
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        s = _samples(body)
        assert s[("vtcode_pii_detections_total", (("pattern", "email"),))] == 3
        tel.security.pii_detected("email", 4)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert _samples(body)[("vtcode_pii_detections_total", (("pattern", "email"),))] == 7
    # Shut down with the session.
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
        served_after = True
    except OSError:
        served_after = False
    assert not served_after


def test_export_after_the_session_ended_shows_the_final_totals():
    with observe(history=False) as tel:
        _session(tel)
    s = _samples(tel.export_prometheus())
    assert s[("mcp_exec_pii_detections_total", (("pattern", "email"),))] == 3
