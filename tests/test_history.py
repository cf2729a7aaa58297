"""Metrics history in SQLite: sessions, daily and quarterly aggregates, bad rows, import and export, permissions."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mcp_exec_telemetry import history, observe
from mcp_exec_telemetry.history import DB_FILE, History, HistoryError, aggregate, load_session, report, scan, write_session

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


NOV8 = date(2024, 11, 8)


def db(root: Path) -> sqlite3.Connection:
    """A plain connection to the history's database, as a user's own tool would open it."""
    return sqlite3.connect(root / DB_FILE, isolation_level=None)


# --- where and what is written -------------------------------------------------------------------


def test_ending_an_observed_session_writes_its_summary_under_its_start_day(tmp_path: Path, fake_clock: Any) -> None:
    with observe(history=str(tmp_path), clock=fake_clock) as tel:
        tel.discovery.record("files", "full", 40.0, 3)
        tel.execution.record("python3", 850.0, "success", 0)
        fake_clock.advance(1800)
    assert tel.saved_path == (f"2024-11-08/001", tmp_path / DB_FILE, False)
    doc = History(tmp_path).session(NOV8, 1).doc
    assert doc["kind"] == "mcp_exec_session"
    assert (doc["date"], doc["session"]) == ("2024-11-08", 1)
    assert (doc["start_time"], doc["end_time"]) == ("2024-11-08T10:30:00Z", "2024-11-08T11:00:00Z")
    assert doc["discovery"]["total_queries"] == 1
    assert doc["execution"]["avg_duration_ms"] == 850.0
    assert doc["counts"] == {"sessions": 1, "discovery_hits": 1, "memory_samples": 0, "memory_total_mb": 0.0}
    daily = History(tmp_path).daily_summary(NOV8)
    assert (daily["kind"], daily["sessions"], daily["session_numbers"]) == ("mcp_exec_daily_summary", 1, [1])
    quarterly = History(tmp_path).quarterly_report()
    assert quarterly["quarters"]["2024-Q4"]["days"] == {"2024-11-08": 1}
    # One database, nothing else: no per-session files.
    assert sorted(p.name for p in tmp_path.iterdir()) == [DB_FILE]


def test_history_root_comes_from_argument_then_env_var_then_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_EXEC_METRICS_DIR", str(tmp_path / "from-env"))
    assert write_session(make_summary()).path == tmp_path / "from-env" / DB_FILE
    assert write_session(make_summary(), tmp_path / "given").path == tmp_path / "given" / DB_FILE
    monkeypatch.delenv("MCP_EXEC_METRICS_DIR")
    monkeypatch.chdir(tmp_path)
    assert write_session(make_summary()) == ("2024-11-08/001", Path(".mcp_exec/metrics") / DB_FILE, False)


def test_history_false_writes_nothing(tmp_path: Path, fake_clock: Any) -> None:
    with observe(history=False, clock=fake_clock) as tel:
        tel.execution.record("python3", 10.0, "success", 0)
    assert tel.saved_path is None
    assert not any(Path(os.environ["MCP_EXEC_METRICS_DIR"]).iterdir())


def test_sessions_of_a_day_are_numbered_in_order_and_the_date_is_the_utc_start_day(tmp_path: Path) -> None:
    saved = [
        write_session(make_summary("2024-11-08T10:00:00Z", "2024-11-08T10:30:00Z"), tmp_path),
        write_session(make_summary("2024-11-08T14:15:00Z", "2024-11-08T14:45:00Z"), tmp_path),
        write_session(make_summary("2024-11-08T23:59:59Z", "2024-11-09T00:20:00Z"), tmp_path),
        write_session(make_summary("2024-11-09T08:00:00Z", "2024-11-09T08:05:00Z"), tmp_path),
    ]
    assert [s.id for s in saved] == ["2024-11-08/001", "2024-11-08/002", "2024-11-08/003", "2024-11-09/001"]
    assert [r.id for r in scan(tmp_path).sessions] == ["2024-11-08/001", "2024-11-08/002", "2024-11-08/003", "2024-11-09/001"]
    store = History(tmp_path)
    assert store.latest().id == "2024-11-09/001"
    assert store.before(date(2024, 11, 9), 1).id == "2024-11-08/003"
    assert store.before(NOV8, 1) is None
    assert [r.id for r in store.sessions(limit=2).sessions] == ["2024-11-08/003", "2024-11-09/001"]
    assert store.count(NOV8, NOV8) == 3


def test_a_summary_without_a_start_time_or_with_wrong_types_is_refused(tmp_path: Path) -> None:
    bad = make_summary()
    bad["start_time"] = "yesterday"
    with pytest.raises(ValueError, match="start_time"):
        write_session(bad, tmp_path)
    bad = make_summary()
    bad["execution"]["total_executions"] = "eight"
    with pytest.raises(ValueError, match="execution.total_executions is 'eight', not a number"):
        write_session(bad, tmp_path)
    bad = make_summary()
    bad["service_name"] = object()
    with pytest.raises(ValueError, match="not a session summary: Object of type object is not JSON serializable"):
        write_session(bad, tmp_path)
    assert scan(tmp_path).sessions == []
    assert write_session(make_summary(), tmp_path).id == "2024-11-08/001"  # nothing half-written before it


# --- exact aggregation ---------------------------------------------------------------------------


def test_daily_summary_weights_every_rate_by_its_own_counts(tmp_path: Path) -> None:
    big = make_summary(queries=10, hits=9, successful=9, runs=8, runs_ok=8, run_ms=6800.0, in_bytes=40_000, out_bytes=10_000,
                       skills=[("filter_test_files", 6, 6, 100.0)], active=2, pii=4, tokens_created=4)
    small = make_summary("2024-11-08T12:00:00Z", "2024-11-08T12:10:00Z", queries=2, hits=0, successful=0, runs=2, runs_ok=0,
                         run_ms=200.0, in_bytes=1_000, out_bytes=1_000, skills=[("filter_test_files", 2, 2, 300.0), ("export_json", 1, 0, 30.0)],
                         active=1, pii=6, tokens_created=3)
    write_session(big, tmp_path)
    write_session(small, tmp_path)
    daily = History(tmp_path).daily_summary(NOV8)
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
    q = History(tmp_path).quarterly_report()["quarters"]
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
    for day in ("2024-11-07", "2024-11-08", "2024-11-09"):
        write_session(make_summary(f"{day}T10:00:00Z", f"{day}T10:30:00Z"), tmp_path)
    r = report(tmp_path, date(2024, 11, 8), date(2024, 11, 9))
    assert (r["sessions"], r["period"]) == (2, {"from": "2024-11-08", "to": "2024-11-09"})
    with pytest.raises(HistoryError, match="no sessions in .* from 2024-12-01 to 2024-12-31"):
        report(tmp_path, date(2024, 12, 1), date(2024, 12, 31))


def test_the_maintained_day_aggregates_equal_aggregating_the_sessions(tmp_path: Path) -> None:
    for i in range(5):
        for j in range(3):
            write_session(make_summary(f"2024-11-0{i + 1}T1{j}:00:00Z", f"2024-11-0{i + 1}T1{j}:30:00Z", queries=3 + i + j, hits=i,
                                       runs=5 + i, runs_ok=i, run_ms=100.0 * (i + 1) + j, skills=[(f"s{j}", i + 1, i, 10.0 * j)]), tmp_path)
    days = History(tmp_path).days()
    assert len(days) == 5
    from_days = aggregate(doc for _d, doc in days)
    from_sessions = aggregate(scan(tmp_path).sessions)
    assert from_days == from_sessions
    with db(tmp_path) as con:  # the stored day rows, not a recomputation
        stored = {d: (rows, json.loads(doc)) for d, rows, doc in con.execute("SELECT day, rows, doc FROM daily")}
    assert {d.isoformat(): (3, doc) for d, doc in days} == stored


# --- bad rows ------------------------------------------------------------------------------------


def _insert_raw(root: Path, number: int, doc_text: str, day: str = "2024-11-08") -> None:
    """A row added behind the history's back (a hand edit, a newer or older writer)."""
    with db(root) as con:
        con.execute("INSERT INTO sessions (uid, day, number, start_time, doc) VALUES (?, ?, ?, ?, ?)",
                    (f"raw-{number}", day, number, f"{day}T12:00:00Z", doc_text))


def _bad_rows(root: Path) -> None:
    good = json.loads(json.dumps(History(root).session(NOV8, 1).doc))
    wrong_type = dict(good, session=3)
    wrong_type["discovery"] = dict(good["discovery"], total_queries="ten")
    _insert_raw(root, 3, json.dumps(wrong_type))
    _insert_raw(root, 4, "[" * 2000)  # valid-looking, too deep for the JSON parser
    _insert_raw(root, 5, '{"kind": "mcp_exec_sess')
    _insert_raw(root, 6, '{"hello": "world"}')


def test_rows_that_do_not_validate_are_skipped_with_a_warning_naming_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_session(make_summary(queries=10, hits=10), tmp_path)
    write_session(make_summary(queries=10, hits=0), tmp_path)
    _bad_rows(tmp_path)
    found = scan(tmp_path)
    assert [r.number for r in found.sessions] == [1, 2]
    assert [(str(p.path).split(" (")[0], p.reason.split(":")[0].split(" (")[0]) for p in found.problems] == [
        ("session 2024-11-08/003", "bad field"),
        ("session 2024-11-08/004", "corrupt JSON"),
        ("session 2024-11-08/005", "corrupt JSON"),
        ("session 2024-11-08/006", "not an mcp-exec-telemetry session"),
    ]
    assert "discovery.total_queries is 'ten', not a number" in found.problems[0].reason
    assert f"(row 4 of {tmp_path / DB_FILE})" in str(found.problems[1].path)
    assert sum("skipped session 2024-11-08/00" in r.getMessage() for r in caplog.records) == 4
    # Aggregates see that the day changed behind their back and recompute it from the valid rows.
    assert report(tmp_path)["discovery"]["total_queries"] == 20
    assert report(tmp_path)["discovery"]["hit_rate"] == 0.5
    # Writing goes on: the next session takes the next free number and the day counts it exactly.
    assert write_session(make_summary(queries=10, hits=10), tmp_path).id == "2024-11-08/007"
    assert report(tmp_path)["discovery"]["total_queries"] == 30
    assert History(tmp_path).latest().number == 7
    assert History(tmp_path).session(NOV8, 4) is None


def test_a_damaged_day_row_is_recomputed_by_readers_and_rebuilt_by_the_next_writer(tmp_path: Path) -> None:
    write_session(make_summary(queries=10, hits=10), tmp_path)
    with db(tmp_path) as con:
        con.execute("UPDATE daily SET doc = 'garbage'")
    assert report(tmp_path)["discovery"]["total_queries"] == 10
    write_session(make_summary(queries=10, hits=0), tmp_path)
    with db(tmp_path) as con:
        rows, doc = con.execute("SELECT rows, doc FROM daily").fetchone()
    assert (rows, json.loads(doc)["discovery"]["total_queries"], json.loads(doc)["discovery"]["hit_rate"]) == (2, 20, 0.5)


@pytest.mark.parametrize("edit", [
    "json_set(doc, '$.discovery.total_queries', 'ten')",  # valid JSON, a field of the wrong type
    "json_set(doc, '$.counts.sessions', json('[1]'))",
    "json_set(doc, '$.service_names', 'agent-a')",
    "json_set(doc, '$.execution', 7)",
])
def test_a_day_row_with_wrong_field_types_never_stops_a_read_or_a_write(tmp_path: Path, caplog: pytest.LogCaptureFixture, edit: str) -> None:
    """A day row edited by hand or by another version is recomputed with a warning naming it; the next write rebuilds it."""
    write_session(make_summary(queries=10, hits=10), tmp_path)
    with db(tmp_path) as con:
        con.execute(f"UPDATE daily SET doc = {edit}")
    caplog.clear()
    assert report(tmp_path)["discovery"]["total_queries"] == 10
    assert [r.getMessage().split(": bad field")[0] for r in caplog.records] == [
        f"mcp-exec-telemetry history: skipped day 2024-11-08 (daily row of {tmp_path / DB_FILE})"]
    saved = write_session(make_summary(queries=10, hits=0), tmp_path)  # not refused, not spooled: the day is rebuilt
    assert (saved.id, saved.spooled) == ("2024-11-08/002", False)
    with db(tmp_path) as con:
        rows, doc = con.execute("SELECT rows, doc FROM daily").fetchone()
    assert (rows, json.loads(doc)["discovery"]["total_queries"], json.loads(doc)["discovery"]["hit_rate"]) == (2, 20, 0.5)
    assert json.loads(doc) == aggregate(scan(tmp_path).sessions)


def test_a_database_from_a_newer_version_is_a_clear_error_and_sessions_are_spooled(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_session(make_summary(), tmp_path)
    with db(tmp_path) as con:
        con.execute(f"PRAGMA user_version={history.DB_VERSION + 1}")
    with pytest.raises(HistoryError, match=f"has schema version {history.DB_VERSION + 1}, newer than this mcp-exec-telemetry reads"):
        report(tmp_path)
    saved = write_session(make_summary(), tmp_path)
    assert saved.spooled and saved.path.parent == tmp_path / "spool" and saved.path.exists()


def test_load_session_explains_in_one_line_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "other.json").write_text("[1, 2]")
    (tmp_path / "deep.json").write_text("[" * 100_000)
    for name, message in (("missing.json", "no such session file"), ("bad.json", "is not valid JSON"), ("other.json", "not a JSON object"),
                          ("deep.json", "is not valid JSON: JSON nested too deeply")):
        with pytest.raises(HistoryError) as err:
            load_session(tmp_path / name)
        assert message in str(err.value) and "\n" not in str(err.value)


# --- the design's JSON files: exported, and imported once ------------------------------------------


def test_export_writes_the_designs_json_layout(tmp_path: Path) -> None:
    root, out = tmp_path / "h", tmp_path / "out"
    write_session(make_summary("2024-11-08T10:00:00Z", "2024-11-08T10:30:00Z", queries=10, hits=10), root)
    write_session(make_summary("2024-11-08T11:00:00Z", "2024-11-08T11:30:00Z", queries=10, hits=0), root)
    write_session(make_summary("2025-01-02T11:00:00Z", "2025-01-02T11:30:00Z", queries=4, hits=1), root)
    assert History(root).export_json_files(out) == 3
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "2024-11-08/daily_summary.json", "2024-11-08/session_001.json", "2024-11-08/session_002.json",
        "2025-01-02/daily_summary.json", "2025-01-02/session_001.json", "quarterly_report.json",
    ]
    assert load_session(out / "2024-11-08" / "session_002.json") == History(root).session(NOV8, 2).doc
    daily = read(out / "2024-11-08" / "daily_summary.json")
    assert (daily["kind"], daily["date"], daily["session_numbers"], daily["discovery"]["hit_rate"]) == ("mcp_exec_daily_summary", "2024-11-08", [1, 2], 0.5)
    quarterly = read(out / "quarterly_report.json")
    assert {q: v["days"] for q, v in quarterly["quarters"].items()} == {"2024-Q4": {"2024-11-08": 2}, "2025-Q1": {"2025-01-02": 1}}


def test_a_json_history_is_imported_once_with_a_message(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    old, root = tmp_path / "old", tmp_path / "metrics"
    for i, day in enumerate(("2024-11-08", "2024-11-08", "2024-11-09")):
        write_session(make_summary(f"{day}T1{i}:00:00Z", f"{day}T1{i}:30:00Z", queries=10 + i, hits=i), old)
    History(old).export_json_files(root)  # the layout the history had before it moved to SQLite
    (root / "2024-11-08" / "session_007.json").write_text("{ truncated")
    expected = report(old)

    caplog.clear()
    assert report(root) == expected  # the first use imports
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"skipped {root / '2024-11-08' / 'session_007.json'}: corrupt JSON" in m for m in messages), messages
    assert any(f"imported 3 sessions from the JSON files in {root} into {root / DB_FILE}" in m for m in messages), messages
    assert [r.id for r in scan(root).sessions] == ["2024-11-08/001", "2024-11-08/002", "2024-11-09/001"]  # numbers kept
    assert (root / "2024-11-08" / "session_001.json").exists()  # the files are left as they were

    caplog.clear()
    assert write_session(make_summary("2024-11-08T20:00:00Z", "2024-11-08T20:30:00Z"), root).id == "2024-11-08/003"
    assert report(root)["sessions"] == 4
    assert not any("imported" in r.getMessage() for r in caplog.records)  # only once


# --- permissions ---------------------------------------------------------------------------------


def test_the_database_and_its_folders_are_readable_by_the_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.umask(old := os.umask(0o022))
    try:
        os.umask(0o022)
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MCP_EXEC_METRICS_DIR")
        write_session(make_summary())
        root = tmp_path / ".mcp_exec" / "metrics"
        mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
        assert (mode(tmp_path / ".mcp_exec"), mode(root), mode(root / DB_FILE)) == (0o700, 0o700, 0o600)
        con = sqlite3.connect(root / DB_FILE)  # while a connection is open, WAL and shared-memory files exist
        con.execute("SELECT COUNT(*) FROM sessions").fetchone()
        try:
            assert {p.name: mode(p) for p in root.iterdir()} == {DB_FILE: 0o600, DB_FILE + "-wal": 0o600, DB_FILE + "-shm": 0o600}
        finally:
            con.close()
        History(root).export_json_files(tmp_path / "export")
        assert {mode(p) for p in (tmp_path / "export").rglob("*")} == {0o700, 0o600}
        saved = History(root)._spool("x" * 32, make_summary(), RuntimeError("test"))
        assert (mode(saved.path.parent), mode(saved.path)) == (0o700, 0o600)
    finally:
        os.umask(old)


def test_a_database_that_cannot_be_opened_spools_the_session_and_reads_fail_in_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "_warned_spool", False)  # a process warns once: be that process's first
    write_session(make_summary(queries=3, hits=3), tmp_path)
    good = (tmp_path / DB_FILE).read_bytes()
    (tmp_path / DB_FILE).write_bytes(b"not a database " * 400)  # damaged on disk
    saved = write_session(make_summary(queries=4, hits=4), tmp_path)
    assert saved.spooled and saved.path.exists()
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [f"mcp-exec-telemetry history: could not write {tmp_path / DB_FILE}"]
    write_session(make_summary(queries=6, hits=6), tmp_path)
    assert len(caplog.records) == 1  # once per process, however many sessions it spools
    with pytest.raises(HistoryError, match="cannot read .*history.sqlite3: file is not a database"):
        report(tmp_path)
    (tmp_path / DB_FILE).write_bytes(good)  # restored from a backup: the next writer imports the spooled session
    assert write_session(make_summary(queries=5, hits=5), tmp_path).id == "2024-11-08/004"
    assert sorted(r.doc["discovery"]["total_queries"] for r in scan(tmp_path).sessions) == [3, 4, 5, 6]


def test_a_full_disk_spools_the_session_with_a_warning_saying_so_and_the_next_writer_imports_it(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "_warned_spool", False)
    write_session(make_summary(queries=3, hits=3), tmp_path)
    real = history._connect

    def full_disk(db_path: Path, timeout: float, **kw: Any) -> sqlite3.Connection:
        """A database that cannot grow by one page: SQLite fails with SQLITE_FULL, as on a full disk."""
        con = real(db_path, timeout, **kw)
        con.execute(f"PRAGMA max_page_count={con.execute('PRAGMA page_count').fetchone()[0]}")
        return con

    monkeypatch.setattr(history, "_connect", full_disk)
    big = make_summary(queries=4, hits=4)
    big["service_name"] = "agent-" + "x" * 50_000  # needs new pages
    saved = write_session(big, tmp_path)
    assert saved.spooled and saved.path.exists()
    assert [r.getMessage().split("; session kept")[0] for r in caplog.records] == [
        f"mcp-exec-telemetry history: could not write {tmp_path / DB_FILE} (database or disk is full)"]
    monkeypatch.setattr(history, "_connect", real)  # space freed
    assert write_session(make_summary(queries=5, hits=5), tmp_path).id == "2024-11-08/003"
    assert sorted(r.doc["discovery"]["total_queries"] for r in scan(tmp_path).sessions) == [3, 4, 5]
    assert not list(saved.path.parent.iterdir())


def test_a_serve_scrape_reads_day_rows_not_sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from mcp_exec_telemetry.timeseries import HistoryCollector

    for i in range(20):
        write_session(make_summary(f"2024-11-0{i % 3 + 1}T10:{i:02d}:00Z", f"2024-11-0{i % 3 + 1}T10:{i:02d}:30Z"), tmp_path)
    parsed: list[int] = []
    real = history._row_records
    monkeypatch.setattr(history, "_row_records", lambda rows, *a: parsed.append(len(rows := list(rows))) or real(rows, *a))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HistoryCollector(tmp_path))
    for _ in range(3):
        assert "mcp_exec_history_sessions_total 20.0" in generate_latest(registry).decode()
    write_session(make_summary("2024-11-03T12:00:00Z", "2024-11-03T12:30:00Z"), tmp_path)
    assert "mcp_exec_history_sessions_total 21.0" in generate_latest(registry).decode()
    assert parsed == []  # not one session document was read by a scrape


def test_cancelled_steps_stay_out_of_the_history_success_rate_as_in_the_session_summary(tmp_path: Path) -> None:
    """A cancelled execution is counted and shown as interrupted, never as a failure, in every aggregate."""
    import asyncio

    root = tmp_path / "metrics"
    with observe(service_name="agent", history=root) as tel:
        with tel.execution.run("python3") as ex:
            ex.set_result(exit_code=0)
        with pytest.raises(asyncio.CancelledError):
            with tel.execution.run("python3"):
                raise asyncio.CancelledError()
        own = tel.summary()["execution"]
    assert (own["total_executions"], own["failed_executions"], own["success_rate"], own["interrupted"]) == (2, 0, 1.0, {"cancelled": 1})
    for doc in (report(root), History(root).days()[0][1]):
        e = doc["execution"]
        assert (e["total_executions"], e["successful_executions"], e["failed_executions"]) == (2, 1, 0)
        assert e["success_rate"] == 1.0
        assert e["interrupted"] == {"cancelled": 1}
