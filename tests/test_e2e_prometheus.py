"""End to end against a real Prometheus: it scrapes the SDK's ``/metrics`` every second, and the
HTTP API (``/api/v1/query``) answers exactly what a scripted session recorded; every panel of
``examples/grafana-dashboard.json`` returns data from it.

One Prometheus serves the whole module (Prometheus 2.42 holds back target discovery ~5 s after
start). The session records in two phases, each confirmed by a scrape that started after it, so
rate()/increase() panels have two different samples to work with.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from mcp_exec_telemetry import observe
from tests.conftest import _OTEL_VARS as CONFTEST_OTEL_VARS
from tests.servers import PrometheusServer, require_binary

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "examples" / "grafana-dashboard.json"
JOB = "mcp-exec-e2e"
SEL = f'job="{JOB}"'
SERVICE = "e2e-agent"

_OTEL_VARS = (*CONFTEST_OTEL_VARS, "OTEL_EXPORTER_PROMETHEUS_PORT")


def _phase_a(tel: Any) -> None:
    # Discovery: q0 (2 results) and q1 (empty) are each followed by another search: "continued".
    tel.discovery.record("orders", "name-only", 20, 2)
    tel.discovery.record("orders by customer", "name-only", 30, 0)
    tel.discovery.record("customer orders", "name-and-description", 40, 5, cache_hit=True)
    tel.sdk.record(120, 5, 2048)
    for ms in (80, 300, 450, 700):
        tel.execution.record("python3", ms, "success", exit_code=0)
    tel.execution.record("javascript", 3000, "failure", exit_code=1)
    tel.filtering.record("filter", 40_000, 4_000, 2)
    tel.skills.save("export_csv", "python3")
    tel.skills.save("fetch_orders", "python3")
    tel.skills.record("export_csv", 10)
    tel.skills.record("export_csv", 12)
    tel.skills.record("fetch_orders", 15)
    tel.security.pii_detected("email", 3)
    tel.security.pii_detected("ssn")
    tel.security.pii_detected("credit_card")
    tel.security.tokens_created(5)


def _phase_b(tel: Any) -> None:
    tel.discovery.record("invoices", "full", 25, 1)
    tel.sdk.record(80, 3, 1024, cache_hit=True)
    for ms in (900, 1600):
        tel.execution.record("python3", ms, "success", exit_code=0)
    tel.filtering.record("filter", 8_000, 800, 1)
    for _ in range(3):
        tel.skills.record("export_csv", 11)
    tel.skills.save("scratch", "python3")
    tel.skills.delete("scratch")
    tel.security.pii_detected("email", 2)
    tel.security.tokens_created(2)


def _wait_for_scrape_after(prom: PrometheusServer, t: float) -> None:
    """Wait until Prometheus holds a sample from a scrape that started after ``t`` (Unix seconds)."""
    prom.wait_for_value(f"max(timestamp(mcp_exec_execution_duration_seconds_count{{{SEL}}}))", lambda ts: ts > t, timeout=30)


@pytest.fixture(scope="module")
def scraped() -> Iterator[tuple[PrometheusServer, str]]:
    """Prometheus after both phases were scraped, and the SDK's own exposition at that moment."""
    require_binary("prometheus")
    with pytest.MonkeyPatch.context() as mp:
        for name in _OTEL_VARS:
            mp.delenv(name, raising=False)
        with observe(service_name=SERVICE, prometheus=0, history=False) as tel:
            port = tel.prometheus_port
            assert port
            _phase_a(tel)
            done_a = time.time()
            with PrometheusServer([f"127.0.0.1:{port}"], scrape_interval="1s", job_name=JOB) as server:
                server.wait_for_targets_up(timeout=60)
                _wait_for_scrape_after(server, done_a)
                _phase_b(tel)
                done_b = time.time()
                _wait_for_scrape_after(server, done_b)
                yield server, tel.export_prometheus()


@pytest.fixture(scope="module")
def prom(scraped: tuple[PrometheusServer, str]) -> PrometheusServer:
    return scraped[0]


def q(prom: PrometheusServer, promql: str) -> float | None:
    return prom.query_scalar(promql)


def by_label(prom: PrometheusServer, promql: str, label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in prom.query(promql)}


# --------------------------------------------------------------------------- counters


def test_discovery_counters(prom):
    assert q(prom, f"sum(mcp_exec_discovery_queries_total{{{SEL}}})") == 4
    assert by_label(prom, f"sum by (outcome) (mcp_exec_discovery_queries_total{{{SEL}}})", "outcome") == {"success": 3, "empty": 1}
    assert by_label(prom, f"sum by (detail_level) (mcp_exec_discovery_queries_total{{{SEL}}})", "detail_level") == {
        "name-only": 2,
        "name-and-description": 1,
        "full": 1,
    }
    assert by_label(prom, f"mcp_exec_discovery_continued_queries_total{{{SEL}}}", "outcome") == {"success": 1, "failure": 1}
    assert q(prom, f'mcp_exec_discovery_cache_hits_total{{{SEL},detail_level="name-and-description"}}') == 1
    # successful and not continued / all = (3 - 1) / 4
    assert q(prom, f"mcp_exec_discovery_hit_rate{{{SEL}}}") == 0.5


def test_step_counters(prom):
    assert q(prom, f"mcp_exec_sdk_tools_included_total{{{SEL}}}") == 8
    assert q(prom, f"mcp_exec_sdk_ipc_handler_size_bytes_total{{{SEL}}}") == 3072
    assert by_label(prom, f"mcp_exec_sdk_duration_seconds_count{{{SEL}}}", "cache_hit") == {"false": 1, "true": 1}
    assert q(prom, f'mcp_exec_filtering_input_size_bytes_total{{{SEL},operation="filter"}}') == 48_000
    assert q(prom, f'mcp_exec_filtering_output_size_bytes_total{{{SEL},operation="filter"}}') == 4_800
    assert q(prom, f"mcp_exec_context_tokens_saved_total{{{SEL}}}") == (48_000 - 4_800) / 4
    assert q(prom, f"mcp_exec_filtering_reduction_ratio{{{SEL}}}") == 0.9
    assert by_label(prom, f"mcp_exec_pii_detections_total{{{SEL}}}", "pattern") == {"email": 5, "ssn": 1, "credit_card": 1}
    assert q(prom, f"mcp_exec_security_tokens_created_total{{{SEL}}}") == 7


def test_skills(prom):
    runs = by_label(prom, f"sum by (skill_name) (mcp_exec_skills_duration_seconds_count{{{SEL}}})", "skill_name")
    assert runs == {"export_csv": 5, "fetch_orders": 1}
    assert q(prom, f'mcp_exec_skills_created_total{{{SEL},language="python3"}}') == 3
    assert q(prom, f"mcp_exec_skills_deleted_total{{{SEL}}}") == 1
    assert q(prom, f"mcp_exec_skills_active{{{SEL}}}") == 2
    assert q(prom, f"mcp_exec_skill_reuse_ratio{{{SEL}}}") == 3.0  # 6 runs / 2 active


def test_resource_arrives_as_target_info(prom):
    (info,) = prom.query(f"target_info{{{SEL}}}")
    assert info["metric"]["service_name"] == SERVICE
    assert info["metric"]["telemetry_distro_name"] == "mcp-exec-telemetry"


# --------------------------------------------------------------------------- execution histogram

# python3/success: 80, 300, 450, 700, 900, 1600 ms; javascript/failure: 3000 ms.
PY_OK = f'{SEL},language="python3",outcome="success"'


def test_execution_counts_sum_and_success_rate(prom):
    assert q(prom, f"mcp_exec_execution_duration_seconds_count{{{PY_OK}}}") == 6
    assert q(prom, f"mcp_exec_execution_duration_seconds_sum{{{PY_OK}}}") == pytest.approx(4.03, abs=1e-9)
    assert q(prom, f'mcp_exec_execution_duration_seconds_count{{{SEL},language="javascript",outcome="failure"}}') == 1
    assert q(prom, f"mcp_exec_execution_success_rate{{{SEL}}}") == round(6 / 7, 6)


def test_execution_bucket_counts(prom):
    buckets = by_label(prom, f"mcp_exec_execution_duration_seconds_bucket{{{PY_OK}}}", "le")
    # The design's 100 ms, 500 ms and 1 s boundaries, as the official exporter spells them.
    assert (buckets["0.1"], buckets["0.5"], buckets["1.0"]) == (1, 3, 5)
    assert buckets == {
        "0.01": 0, "0.05": 0, "0.1": 1, "0.25": 1, "0.5": 3, "1.0": 5, "2.0": 6,
        "5.0": 6, "10.0": 6, "30.0": 6, "60.0": 6, "+Inf": 6,
    }  # fmt: skip
    summed = by_label(prom, f"sum by (le) (mcp_exec_execution_duration_seconds_bucket{{{SEL}}})", "le")
    assert (summed["0.1"], summed["0.5"], summed["1.0"], summed["2.0"], summed["5.0"], summed["+Inf"]) == (1, 3, 5, 6, 7, 7)


@pytest.mark.parametrize(
    ("quantile", "expected"),
    [
        # Cumulative buckets summed over both series: le 0.5 -> 3, 1.0 -> 5, 2.0 -> 6, 5.0 -> 7 (of 7).
        # Prometheus interpolates linearly inside the first bucket whose count reaches q * 7:
        (0.5, 0.5 + (1.0 - 0.5) * (3.5 - 3) / (5 - 3)),  # rank 3.5 in (0.5, 1.0] -> 0.625
        (0.95, 2.0 + (5.0 - 2.0) * (6.65 - 6) / (7 - 6)),  # rank 6.65 in (2.0, 5.0] -> 3.95
        (0.1, 0.05 + (0.1 - 0.05) * (0.7 - 0) / (1 - 0)),  # rank 0.7 in (0.05, 0.1] -> 0.085
    ],
)
def test_histogram_quantile_over_execution_buckets(prom, quantile, expected):
    promql = f"histogram_quantile({quantile}, sum by (le) (mcp_exec_execution_duration_seconds_bucket{{{SEL}}}))"
    assert q(prom, promql) == pytest.approx(expected, rel=1e-9)


def test_python3_median_alone(prom):
    # python3 only: le 0.25 -> 1, 0.5 -> 3 of 6; rank 3 is the top of (0.25, 0.5].
    promql = f"histogram_quantile(0.5, sum by (le) (mcp_exec_execution_duration_seconds_bucket{{{PY_OK}}}))"
    assert q(prom, promql) == pytest.approx(0.5, rel=1e-9)


def test_prometheus_holds_exactly_the_sdk_exposition(scraped):
    """Every sample of the SDK's own exposition is in Prometheus with the same value."""
    from prometheus_client.parser import text_string_to_metric_families

    prom, exposition = scraped
    checked = 0
    for family in text_string_to_metric_families(exposition):
        if family.name == "target_info":
            continue
        for sample in family.samples:
            matchers = ",".join([SEL] + [f'{k}="{v}"' for k, v in sorted(sample.labels.items())])
            value = q(prom, f"{sample.name}{{{matchers}}}")
            assert value == pytest.approx(sample.value, rel=1e-9), (sample.name, sample.labels)
            checked += 1
    assert checked > 100


# --------------------------------------------------------------------------- Grafana dashboard

# What Grafana substitutes before sending a panel's query; $job as a regex matching our job only.
GRAFANA_VARS = {
    "job": JOB,  # a single value, as Grafana sends it (no regex metacharacters in it)
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}


def substitute(expr: str) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in GRAFANA_VARS, f"unknown dashboard variable ${name} in {expr!r}"
        return GRAFANA_VARS[name]

    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)
    assert "$" not in out
    return out


def _dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def _panels(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in doc["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows
    return [p for p in out if p.get("type") != "row"]


def _exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in _panels(_dashboard()) for t in p.get("targets", [])]


KPI_TITLES = [
    "Discovery hit rate",
    "Execution success rate",
    "Average execution time",
    "p95 execution duration",
    "Tokens saved",
    "Skill reuse ratio",
    "PII detections by pattern",
    "Top skills by runs",
    "Execution duration distribution",
]


def test_dashboard_has_the_design_kpis_and_grafana_variables():
    doc = _dashboard()
    titles = [p["title"] for p in _panels(doc)]
    assert all(t in titles for t in KPI_TITLES), sorted(set(KPI_TITLES) - set(titles))
    assert len(titles) == len(set(titles))
    assert len({p["id"] for p in _panels(doc)}) == len(titles)
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    job = variables["job"]
    assert job["type"] == "query" and job["includeAll"] and job["allValue"] == ".*"
    assert job["datasource"]["uid"] == "${datasource}"
    for panel in _panels(doc):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])
    quantile = next(p for p in _panels(doc) if p["title"] == "p95 execution duration")
    assert quantile["targets"][0]["expr"].startswith("histogram_quantile(0.95,")


def test_dashboard_job_variable_lists_the_scraped_job(prom):
    doc = _dashboard()
    (job,) = [v for v in doc["templating"]["list"] if v["name"] == "job"]
    query = job["query"]["query"] if isinstance(job["query"], dict) else job["query"]
    m = re.fullmatch(r"label_values\((\w+)\s*,\s*job\)", query)
    assert m, query
    assert JOB in by_label(prom, f"count by (job) ({m.group(1)})", "job")


# Panels whose value over the scripted session is known exactly (the others use rate()/increase(),
# whose extrapolation only allows checking that they return finite data).
EXACT = {
    "Discovery hit rate": 0.5,  # (3 successful - 1 of them continued) / 4
    "Execution success rate": 6 / 7,
    "Average execution time": (4.03 + 3.0) / 7,
    "p95 execution duration": 3.95,
    "Tokens saved": 10_800,
    "Skill reuse ratio": 3.0,
}


@pytest.mark.parametrize(("title", "expr"), _exprs(), ids=[f"{t}: {e[:40]}" for t, e in _exprs()])
def test_every_dashboard_query_returns_data(prom, title, expr):
    result = prom.query(substitute(expr))
    assert result, f"{title}: {expr!r} returned no data"
    values = [float(r["value"][1]) for r in result]
    assert all(math.isfinite(v) for v in values), (title, result)
    if title in EXACT:
        assert len(values) == 1 and values[0] == pytest.approx(EXACT[title], rel=1e-9), (title, values)


def test_breakdown_panels_name_what_was_recorded(prom):
    exprs = dict(_exprs())
    pii = by_label(prom, substitute(exprs["PII detections by pattern"]), "pattern")
    assert set(pii) == {"email", "ssn", "credit_card"} and pii["email"] > 0
    skills = prom.query(substitute(exprs["Top skills by runs"]))
    ranked = sorted(skills, key=lambda r: -float(r["value"][1]))
    assert [r["metric"]["skill_name"] for r in ranked] == ["export_csv", "fetch_orders"]
    assert float(ranked[0]["value"][1]) > 0
    heat = by_label(prom, substitute(exprs["Execution duration distribution"]), "le")
    assert set(heat) == {"0.01", "0.05", "0.1", "0.25", "0.5", "1.0", "2.0", "5.0", "10.0", "30.0", "60.0", "+Inf"}
    # Between the two scrapes only the 900 ms and 1600 ms runs arrived: nothing below 1 s grew.
    assert heat["0.5"] == 0 and heat["1.0"] > 0 and heat["2.0"] > heat["1.0"]


# --------------------------------------------------------------------------- through the collector

_COLLECTOR_UNITS = {"s": "seconds", "By": "bytes", "MiBy": "mebibytes", "1": ""}


def _collector_series(metric: Any) -> set[str]:
    """Series names otelcol-contrib's prometheus exporter gives an OTLP metric (its default
    add_metric_suffixes): unit suffix, ``_total`` on monotonic sums, ``_ratio`` on unit-"1" gauges."""
    tokens = [t for t in re.split(r"[^a-zA-Z0-9]+", metric.name) if t]
    unit = "" if metric.unit.startswith("{") else _COLLECTOR_UNITS[metric.unit]
    kind = type(metric.data).__name__
    if unit and unit not in tokens:
        tokens.append(unit)
    if kind == "Sum" and metric.data.is_monotonic:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if metric.unit == "1" and kind == "Gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    name = "_".join(tokens)
    return {name + s for s in ("_bucket", "_sum", "_count")} if kind == "Histogram" else {name}


def test_dashboard_series_have_the_same_names_scraped_directly_and_through_the_collector():
    """The dashboard works whether Prometheus scrapes the SDK (:9464) or the collector (:8889)."""
    with pytest.MonkeyPatch.context() as mp:
        for name in _OTEL_VARS:
            mp.delenv(name, raising=False)
        with observe(history=False) as tel:
            _phase_a(tel)
            _phase_b(tel)
            data = tel.metrics_data()
            lines = tel.export_prometheus().splitlines()
            direct = {line.split("{")[0].split(" ")[0] for line in lines if line and not line.startswith("#")}
    assert data is not None
    via_collector = set().union(*(_collector_series(m) for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics))
    used = {n for _, expr in _exprs() for n in re.findall(r"\b(mcp_exec_[a-z_]+)\b", expr)}
    assert used, "no mcp_exec series in the dashboard"
    assert used <= direct, sorted(used - direct)
    assert used <= via_collector, sorted(used - via_collector)
    # The collector renames the unit-"1" rate gauges, which is why the dashboard computes rates from counters.
    assert "mcp_exec_discovery_hit_rate" in direct and "mcp_exec_discovery_hit_rate_ratio" in via_collector


def test_cancelled_runs_stay_out_of_the_success_rate_panel_and_the_documented_query():
    """Issue 11: a cancelled step is neither a success nor a failure, in Grafana as in the summary.

    2 successes, 1 failure and 2 cancelled runs (``GeneratorExit`` inside the step): the summary says
    2/3, and so must the dashboard's "Execution success rate" panel and docs/PRODUCTION.md's query.
    """
    require_binary("prometheus")
    job = "mcp-exec-e2e-cancelled"

    with pytest.MonkeyPatch.context() as mp:
        for name in _OTEL_VARS:
            mp.delenv(name, raising=False)
        with observe(service_name=SERVICE, prometheus=0, history=False) as tel:

            def interrupted():
                with tel.execution.run("python3"):
                    yield

            for code in (0, 0, 1):
                with tel.execution.run("python3") as ex:
                    ex.set_result(code)
            for _ in range(2):
                g = interrupted()
                next(g)
                g.close()
            assert tel.summary()["execution"]["success_rate"] == round(2 / 3, 6)
            with PrometheusServer([f"127.0.0.1:{tel.prometheus_port}"], scrape_interval="1s", job_name=job) as prom:
                prom.wait_for_targets_up(timeout=60)
                sel = f'job="{job}"'
                prom.wait_for_value(f'sum(mcp_exec_execution_duration_seconds_count{{{sel},outcome="cancelled"}})', lambda v: v == 2, timeout=30)
                (panel,) = [e for t, e in _exprs() if t == "Execution success rate"]
                assert q(prom, panel.replace("$job", job)) == pytest.approx(2 / 3, rel=1e-9), panel
                doc = (ROOT / "docs" / "PRODUCTION.md").read_text(encoding="utf-8")
                (query,) = [ln for ln in doc.splitlines() if ln.startswith("sum(rate(mcp_exec_execution_duration_seconds_count")]
                # The documented query over the whole scrape history instead of the last 5 minutes.
                cumulative = query.replace("rate(", "max_over_time(").replace("[5m]", "[1h]").replace("{", "{" + sel + ",")
                assert q(prom, cumulative) == pytest.approx(2 / 3, rel=1e-9), query
