"""The code executor against real python3 and node child processes."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from mcp_exec_telemetry.integrations.executor import CodeExecutor
from mcp_exec_telemetry.testing import capture

MIB = 1024 * 1024
NODE = shutil.which("node") or "/usr/bin/node"
needs_node = pytest.mark.skipif(not os.path.exists(NODE), reason="node is not installed")

# The child reports its own resident size just before allocating, then allocates 64 MiB and
# writes every page (bytearray() zero-fills, and the loop writes each 4 KiB page again).
ALLOCATE_64_MIB = """
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
print(rss_kib(), flush=True)
block = bytearray(64 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
"""


def test_peak_memory_of_a_64_mib_child_is_measured_from_the_kernel() -> None:
    ex = CodeExecutor(memory_limit_mb=512)
    empty = ex.execute("pass", "python3")
    big = ex.execute(ALLOCATE_64_MIB, "python3")
    assert (empty.exit_code, big.exit_code) == (0, 0)
    # Baseline 1: an empty interpreter run the same way. The difference is the 64 MiB, within 20%.
    grown = big.peak_rss_bytes - empty.peak_rss_bytes
    assert abs(grown - 64 * MIB) <= 0.2 * 64 * MIB, (empty.peak_rss_bytes, big.peak_rss_bytes)
    # Baseline 2: the child's own resident size right before allocating, plus 64 MiB.
    expected = int(big.stdout.split()[0]) * 1024 + 64 * MIB
    assert abs(big.peak_rss_bytes - expected) <= 0.2 * 64 * MIB, (expected, big.peak_rss_bytes)
    assert big.memory_mb == big.peak_rss_bytes / MIB


def test_a_timeout_kills_the_child_and_counts_as_a_timeout() -> None:
    code = "import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\nprint('started', flush=True)\ntime.sleep(60)\n"
    with capture() as cap:
        result = CodeExecutor(cap.telemetry).execute(code, "python3", timeout_s=0.5)
        assert result.timed_out is True
        assert result.exit_code == -9
        assert result.stdout == "started\n"
        assert 450 <= result.duration_ms < 5000  # the code's own run: from its start, seen where it runs
        summary = cap.summary()["execution"]
        assert (summary["total_executions"], summary["timeouts"], summary["successful_executions"]) == (1, 1, 0)
        (span,) = cap.spans("execution.run")
        assert span.attributes["mcp_exec.execution.timed_out"] is True
        assert span.attributes["process.exit.code"] == -9


def test_success_failure_and_the_reported_measurements() -> None:
    with capture() as cap:
        ex = CodeExecutor(cap.telemetry)
        ok = ex.execute("print('hello')", "python3")
        bad = ex.execute("import sys\nsys.stderr.write('boom')\nsys.exit(3)", "python3")
        assert (ok.exit_code, ok.stdout, ok.result_size_bytes, ok.success) == (0, "hello\n", 6, True)
        assert (bad.exit_code, bad.stderr, bad.success) == (3, "boom", False)
        s = cap.summary()["execution"]
        assert (s["total_executions"], s["successful_executions"], s["failed_executions"], s["languages"]) == (2, 1, 1, {"python3": 2})
        first = cap.spans("execution.run")[0]
        assert first.attributes["mcp_exec.execution.result_size_bytes"] == 6
        assert first.attributes["mcp_exec.execution.memory_mb"] == round(ok.memory_mb, 3)
        (mem,) = cap.metric_points("execution.memory")
        assert mem.count == 2


def test_output_is_capped_and_the_child_is_not_blocked() -> None:
    result = CodeExecutor().execute("import sys\nsys.stdout.write('x' * 1_000_000)", "python3", output_limit_bytes=1000)
    assert (result.exit_code, len(result.stdout), result.output_truncated, result.result_size_bytes) == (0, 1000, True, 1000)


def test_the_memory_limit_stops_a_python_child() -> None:
    result = CodeExecutor().execute("block = bytearray(400 << 20)", "python3", memory_limit_mb=200)
    assert result.exit_code == 1
    assert "MemoryError" in result.stderr


@needs_node
def test_javascript_runs_in_node_with_the_trace_context() -> None:
    with capture() as cap:
        result = CodeExecutor(cap.telemetry).execute("console.log(process.env.TRACEPARENT)", "javascript")
        (span,) = cap.spans("execution.run")
    ctx = span.get_span_context()
    assert result.exit_code == 0
    assert result.stdout.strip() == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert span.attributes["mcp_exec.execution.language"] == "javascript"
    assert 20 * MIB < result.peak_rss_bytes < 400 * MIB  # a real node process, measured


@needs_node
def test_node_heap_limit_aborts_a_runaway_javascript_child() -> None:
    code = "const a = []; while (true) a.push(new Array(1e6).fill(1));"
    ex = CodeExecutor()
    result = ex.execute(code, "javascript", memory_limit_mb=96, timeout_s=20)
    assert result.timed_out is False
    assert result.exit_code != 0
    assert "heap out of memory" in result.stderr
    assert result.exit_reason == "memory"
    # The data-segment limit alone holds the heap: no V8 flag, which would slow every node start.
    assert ex.command("javascript", "main.js", 96) == [ex.node, "main.js"]


def test_python_children_get_traceparent_of_the_execution_span() -> None:
    with capture() as cap:
        result = CodeExecutor(cap.telemetry).execute("import os\nprint(os.environ['TRACEPARENT'])", "python3")
        (span,) = cap.spans("execution.run")
    ctx = span.get_span_context()
    assert result.stdout.strip() == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    assert span.parent is not None and span.parent.span_id == cap.telemetry.session_span.get_span_context().span_id


def test_unknown_language_is_rejected() -> None:
    with pytest.raises(ValueError):
        CodeExecutor().execute("x", "ruby")


def test_child_environment_is_minimal() -> None:
    os.environ["MCP_EXEC_SECRET_FOR_TEST"] = "s3cret"
    try:
        result = CodeExecutor().execute("import os\nprint(os.environ.get('MCP_EXEC_SECRET_FOR_TEST'))", "python3", env={"EXTRA": "1"})
    finally:
        del os.environ["MCP_EXEC_SECRET_FOR_TEST"]
    assert result.stdout == "None\n"
    assert sys.executable


REPORTS = 40


@pytest.mark.parametrize("language", ["python3", pytest.param("javascript", marks=needs_node)])
def test_filtering_reports_sent_just_before_the_code_exits_are_all_counted(language: str) -> None:
    """Reports are fire-and-forget: the code may end (closing its socket) before the agent reads them."""
    from mcp_exec_telemetry.integrations.sdkgen import javascript_module, python_module

    if language == "python3":
        code = python_module([]) + f"\nfor i in range({REPORTS}):\n    filter_data('map', list(range(10)), lambda d: d[:1])\n"
    else:
        code = javascript_module([]) + (
            f"\n(async () => {{ for (let i = 0; i < {REPORTS}; i++) await filterData('map', [1, 2, 3], (d) => d.slice(0, 1)); }})();\n"
        )
    with capture() as cap:
        executor = CodeExecutor(cap.telemetry)
        for _ in range(3):
            result = executor.execute(code, language)
            assert result.exit_code == 0, result.stderr
        summary = cap.telemetry.summary()["filtering"]
    assert summary["operations"] == {"map": 3 * REPORTS}
    assert summary["total_operations"] == 3 * REPORTS


def test_a_burst_of_ended_report_connections_beyond_the_bound_is_served_not_refused(tmp_path) -> None:
    """Reports queued while the executing thread was busy (a loaded machine) are all counted.

    Each report is one short-lived connection; when the agent's loop gets to them, more than
    ``max_connections`` may wait in the backlog, all already ended. Retiring ended connections
    before refusing keeps every one of them.
    """
    import json
    import selectors
    import socket

    from mcp_exec_telemetry.integrations.executor import _Door

    with capture() as cap:
        executor = CodeExecutor(cap.telemetry, max_connections=4)
        door = _Door(str(tmp_path / "ipc.sock"))
        door.bind(executor)
        for _ in range(12):  # all sent and ended before the door accepts any of them
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(door.path)
            client.sendall(json.dumps({"type": "filtering", "operation": "map", "input_bytes": 100, "output_bytes": 10}).encode() + b"\n")
            client.close()
        sel = selectors.DefaultSelector()
        door.accept(sel)
        door.settle(sel)
        sel.close()
        door.close()
        executor.close()
        summary = cap.telemetry.summary()["filtering"]
    assert door.refused == 0
    assert summary["operations"] == {"map": 12}
