"""The fleet view: a real Prometheus scrapes two agent processes at once, and ``--prometheus`` sums them.

Each agent is its own process with its own ``/metrics`` endpoint and its own workload. The
dashboard, report and advice computed with PromQL must equal the ones computed from the two
agents' own summaries, aggregated as the history aggregates sessions: the fleet is the sum of both.
That stays true after both agents exit (their last samples are still in the window).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator

import pytest

from mcp_exec_telemetry import advisor, dashboard
from mcp_exec_telemetry.fleet import PrometheusSource, parse_duration
from mcp_exec_telemetry.history import aggregate
from tests.conftest import _OTEL_VARS
from tests.servers import PrometheusServer, require_binary

REPO = Path(__file__).resolve().parent.parent

_AGENT = textwrap.dedent(
    """
    import json, sys
    from mcp_exec_telemetry import observe
    v = int(sys.argv[1])
    with observe(service_name=f"agent-{v}", prometheus=0, history=False) as tel:
        tel.discovery.record("orders", "name-only", 20 + v, 2)
        tel.discovery.record("orders by customer", "name-and-description", 30, 0)
        for i in range(3 + v):
            tel.discovery.record(f"q{i}", "full", 10 * (i + 1), 1 + i, cache_hit=i == 0)
        tel.sdk.record(100 + v, 4 + v, 1024, cache_hit=v == 2)
        for i, ms in enumerate((80, 300, 700, 1600, 40 * v)):
            tel.execution.record("python3" if i % 2 else "javascript", ms, "failure" if i == v else "success", 0 if i != v else 1)
        tel.execution.record("python3", 30_000, "timeout", -1)
        tel.execution.record_memory("python3", 40 + 8 * v)
        tel.filtering.record("filter", 40_000 * v, 4_000, 2)
        tel.filtering.record("map", 8_000, 8_000 + 400 * v, 1)
        for name in ("export_csv", "fetch_orders", f"only_{v}"):
            tel.skills.save(name, "python3")
        for name, runs in (("export_csv", 5 + v), ("fetch_orders", 2), (f"only_{v}", 1)):
            for r in range(runs):
                tel.skills.record(name, 10 + r, r != 1)
        tel.skills.delete(f"only_{v}")
        tel.security.pii_detected("email", 3 + v)
        tel.security.pii_detected("ssn", v)
        tel.security.pii_tokenized("email", 3 + v)
        tel.security.tokens_created(3 + v)
        tel.security.audit("tokenized", "email", "info")
        print(json.dumps({"port": tel.prometheus_port, "summary": tel.summary()}), flush=True)
        sys.stdin.readline()  # stay up (and scraped) until the test is done looking
    """
)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _OTEL_VARS and k != "OTEL_EXPORTER_PROMETHEUS_PORT"}


@pytest.fixture(scope="module")
def fleet() -> Iterator[tuple[PrometheusServer, list[subprocess.Popen[str]], dict[str, Any]]]:
    """Two agent processes, a Prometheus scraping both every second, and the agents' own summaries."""
    require_binary("prometheus")
    agents = [subprocess.Popen([sys.executable, "-c", _AGENT, str(v)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
              for v in (1, 2)]
    try:
        outs = [json.loads(a.stdout.readline()) for a in agents]  # type: ignore[union-attr]
        expected = aggregate(o["summary"] for o in outs)
        with PrometheusServer([f"127.0.0.1:{o['port']}" for o in outs], scrape_interval="1s", job_name="agents") as prom:
            prom.wait_for_targets_up(timeout=60)
            runs = expected["execution"]["total_executions"]
            prom.wait_for_value("sum(mcp_exec_execution_duration_seconds_count)", lambda v: v == runs, timeout=60)
            prom.wait_for_value("count(target_info)", lambda v: v == 2, timeout=30)
            yield prom, agents, expected
    finally:
        for a in agents:
            if a.poll() is None:
                a.kill()
            a.wait(timeout=10)
            for stream in (a.stdin, a.stdout):
                if stream:
                    stream.close()


def cli(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "mcp_exec_telemetry", *args], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    return r.stdout


_SECTIONS = ("discovery", "execution", "sdk", "filtering", "skills", "security")


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    """What Prometheus can know: every section but the largest memory sample (a histogram keeps no maximum)."""
    out = {s: dict(summary[s]) for s in _SECTIONS}
    out["execution"].pop("memory_peak_mb")
    return {"sessions": summary["sessions"], "service_names": summary["service_names"], **out}


@pytest.mark.server
def test_the_fleet_report_is_the_sum_of_both_agents(fleet) -> None:
    prom, _agents, expected = fleet
    doc = json.loads(cli("report", "--prometheus", prom.url, "--since", "10m"))
    assert (doc["kind"], doc["source"], doc["period"]["since"]) == ("mcp_exec_fleet_report", prom.url, "10m")
    assert _comparable(doc) == _comparable(expected)
    # The figures the test relies on are not trivially equal: both agents contributed.
    assert doc["sessions"] == 2 and doc["service_names"] == {"agent-1": 1, "agent-2": 1}
    assert doc["execution"]["total_executions"] == 12 and doc["execution"]["timeouts"] == 2
    assert (doc["skills"]["top_skills"][0]["name"], doc["skills"]["top_skills"][0]["runs"]) == ("export_csv", 13)


@pytest.mark.server
def test_the_fleet_dashboard_equals_the_dashboard_of_both_agents_summed(fleet) -> None:
    prom, _agents, expected = fleet
    out = cli("dashboard", "--prometheus", prom.url, "--since", "10m", "--width", "72", "--style", "ascii")
    assert out == dashboard.render(expected, None, width=72, fancy=False, color=False, subtitle="fleet, last 10m - 2 sessions")
    assert "| Execution Success Rate:    66.7% !!" in out


@pytest.mark.server
def test_the_fleet_advice_equals_the_advice_on_both_agents_summed(fleet) -> None:
    prom, _agents, expected = fleet
    doc = json.loads(cli("advise", "--prometheus", prom.url, "--since", "10m", "--format", "json"))
    assert doc["scope"] == "fleet, last 10m"
    assert doc["findings"] == [f.to_dict() for f in advisor.advise(expected)]
    assert {f["check"] for f in doc["findings"]} >= {"high_timeout_rate", "low_pii_protection"}


@pytest.mark.server
def test_a_window_before_the_agents_ran_holds_nothing(fleet) -> None:
    prom, _agents, _expected = fleet
    import time

    empty = PrometheusSource(prom.url).summary("1m", end=time.time() - 3600)
    assert (empty["sessions"], empty["execution"]["total_executions"], empty["discovery"]["total_queries"]) == (0, 0, 0)


@pytest.mark.server
def test_agents_that_exited_still_count_in_the_window(fleet) -> None:
    prom, agents, expected = fleet
    for a in agents:
        a.stdin.write("\n")  # type: ignore[union-attr]
        a.stdin.flush()  # type: ignore[union-attr]
        assert a.wait(timeout=30) == 0
    prom.wait_for_value('count(up{job="agents"} == 0)', lambda v: v == 2, timeout=30)  # scrapes now fail: the series went stale
    source = PrometheusSource(prom.url, matchers='job="agents"')
    assert _comparable(source.summary("10m")) == _comparable(expected)
    assert source.queries > 10  # computed by Prometheus, one PromQL query per family


def test_durations_are_prometheus_durations() -> None:
    assert (parse_duration("90s"), parse_duration("30m"), parse_duration("24h"), parse_duration("7d")) == (90, 1800, 86400, 604800)
    for bad in ("", "24", "h", "1.5h", "-1h", "0m", "24 hours"):
        with pytest.raises(ValueError, match="bad duration"):
            parse_duration(bad)


_LONG_RUNNING = textwrap.dedent(
    """
    import json, sys
    from mcp_exec_telemetry import observe
    with observe(service_name="long-runner", prometheus=0, history=False) as tel:
        for ms in (50, 70, 900, 4000):  # before the window
            tel.execution.record("python3", ms, "success", 0)
        tel.discovery.record("before", "full", 10, 1)
        print(json.dumps({"port": tel.prometheus_port}), flush=True)
        sys.stdin.readline()
        for ms in (100, 200, 300):  # inside the window
            tel.execution.record("javascript", ms, "success" if ms < 300 else "failure", 0)
        tel.discovery.record("inside", "name-only", 20, 2)
        tel.discovery.record("inside again", "name-only", 30, 0)
        print("B", flush=True)
        sys.stdin.readline()
    """
)


@pytest.mark.server
def test_a_long_running_agent_counts_only_what_it_did_inside_the_window() -> None:
    """The window's share of a series that began before it: its last value minus its value at the start."""
    import math
    import time

    require_binary("prometheus")
    agent = subprocess.Popen([sys.executable, "-c", _LONG_RUNNING], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
    assert agent.stdin is not None and agent.stdout is not None
    try:
        port = json.loads(agent.stdout.readline())["port"]
        with PrometheusServer([f"127.0.0.1:{port}"], scrape_interval="1s", job_name="long") as prom:
            prom.wait_for_targets_up(timeout=60)
            prom.wait_for_value("sum(mcp_exec_execution_duration_seconds_count)", lambda v: v == 4, timeout=60)
            time.sleep(2.5)  # several scrapes of the "before" values
            window_start = time.time()
            agent.stdin.write("\n")
            agent.stdin.flush()
            assert agent.stdout.readline().strip() == "B"
            prom.wait_for_value("sum(mcp_exec_execution_duration_seconds_count)", lambda v: v == 7, timeout=60)
            since = math.ceil(time.time() - window_start) + 1
            end = window_start + since
            s = PrometheusSource(prom.url).summary(f"{since}s", end=end)
            e, d = s["execution"], s["discovery"]
            assert (e["total_executions"], e["successful_executions"], e["languages"], e["total_duration_ms"]) == (3, 2, {"javascript": 3}, 600.0)
            assert (d["total_queries"], d["detail_levels"], d["total_time_ms"]) == (2, {"name-only": 2}, 50.0)
            assert {k: v for k, v in e["duration_buckets_ms"].items() if v} == {"100": 1, "250": 1, "500": 1}
            whole = PrometheusSource(prom.url).summary("10m")
            assert (whole["execution"]["total_executions"], whole["discovery"]["total_queries"]) == (7, 3)
    finally:
        agent.kill()
        agent.wait(timeout=10)
        agent.stdin.close()
        agent.stdout.close()


_ONE_TASK = textwrap.dedent(
    """
    import sys
    from mcp_exec_telemetry import observe
    port, runs = int(sys.argv[1]), int(sys.argv[2])
    with observe(service_name="task-agent", prometheus=port, history=False) as tel:
        for i in range(runs):
            tel.execution.record("python3", 100 * (i + 1), "success", 0)
        print("RECORDED", flush=True)
        sys.stdin.readline()
    """
)


@pytest.mark.server
def test_agents_restarted_on_the_same_port_count_every_run() -> None:
    """One process per task on a fixed port: each new process resets the same series; nothing is lost."""
    from tests.servers import free_port

    require_binary("prometheus")
    port = free_port()

    def task(runs: int) -> subprocess.Popen[str]:
        p = subprocess.Popen([sys.executable, "-c", _ONE_TASK, str(port), str(runs)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(), cwd=REPO)
        assert p.stdout is not None and p.stdout.readline().strip() == "RECORDED"
        return p

    def end(p: subprocess.Popen[str]) -> None:
        p.stdin.write("\n")  # type: ignore[union-attr]
        p.stdin.flush()  # type: ignore[union-attr]
        assert p.wait(timeout=30) == 0
        p.stdin.close()  # type: ignore[union-attr]
        p.stdout.close()  # type: ignore[union-attr]

    first = task(5)
    with PrometheusServer([f"127.0.0.1:{port}"], scrape_interval="1s", job_name="tasks") as prom:
        prom.wait_for_targets_up(timeout=60)
        prom.wait_for_value("sum(mcp_exec_execution_duration_seconds_count)", lambda v: v == 5, timeout=60)
        end(first)
        second = task(3)  # same port, same series: the counter goes from 5 back to 3
        try:
            prom.wait_for_value("sum(mcp_exec_execution_duration_seconds_count)", lambda v: v == 3, timeout=60)
            s = PrometheusSource(prom.url, matchers='job="tasks"').summary("10m", step="1s")
        finally:
            end(second)
    assert (s["sessions"], s["execution"]["total_executions"], s["execution"]["total_duration_ms"]) == (2, 8, 1500.0 + 600.0)
