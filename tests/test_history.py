"""Metrics history on disk: session files, daily and quarterly summaries, concurrency and crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from mcp_exec_telemetry import history, observe
from mcp_exec_telemetry.history import HistoryError, aggregate, load_session, report, scan, write_session

REPO = Path(__file__).resolve().parent.parent


def make_summary(
    start: str = "2024-11-08T10:00:00Z",
    end: str = "2024-11-08T10:30:00Z",
    *,
    queries: int = 10,
    hits: int = 8,
    successful: int = 9,
    continued: int = 1,
    query_ms: float = 450.0,
    runs: int = 8,
    runs_ok: int = 7,
    timeouts: int = 0,
    run_ms: float = 6800.0,
    languages: dict[str, int] | None = None,
    buckets: dict[str, int] | None = None,
    in_bytes: int = 40_000,
    out_bytes: int = 14_000,
    skills: list[tuple[str, int, int, float]] | None = None,
    active: int = 3,
    pii: int = 5,
    tokens_created: int = 5,
    service: str = "agent-a",
) -> dict[str, Any]:
    """A session summary in the exact shape of ``Telemetry.summary()``, with chosen counts."""
    top = skills if skills is not None else [("filter_test_files", 5, 5, 120.0), ("export_json", 2, 1, 40.0)]
    skill_runs = sum(r for _, r, _, _ in top)
    return {
        "timestamp": end,
        "start_time": start,
        "session_duration_ms": 1_800_000,
        "service_name": service,
        "discovery": {
            "total_queries": queries, "successful_queries": successful, "failed_queries": queries - successful,
            "continued_queries": continued, "hit_rate": round(hits / queries, 6) if queries else 0.0,
            "avg_response_time_ms": round(query_ms / queries, 3) if queries else 0.0, "total_time_ms": query_ms,
            "cache_hits": 3, "detail_levels": {"name-and-description": queries},
        },
        "execution": {
            "total_executions": runs, "successful_executions": runs_ok, "failed_executions": runs - runs_ok,
            "success_rate": round(runs_ok / runs, 6) if runs else 0.0, "avg_duration_ms": round(run_ms / runs, 3) if runs else 0.0,
            "total_duration_ms": run_ms, "languages": languages if languages is not None else {"python3": runs},
            "timeouts": timeouts, "memory_peak_mb": 64.0, "memory_avg_mb": 32.0,
            "duration_buckets_ms": buckets if buckets is not None else {"100": 2, "500": 3, "1000": runs - 5, "+Inf": 0},
        },
        "sdk": {
            "total_generations": 2, "failed_generations": 0, "avg_generation_time_ms": 15.0, "total_generation_time_ms": 30.0,
            "tools_included": 8, "ipc_handler_size_bytes": 2048, "cache_hits": 1, "cache_utilization": 0.5,
        },
        "filtering": {
            "total_operations": 14, "failed_operations": 0,
            "avg_reduction_ratio": round(1 - out_bytes / in_bytes, 6) if in_bytes else 0.0,
            "estimated_tokens_saved": int((in_bytes - out_bytes) / 4), "total_input_bytes": in_bytes,
            "total_output_bytes": out_bytes, "operations": {"filter": 10, "map": 4},
        },
        "skills": {
            "total_skills": active, "active_skills": active, "deleted_skills": 0, "executions": skill_runs,
            "successful_executions": sum(s for _, _, s, _ in top), "reuse_ratio": round(skill_runs / active, 6) if active else 0.0,
            "top_skills": [{"name": n, "runs": r, "successes": s, "avg_duration_ms": a} for n, r, s, a in top],
        },
        "security": {"pii_detected": pii, "patterns": {"email": pii}, "tokens_created": tokens_created, "audit_events": pii},
    }


def read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


# --- where and what is written -------------------------------------------------------------------


def test_ending_an_observed_session_writes_its_summary_under_its_start_day(tmp_path: Path, fake_clock: Any) -> None:
    with observe(history=str(tmp_path), clock=fake_clock) as tel:
        tel.discovery.record("files", "full", 40.0, 3)
        tel.execution.record("python3", 850.0, "success", 0)
        fake_clock.advance(1800)
    path = tmp_path / "2024-11-08" / "session_001.json"
    assert tel.saved_path == path
    doc = read(path)
    assert doc["kind"] == "mcp_exec_session"
    assert (doc["date"], doc["session"]) == ("2024-11-08", 1)
    assert (doc["start_time"], doc["end_time"]) == ("2024-11-08T10:30:00Z", "2024-11-08T11:00:00Z")
    assert doc["discovery"]["total_queries"] == 1
    assert doc["execution"]["avg_duration_ms"] == 850.0
    assert doc["counts"] == {"sessions": 1, "discovery_hits": 1, "memory_samples": 0, "memory_total_mb": 0.0}
    daily = read(tmp_path / "2024-11-08" / "daily_summary.json")
    assert (daily["kind"], daily["sessions"], daily["session_numbers"]) == ("mcp_exec_daily_summary", 1, [1])
    quarterly = read(tmp_path / "quarterly_report.json")
    assert quarterly["quarters"]["2024-Q4"]["days"] == {"2024-11-08": 1}


def test_history_root_comes_from_argument_then_env_var_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_EXEC_METRICS_DIR", str(tmp_path / "from-env"))
    assert write_session(make_summary()) == tmp_path / "from-env" / "2024-11-08" / "session_001.json"
    assert write_session(make_summary(), tmp_path / "given") == tmp_path / "given" / "2024-11-08" / "session_001.json"
    monkeypatch.delenv("MCP_EXEC_METRICS_DIR")
    monkeypatch.chdir(tmp_path)
    assert write_session(make_summary()) == Path(".mcp_exec/metrics/2024-11-08/session_001.json")


def test_history_false_writes_nothing(tmp_path: Path, fake_clock: Any) -> None:
    with observe(history=False, clock=fake_clock) as tel:
        tel.execution.record("python3", 10.0, "success", 0)
    assert tel.saved_path is None
    assert not any(Path(os.environ["MCP_EXEC_METRICS_DIR"]).iterdir())


def test_sessions_of_a_day_are_numbered_in_order_and_the_date_is_the_utc_start_day(tmp_path: Path) -> None:
    paths = [
        write_session(make_summary("2024-11-08T10:00:00Z", "2024-11-08T10:30:00Z"), tmp_path),
        write_session(make_summary("2024-11-08T14:15:00Z", "2024-11-08T14:45:00Z"), tmp_path),
        write_session(make_summary("2024-11-08T23:59:59Z", "2024-11-09T00:20:00Z"), tmp_path),
        write_session(make_summary("2024-11-09T08:00:00Z", "2024-11-09T08:05:00Z"), tmp_path),
    ]
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "2024-11-08/session_001.json",
        "2024-11-08/session_002.json",
        "2024-11-08/session_003.json",
        "2024-11-09/session_001.json",
    ]
    assert [r.id for r in scan(tmp_path).sessions] == ["2024-11-08/001", "2024-11-08/002", "2024-11-08/003", "2024-11-09/001"]


def test_a_summary_without_a_start_time_is_refused(tmp_path: Path) -> None:
    bad = make_summary()
    bad["start_time"] = "yesterday"
    with pytest.raises(ValueError, match="start_time"):
        write_session(bad, tmp_path)


# --- exact aggregation ---------------------------------------------------------------------------


def test_daily_summary_weights_every_rate_by_its_own_counts(tmp_path: Path) -> None:
    big = make_summary(queries=10, hits=9, successful=9, runs=8, runs_ok=8, run_ms=6800.0, in_bytes=40_000, out_bytes=10_000,
                       skills=[("filter_test_files", 6, 6, 100.0)], active=2, pii=4, tokens_created=4)
    small = make_summary("2024-11-08T12:00:00Z", "2024-11-08T12:10:00Z", queries=2, hits=0, successful=0, runs=2, runs_ok=0,
                         run_ms=200.0, in_bytes=1_000, out_bytes=1_000, skills=[("filter_test_files", 2, 2, 300.0), ("export_json", 1, 0, 30.0)],
                         active=1, pii=6, tokens_created=3)
    write_session(big, tmp_path)
    write_session(small, tmp_path)
    daily = read(tmp_path / "2024-11-08" / "daily_summary.json")
    assert daily["sessions"] == 2
    assert (daily["start_time"], daily["end_time"]) == ("2024-11-08T10:00:00Z", "2024-11-08T12:10:00Z")
    d, e, f, k, s = (daily[x] for x in ("discovery", "execution", "filtering", "skills", "security"))
    assert d["total_queries"] == 12
    assert d["hit_rate"] == 0.75  # 9 hits / 12 queries, not (0.9 + 0.0) / 2
    assert d["avg_response_time_ms"] == 75.0  # 900 ms / 12 queries
    assert e["success_rate"] == 0.8  # 8 / 10, not (1.0 + 0.0) / 2
    assert e["avg_duration_ms"] == 700.0  # 7000 ms / 10 runs, not (850 + 100) / 2
    assert e["languages"] == {"python3": 10}
    assert e["duration_buckets_ms"] == {"100": 4, "500": 6, "1000": 0, "+Inf": 0}
    assert e["memory_peak_mb"] == 64.0
    assert f["avg_reduction_ratio"] == 0.731707  # 1 - 11000 / 41000
    assert f["estimated_tokens_saved"] == 7500 + 0
    assert (k["executions"], k["active_skills"], k["reuse_ratio"]) == (9, 3, 3.0)
    assert k["top_skills"] == [
        {"name": "filter_test_files", "runs": 8, "successes": 8, "total_duration_ms": 1200.0, "avg_duration_ms": 150.0},
        {"name": "export_json", "runs": 1, "successes": 0, "total_duration_ms": 30.0, "avg_duration_ms": 30.0},
    ]
    assert (s["pii_detected"], s["tokens_created"], s["patterns"]) == (10, 7, {"email": 10})


def test_quarterly_report_aggregates_the_days_of_each_quarter(tmp_path: Path) -> None:
    write_session(make_summary("2024-11-08T10:00:00Z", "2024-11-08T10:30:00Z", queries=10, hits=10), tmp_path)
    write_session(make_summary("2024-12-31T10:00:00Z", "2024-12-31T10:30:00Z", queries=10, hits=5), tmp_path)
    write_session(make_summary("2024-12-31T11:00:00Z", "2024-12-31T11:30:00Z", queries=20, hits=5), tmp_path)
    write_session(make_summary("2025-01-01T10:00:00Z", "2025-01-01T10:30:00Z", queries=4, hits=1), tmp_path)
    q = read(tmp_path / "quarterly_report.json")["quarters"]
    assert sorted(q) == ["2024-Q4", "2025-Q1"]
    assert q["2024-Q4"]["days"] == {"2024-11-08": 1, "2024-12-31": 2}
    assert q["2024-Q4"]["sessions"] == 3
    assert q["2024-Q4"]["discovery"]["total_queries"] == 40
    assert q["2024-Q4"]["discovery"]["hit_rate"] == 0.5  # 20 / 40
    assert q["2025-Q1"]["discovery"]["hit_rate"] == 0.25
    whole = report(tmp_path)
    assert whole["period"] == {"from": "2024-11-08", "to": "2025-01-01"}
    assert whole["discovery"]["hit_rate"] == round(21 / 44, 6)


def test_report_covers_an_inclusive_date_range_and_refuses_an_empty_one(tmp_path: Path) -> None:
    from datetime import date

    for day in ("2024-11-07", "2024-11-08", "2024-11-09"):
        write_session(make_summary(f"{day}T10:00:00Z", f"{day}T10:30:00Z"), tmp_path)
    r = report(tmp_path, date(2024, 11, 8), date(2024, 11, 9))
    assert (r["sessions"], r["period"]) == (2, {"from": "2024-11-08", "to": "2024-11-09"})
    with pytest.raises(HistoryError, match="no sessions in .* from 2024-12-01 to 2024-12-31"):
        report(tmp_path, date(2024, 12, 1), date(2024, 12, 31))


def test_aggregating_daily_summaries_equals_aggregating_their_sessions(tmp_path: Path) -> None:
    for i in range(5):
        write_session(make_summary(f"2024-11-0{i + 1}T10:00:00Z", f"2024-11-0{i + 1}T10:30:00Z", queries=3 + i, hits=i, runs=5 + i, runs_ok=i, run_ms=100.0 * (i + 1)), tmp_path)
    dailies = [read(p) for p in sorted(tmp_path.glob("*/daily_summary.json"))]
    from_days = aggregate(dailies)
    from_sessions = aggregate(scan(tmp_path).sessions)
    for section in ("discovery", "execution", "sdk", "filtering", "skills", "security"):
        assert from_days[section] == from_sessions[section]


# --- bad files -----------------------------------------------------------------------------------


def test_corrupt_and_foreign_files_are_reported_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_session(make_summary(queries=10, hits=10), tmp_path)
    write_session(make_summary(queries=10, hits=0), tmp_path)
    day = tmp_path / "2024-11-08"
    (day / "session_003.json").write_text('{"kind": "mcp_exec_sess')  # truncated
    (day / "session_004.json").write_text('{"hello": "world"}')  # someone else's JSON
    (day / "notes.txt").write_text("remember the milk")
    (tmp_path / "backup").mkdir()
    found = scan(tmp_path)
    assert [r.number for r in found.sessions] == [1, 2]
    assert sorted((p.path.name, p.reason.split(" (")[0]) for p in found.problems) == [
        ("backup", "foreign entry"),
        ("notes.txt", "foreign file"),
        ("session_003.json", "corrupt JSON"),
        ("session_004.json", 'not an mcp-exec-telemetry session file'),
    ]
    assert sum("skipped" in r.getMessage() for r in caplog.records) == 4
    assert report(tmp_path)["discovery"]["hit_rate"] == 0.5
    # The next session takes a number no file has, and the day's summary counts readable sessions only.
    assert write_session(make_summary(queries=10, hits=10), tmp_path).name == "session_005.json"
    daily = read(day / "daily_summary.json")
    assert (daily["session_numbers"], daily["discovery"]["total_queries"]) == ([1, 2, 5], 30)


def test_a_damaged_daily_summary_is_rebuilt_from_the_sessions(tmp_path: Path) -> None:
    write_session(make_summary(queries=10, hits=10), tmp_path)
    (tmp_path / "2024-11-08" / "daily_summary.json").write_text("garbage")
    (tmp_path / "quarterly_report.json").write_text("[]")
    write_session(make_summary(queries=10, hits=0), tmp_path)
    assert read(tmp_path / "2024-11-08" / "daily_summary.json")["discovery"]["total_queries"] == 20
    assert read(tmp_path / "quarterly_report.json")["quarters"]["2024-Q4"]["discovery"]["hit_rate"] == 0.5


def test_load_session_explains_in_one_line_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "other.json").write_text("[1, 2]")
    for name, message in (("missing.json", "no such session file"), ("bad.json", "is not valid JSON"), ("other.json", "not a JSON object")):
        with pytest.raises(HistoryError) as err:
            load_session(tmp_path / name)
        assert message in str(err.value) and "\n" not in str(err.value)


# --- concurrency and crashes ---------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, {tests!r})
    from test_history import make_summary
    from mcp_exec_telemetry.history import write_session
    root, proc, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    while not os.path.exists(go):
        time.sleep(0.001)
    for i in range(100):
        s = make_summary(f"2024-11-08T{{proc:02d}}:{{i // 60:02d}}:{{i % 60:02d}}Z", "2024-11-08T23:00:00Z",
                         queries=proc * 100 + i + 1, hits=i, runs=i + 1, runs_ok=i, run_ms=float(i), in_bytes=1000 + i, out_bytes=i,
                         buckets={{"100": i + 1, "+Inf": 0}})
        write_session(s, root)
    """
)


def test_two_processes_ending_100_sessions_each_at_once_lose_nothing(tmp_path: Path) -> None:
    script = _WRITER.format(tests=str(Path(__file__).parent))
    go = tmp_path / "go"
    root = tmp_path / "metrics"
    procs = [subprocess.Popen([sys.executable, "-c", script, str(root), str(p), str(go)]) for p in (1, 2)]
    time.sleep(0.5)  # both interpreters are up and waiting
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0, 0]

    files = sorted((root / "2024-11-08").glob("session_*.json"))
    assert len(files) == 200
    numbers = sorted(read(f)["session"] for f in files)
    assert numbers == list(range(1, 201))
    queries = sorted(read(f)["discovery"]["total_queries"] for f in files)
    assert queries == sorted([100 + i + 1 for i in range(100)] + [200 + i + 1 for i in range(100)])

    daily = read(root / "2024-11-08" / "daily_summary.json")
    sessions = [read(f) for f in files]
    assert daily["sessions"] == 200
    assert daily["session_numbers"] == list(range(1, 201))
    assert daily["discovery"]["total_queries"] == sum(s["discovery"]["total_queries"] for s in sessions)
    assert daily["execution"]["total_executions"] == sum(s["execution"]["total_executions"] for s in sessions) == 2 * 5050
    assert daily["execution"]["total_duration_ms"] == 2 * 4950.0
    assert daily["execution"]["duration_buckets_ms"] == {"100": 2 * 5050, "+Inf": 0}
    assert daily["filtering"]["total_input_bytes"] == 2 * (100 * 1000 + 4950)
    assert daily["counts"]["discovery_hits"] == 2 * 4950
    assert read(root / "quarterly_report.json")["quarters"]["2024-Q4"]["days"] == {"2024-11-08": 200}
    assert not list(root.rglob(".*.tmp"))


_KILLED = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_history import make_summary
    from mcp_exec_telemetry import history
    root, pause_at = sys.argv[1], int(sys.argv[2])
    history.write_session(make_summary(queries=10, hits=10), root)
    calls = []
    def pause(tmp):
        calls.append(tmp)
        if len(calls) == pause_at:
            print("PAUSED", tmp, flush=True)
            time.sleep(60)
    history._after_temp_write = pause
    history.write_session(make_summary("2024-11-08T11:00:00Z", "2024-11-08T11:30:00Z", queries=30, hits=0), root)
    """
)


@pytest.mark.parametrize("pause_at, survivor", [(1, False), (2, True)], ids=["killed-writing-the-session", "killed-writing-the-daily-summary"])
def test_a_writer_killed_mid_write_leaves_no_partial_file(tmp_path: Path, pause_at: int, survivor: bool) -> None:
    script = _KILLED.format(tests=str(Path(__file__).parent))
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(pause_at)], stdout=subprocess.PIPE, text=True)
    line = child.stdout.readline()  # type: ignore[union-attr]
    assert line.startswith("PAUSED ")
    temp = Path(line.split(" ", 1)[1].strip())
    assert temp.exists()
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()  # type: ignore[union-attr]

    day = tmp_path / "2024-11-08"
    assert (day / "session_002.json").exists() is survivor
    for f in day.glob("session_*.json"):
        load_session(f)  # every session file there is complete
    load_session(day / "session_001.json")
    assert read(day / "daily_summary.json")["session_numbers"] == [1]  # the old, complete summary
    # Reports read the sessions, so they are right at once; the next writer repairs the rest.
    assert report(tmp_path)["discovery"]["total_queries"] == (40 if survivor else 10)
    nxt = write_session(make_summary("2024-11-08T12:00:00Z", "2024-11-08T12:30:00Z", queries=5, hits=5), tmp_path)
    assert nxt.name == ("session_003.json" if survivor else "session_002.json")
    assert not temp.exists()
    daily = read(day / "daily_summary.json")
    assert daily["discovery"]["total_queries"] == (45 if survivor else 15)
    assert daily["session_numbers"] == ([1, 2, 3] if survivor else [1, 2])


def test_the_lock_is_a_file_lock_on_the_root(tmp_path: Path) -> None:
    """While another process holds the lock, a writer waits instead of racing it."""
    import fcntl

    tmp_path.mkdir(exist_ok=True)
    fd = os.open(tmp_path / history.LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    code = f"from mcp_exec_telemetry.history import write_session; import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
           f"from test_history import make_summary; write_session(make_summary(), {str(tmp_path)!r})"
    child = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(1.0)
    assert child.poll() is None and not (tmp_path / "2024-11-08" / "session_001.json").exists()
    os.close(fd)
    assert child.wait(timeout=30) == 0
    assert (tmp_path / "2024-11-08" / "session_001.json").exists()
