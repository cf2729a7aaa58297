"""The README's commands work: the quickstart prints a JSON summary and the KPI dashboard."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import repo_root


def test_quickstart_prints_the_summary_and_the_dashboard():
    out = subprocess.run([sys.executable, str(repo_root() / "examples" / "quickstart.py")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    summary = json.loads(text[: text.index("\n}\n") + 2])
    assert summary["service_name"] == "quickstart-agent"
    assert summary["discovery"]["total_queries"] == 2 and summary["discovery"]["hit_rate"] == 0.5
    assert summary["execution"]["total_executions"] == 4 and summary["execution"]["timeouts"] == 1
    assert summary["filtering"]["estimated_tokens_saved"] == (250_000 - 4_000 + 40_000 - 600) // 4
    assert summary["skills"]["reuse_ratio"] == 2.0
    assert "MCP Execution Metrics Dashboard" in text
    assert "Execution Success Rate:    75%" in text


def test_cli_lists_the_demo_and_its_help_runs():
    out = subprocess.run([sys.executable, "-m", "mcp_exec_telemetry", "demo", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--otlp-endpoint" in out.stdout
