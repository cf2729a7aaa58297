"""The demo, run as a user runs it: a subprocess that starts a real MCP server over stdio."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from tests.servers.otlp import OtlpReceiver

DEMO = [sys.executable, "-m", "mcp_exec_telemetry.integrations.demo"]


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([*DEMO, *args], capture_output=True, text=True, timeout=60, env=full_env)


def test_demo_summary_has_non_zero_counts_in_every_step(tmp_path: Path) -> None:
    history = tmp_path / "history"
    proc = run_demo("--json", "--history", str(history), "--workdir", str(tmp_path / "work"))
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    d, e, sdk, f, k, sec = (s[x] for x in ("discovery", "execution", "sdk", "filtering", "skills", "security"))
    assert (d["total_queries"], d["successful_queries"], d["continued_queries"], d["cache_hits"]) == (5, 5, 2, 1)
    assert d["detail_levels"] == {"full": 2, "name-and-description": 1, "name-only": 2}
    assert (e["total_executions"], e["successful_executions"], e["languages"], e["timeouts"]) == (4, 4, {"javascript": 1, "python3": 3}, 0)
    assert e["memory_peak_mb"] > 0 and e["avg_duration_ms"] > 0
    assert (sdk["total_generations"], sdk["cache_hits"], sdk["tools_included"]) == (2, 1, 8)
    assert sdk["ipc_handler_size_bytes"] > 0
    # In the sandbox: 3 Python and 1 JavaScript filter_data per analysis run (3 runs: once, then the skill twice); 1 select in the agent.
    assert f["operations"] == {"filter": 3, "map": 1, "reduce": 6, "select": 1}
    assert f["total_input_bytes"] > f["total_output_bytes"] > 0 and f["estimated_tokens_saved"] > 0
    assert (k["total_skills"], k["active_skills"], k["executions"], k["successful_executions"]) == (2, 2, 2, 2)
    assert [t["name"] for t in k["top_skills"]] == ["top_enterprise_customers"]
    assert sec["patterns"] == {"credit_card": 1, "email": 3, "phone_number": 3}
    assert (sec["pii_detected"], sec["tokens_created"]) == (7, 7)
    # The session went to the history and the skills stayed on disk.
    from mcp_exec_telemetry.history import scan

    (session,) = scan(history).sessions
    assert session.doc["execution"]["total_executions"] == 4
    assert sorted(p.name for p in (tmp_path / "work" / "skills").iterdir()) == ["regions_and_weather", "top_enterprise_customers"]


def test_demo_prints_the_dashboard_and_exports_traces_over_otlp(tmp_path: Path) -> None:
    with OtlpReceiver() as rx:
        proc = run_demo("--otlp-endpoint", rx.grpc_endpoint, "--no-history", "--width", "72")
        assert proc.returncode == 0, proc.stderr
        spans = rx.wait_for(lambda: (lambda got: got if {"mcp-exec-demo", "mcp-demo-server"} <= {s.resource["service.name"] for s in got} else None)(rx.spans()))
    out = proc.stdout
    assert "MCP Execution Metrics Dashboard" in out
    assert "Execution Success Rate:    100%" in out
    assert json.loads(out[out.index("\n{") + 1 : out.rindex("}") + 1])["execution"]["total_executions"] == 4
    agent = [s for s in spans if s.resource["service.name"] == "mcp-exec-demo"]
    server = [s for s in spans if s.resource["service.name"] == "mcp-demo-server"]
    (session,) = [s for s in agent if s.name == "session"]
    assert {s.trace_id for s in agent} == {session.trace_id}
    by_id = {s.span_id: s for s in agent}
    calls = [s for s in agent if s.name.startswith("tools/call ")]
    assert len(calls) == 11  # 3 per Python analysis run (once, then twice as a skill) + 2 from JavaScript
    for call in calls:
        assert by_id[call.parent_span_id].name == "execution.run"
    server_calls = [s for s in server if s.name.startswith("tools/call ")]
    assert {s.parent_span_id for s in server_calls} == {c.span_id for c in calls}
    assert {s.trace_id for s in server_calls} == {session.trace_id}
