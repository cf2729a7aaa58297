"""The history under real processes: many writers while the CLI reads, SIGKILL mid-write, a lock held by another process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mcp_exec_telemetry.history import DB_FILE, History, report, scan, write_session
from tests.test_history import make_summary

REPO = Path(__file__).resolve().parent.parent
TESTS = str(Path(__file__).resolve().parent.parent)

# Session i of writer p: queries = 1, executions = 2 and input bytes = 1000 * p + i, so every
# aggregate is known exactly and a torn read (a session without its day's update) shows.
_WRITER = textwrap.dedent(
    """
    import os, sys, time
    sys.path.insert(0, {tests!r})
    from tests.test_history import make_summary
    from mcp_exec_telemetry.history import write_session
    root, proc, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    while not os.path.exists(go):
        time.sleep(0.001)
    for i in range(n):
        s = make_summary(f"2024-11-08T{{proc:02d}}:{{i // 60 % 60:02d}}:{{i % 60:02d}}Z", "2024-11-08T23:00:00Z",
                         queries=1, hits=1, successful=1, continued=0, runs=2, runs_ok=1, run_ms=10.0,
                         in_bytes=1000 * proc + i, out_bytes=0, buckets={{"100": 2, "+Inf": 0}})
        saved = write_session(s, root, timeout=60)
        assert not saved.spooled, saved
    """
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mcp_exec_telemetry", *args], capture_output=True, text=True, timeout=120, cwd=REPO)


def _whole_listing(stdout: str) -> bool:
    """``history --limit 3`` printed a header, min(3, sessions) rows and a footer that agrees with them.

    The first loop may run before any writer has written (one session in the history), so the
    number of rows depends on the footer: "3 of N sessions" for N > 3, else "N session(s)".
    """
    lines = stdout.splitlines()
    if len(lines) < 3 or not lines[0].startswith("SESSION"):
        return False
    footer, rows = lines[-1].split(), lines[1:-1]
    shown = int(footer[0])
    total = int(footer[2]) if len(footer) == 4 and footer[1] == "of" else shown
    return len(rows) == shown == min(3, total) and (total > 3) == (footer[1] == "of")


def test_eight_processes_times_200_sessions_while_the_cli_runs_in_a_loop(tmp_path: Path) -> None:
    procs, per_proc = 8, 200
    root = tmp_path / "metrics"
    write_session(make_summary("2024-11-07T10:00:00Z", "2024-11-07T10:30:00Z", queries=1, hits=1, successful=1, continued=0), root)
    go = tmp_path / "go"
    script = _WRITER.format(tests=TESTS)
    writers = [subprocess.Popen([sys.executable, "-c", script, str(root), str(p), str(per_proc), str(go)]) for p in range(1, procs + 1)]
    reads: list[tuple[int, int, int, int]] = []
    errors: list[str] = []
    stop = threading.Event()

    def cli_loop() -> None:  # the command line, as a user runs it
        while not stop.is_set():
            r = _cli("report", "--root", str(root))
            h = _cli("history", "--root", str(root), "--limit", "3")
            if r.returncode or r.stderr or h.returncode or h.stderr or not _whole_listing(h.stdout):
                errors.append(r.stderr + h.stderr + h.stdout)
                continue
            doc = json.loads(r.stdout)
            reads.append((doc["sessions"], doc["discovery"]["total_queries"], doc["execution"]["total_executions"], doc["counts"]["discovery_hits"]))

    def api_loop() -> None:  # and the library, many times faster, to catch short windows
        while not stop.is_set():
            doc = History(root).report()
            reads.append((doc["sessions"], doc["discovery"]["total_queries"], doc["execution"]["total_executions"], doc["counts"]["discovery_hits"]))
            time.sleep(0.002)

    def snapshot_loop() -> None:  # one read transaction: the day's row always agrees with its session rows
        con = sqlite3.connect(root / DB_FILE, isolation_level=None)
        try:
            while not stop.is_set():
                con.execute("BEGIN")
                n = con.execute("SELECT COUNT(*) FROM sessions WHERE day = '2024-11-08'").fetchone()[0]
                row = con.execute("SELECT rows, doc FROM daily WHERE day = '2024-11-08'").fetchone()
                con.execute("COMMIT")
                day = json.loads(row[1]) if row else {"sessions": 0, "discovery": {"total_queries": 0}}
                snapshots.append((n, row[0] if row else 0, day["sessions"], day["discovery"]["total_queries"]))
                time.sleep(0.001)
        finally:
            con.close()

    snapshots: list[tuple[int, int, int, int]] = []
    readers = [threading.Thread(target=cli_loop), threading.Thread(target=api_loop), threading.Thread(target=snapshot_loop)]
    time.sleep(0.5)  # every writer's interpreter is up and waiting
    for t in readers:
        t.start()
    time.sleep(0.3)
    go.touch()
    try:
        assert [w.wait(timeout=300) for w in writers] == [0] * procs
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=120)
        for w in writers:
            if w.poll() is None:
                w.kill()

    total = procs * per_proc + 1
    assert errors == []
    assert len([s for s, *_ in reads if 1 < s < total]) >= 3  # reads happened while the writers wrote
    assert len([n for n, *_ in snapshots if 0 < n < procs * per_proc]) >= 3
    for n, rows, day_sessions, day_queries in snapshots:  # never a session without its day's update, or the reverse
        assert n == rows == day_sessions == day_queries, (n, rows, day_sessions, day_queries)
    for sessions, queries, runs, hits in reads:  # every read saw whole sessions only
        assert 1 <= sessions <= total
        assert (queries, runs, hits) == (sessions, 2 * sessions - 2 + 8, sessions), (sessions, queries, runs, hits)

    found = scan(root)
    assert found.problems == []
    day = [r for r in found.sessions if r.day.isoformat() == "2024-11-08"]
    assert len(day) == procs * per_proc
    assert sorted(r.number for r in day) == list(range(1, procs * per_proc + 1))  # every session once, numbered without gaps
    assert sorted(r.doc["filtering"]["total_input_bytes"] for r in day) == sorted(1000 * p + i for p in range(1, procs + 1) for i in range(per_proc))
    agg = report(root)
    assert (agg["sessions"], agg["discovery"]["total_queries"], agg["execution"]["total_executions"]) == (total, total, 2 * procs * per_proc + 8)
    assert agg["filtering"]["total_input_bytes"] == sum(1000 * p + i for p in range(1, procs + 1) for i in range(per_proc)) + 40_000
    assert agg["execution"]["duration_buckets_ms"] == {"100": 2 * procs * per_proc + 2, "500": 3, "1000": 3, "+Inf": 0}
    with sqlite3.connect(root / DB_FILE) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert con.execute("SELECT rows FROM daily WHERE day = '2024-11-08'").fetchone() == (procs * per_proc,)


# --- SIGKILL ---------------------------------------------------------------------------------------

_KILLED = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from tests.test_history import make_summary
    from mcp_exec_telemetry import history
    root, n, pause = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "pause"
    for i in range(n):
        saved = history.write_session(make_summary(queries=i + 1, hits=0), root)
        print("COMMITTED", saved.id, flush=True)
    if pause:
        def stop():
            print("PAUSED", flush=True)
            time.sleep(60)
        history._before_commit = stop
        history.write_session(make_summary(queries=1000, hits=0), root)
    else:
        i = n
        while True:
            i += 1
            saved = history.write_session(make_summary(queries=i, hits=0), root)
            print("COMMITTED", saved.id, flush=True)
    """
)


def _run_and_kill(root: Path, n: int, mode: str, after: float = 0.0) -> list[str]:
    child = subprocess.Popen([sys.executable, "-c", _KILLED.format(tests=TESTS), str(root), str(n), mode], stdout=subprocess.PIPE, text=True)
    committed = []
    assert child.stdout is not None
    started = time.monotonic()
    for line in child.stdout:
        word, *rest = line.split()
        if word == "COMMITTED":
            committed.append(rest[0])
        if word == "PAUSED" or (mode == "run" and len(committed) >= n and time.monotonic() - started >= after):
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    committed += [line.split()[1] for line in child.stdout.read().splitlines() if line.startswith("COMMITTED")]
    child.stdout.close()
    return committed


def test_sigkill_inside_the_write_transaction_keeps_every_committed_session(tmp_path: Path) -> None:
    committed = _run_and_kill(tmp_path, 5, "pause")
    assert committed == [f"2024-11-08/{i:03d}" for i in range(1, 6)]
    with sqlite3.connect(tmp_path / DB_FILE) as con:  # opens cleanly: SQLite rolls the open transaction back
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    found = scan(tmp_path)
    assert ([r.id for r in found.sessions], found.problems) == (committed, [])
    assert report(tmp_path)["discovery"]["total_queries"] == 1 + 2 + 3 + 4 + 5  # not the 1000 of the killed one
    assert write_session(make_summary(queries=7, hits=0), tmp_path).id == "2024-11-08/006"
    assert report(tmp_path)["discovery"]["total_queries"] == 15 + 7


@pytest.mark.parametrize("after", [0.05, 0.3, 0.8])
def test_sigkill_at_any_moment_of_a_write_loop_leaves_a_clean_database(tmp_path: Path, after: float) -> None:
    committed = _run_and_kill(tmp_path, 3, "run", after)
    with sqlite3.connect(tmp_path / DB_FILE) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    ids = [r.id for r in scan(tmp_path).sessions]
    # Every session the child saw committed is there; at most one more (committed, not yet printed).
    assert ids[: len(committed)] == committed and len(ids) - len(committed) in (0, 1)
    agg = report(tmp_path)
    assert (agg["sessions"], agg["discovery"]["total_queries"]) == (len(ids), sum(range(1, len(ids) + 1)))


# --- a lock held by another process ------------------------------------------------------------------

_LOCKER = textwrap.dedent(
    """
    import sqlite3, sys, time
    con = sqlite3.connect(sys.argv[1], isolation_level=None)
    con.execute("BEGIN EXCLUSIVE")
    print("LOCKED", flush=True)
    time.sleep(float(sys.argv[2]))
    """
)

_AGENT = textwrap.dedent(
    """
    import json, logging, sys, time
    sys.path.insert(0, {tests!r})
    from mcp_exec_telemetry import observe
    warnings = []
    logging.getLogger("mcp_exec_telemetry.history").addHandler(type("H", (logging.Handler,), {{"emit": lambda self, r: warnings.append(r.getMessage())}})())
    tel = observe(history=sys.argv[1])
    with tel:
        tel.execution.record("python3", 120.0, "success", 0)
        t0 = time.monotonic()
    exit_s = time.monotonic() - t0
    print(json.dumps({{"exit_s": exit_s, "saved": [str(x) for x in tel.saved_path], "warnings": warnings}}), flush=True)
    """
)


@pytest.mark.parametrize("bound", [None, "0.5"], ids=["default-2s", "configured-0.5s"])
def test_a_lock_held_for_30s_by_another_process_bounds_exit_and_the_session_is_spooled_then_imported(tmp_path: Path, bound: str | None) -> None:
    write_session(make_summary(queries=3, hits=3), tmp_path)  # the database exists
    locker = subprocess.Popen([sys.executable, "-c", _LOCKER, str(tmp_path / DB_FILE), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "LOCKED"
        env = {k: v for k, v in os.environ.items() if k != "MCP_EXEC_HISTORY_TIMEOUT"}
        if bound:
            env["MCP_EXEC_HISTORY_TIMEOUT"] = bound
        started = time.monotonic()
        agent = subprocess.run([sys.executable, "-c", _AGENT.format(tests=TESTS), str(tmp_path)], capture_output=True, text=True, timeout=60, env=env)
        wall = time.monotonic() - started
        assert agent.returncode == 0, agent.stderr
        out = json.loads(agent.stdout)
        limit = float(bound or 2.0)
        assert limit - 0.05 <= out["exit_s"] <= limit + 1.5, out  # waited for the lock up to the bound, then gave up
        assert wall < 25, wall  # the process did not wait for the 30 s lock
        _id, path, spooled = out["saved"]
        assert spooled == "True" and Path(path).parent == tmp_path / "spool" and Path(path).exists()
        assert len(out["warnings"]) == 1 and "session kept in" in out["warnings"][0] and "the next writer imports it" in out["warnings"][0]
    finally:
        locker.kill()
        locker.wait(timeout=10)
        locker.stdout.close()  # type: ignore[union-attr]
    # The lock is gone: the next writer imports the spooled session first, then writes its own.
    assert write_session(make_summary(queries=5, hits=5), tmp_path).id == "2024-11-08/002"
    assert not list((tmp_path / "spool").iterdir())
    found = History(tmp_path).sessions()
    today = time.strftime("%Y-%m-%d", time.gmtime())  # the agent's session ran now
    assert sorted((r.id, r.doc["execution"]["total_executions"]) for r in found.sessions) == [
        ("2024-11-08/001", 8), ("2024-11-08/002", 8), (f"{today}/001", 1)]


def test_a_spooled_session_already_imported_is_not_imported_twice(tmp_path: Path) -> None:
    write_session(make_summary(queries=3, hits=3), tmp_path)
    store = History(tmp_path)
    spooled = store._spool("a" * 32, make_summary(queries=4, hits=4), RuntimeError("locked"))
    copy = spooled.path.read_bytes()
    assert store.import_spool() == 1
    spooled.path.write_bytes(copy)  # as if the importer died between its commit and removing the file
    assert write_session(make_summary(queries=5, hits=5), tmp_path).id == "2024-11-08/003"
    assert [r.doc["discovery"]["total_queries"] for r in scan(tmp_path).sessions] == [3, 4, 5]
    assert report(tmp_path)["discovery"]["total_queries"] == 12


def test_a_spool_file_left_half_written_is_removed_and_never_imported(tmp_path: Path) -> None:
    write_session(make_summary(queries=3, hits=3), tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir()
    stale, fresh = spool / ".0001-dead.json.tmp", spool / ".0002-live.json.tmp"
    stale.write_text('{"uid": "dead", "summ')
    fresh.write_text('{"uid": "live", "summ')
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert write_session(make_summary(queries=5, hits=5), tmp_path).id == "2024-11-08/002"
    assert sorted(p.name for p in spool.iterdir()) == [fresh.name]  # a live spooler's file is left to it
    assert report(tmp_path)["sessions"] == 2


def test_eight_processes_creating_the_database_at_once_agree_on_one_schema(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    go = tmp_path / "go"
    script = _WRITER.format(tests=TESTS)
    writers = [subprocess.Popen([sys.executable, "-c", script, str(root), str(p), "5", str(go)]) for p in range(1, 9)]
    time.sleep(0.5)
    go.touch()
    assert [w.wait(timeout=120) for w in writers] == [0] * 8
    found = scan(root)
    assert (sorted(r.number for r in found.sessions), found.problems) == (list(range(1, 41)), [])
    assert report(root)["sessions"] == 40
    with sqlite3.connect(root / DB_FILE) as con:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert con.execute("PRAGMA user_version").fetchone() == (1,)


def test_a_spooled_session_that_cannot_be_inserted_is_set_aside_and_writes_go_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_exec_telemetry import history

    write_session(make_summary(queries=3, hits=3), tmp_path)
    bad = History(tmp_path)._spool("b" * 32, make_summary(queries=4, hits=4), RuntimeError("locked")).path
    real = history._insert

    def refuse_b(con, db, uid, *rest):  # a session this version cannot take (say, from a newer one)
        if uid == "b" * 32:
            raise ValueError("unknown field")
        return real(con, db, uid, *rest)

    monkeypatch.setattr(history, "_insert", refuse_b)
    assert write_session(make_summary(queries=5, hits=5), tmp_path).id == "2024-11-08/002"
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [bad.name + ".rejected"]
    assert write_session(make_summary(queries=6, hits=6), tmp_path).id == "2024-11-08/003"  # never retried
    assert report(tmp_path)["discovery"]["total_queries"] == 3 + 5 + 6


# --- fork while a write is in flight -----------------------------------------------------------------

_FORK_MID_WRITE = textwrap.dedent(
    """
    import json, os, sys, threading, time
    sys.path.insert(0, {tests!r})
    from tests.test_history import make_summary
    from mcp_exec_telemetry import history
    root = sys.argv[1]
    inside, release = threading.Event(), threading.Event()
    history._before_commit = lambda: (inside.set(), release.wait(60))
    writer = threading.Thread(target=history.write_session, args=(make_summary(queries=2, hits=2), root), kwargs={{"timeout": 60}})
    writer.start()
    assert inside.wait(30)  # the writer thread is inside its transaction, its connection open
    history._before_commit = None
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker forked by the host while the write is in flight
        t0 = time.monotonic()
        try:
            saved = history.write_session(make_summary(queries=3, hits=3), root, timeout=2)
            out = {{"seconds": time.monotonic() - t0, "spooled": saved.spooled}}
        except BaseException as exc:
            out = {{"error": repr(exc)}}
        os.write(w, json.dumps(out).encode())
        os._exit(0)
    os.close(w)
    deadline = time.monotonic() + 20
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.01)
    child = os.read(r, 10000).decode() or '{{"hung": true}}'
    release.set()
    writer.join(30)
    print(child, flush=True)
    """
)


def test_a_worker_forked_during_a_write_spools_its_session_at_once_and_nothing_is_lost(tmp_path: Path) -> None:
    """The child inherits SQLite's state mid-transaction: it must not touch SQLite (it may block forever), it spools."""
    write_session(make_summary(queries=1, hits=1), tmp_path)
    r = subprocess.run([sys.executable, "-c", _FORK_MID_WRITE.format(tests=TESTS), str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    child = json.loads(r.stdout)
    assert child.get("spooled") is True, child
    assert child["seconds"] < 0.5, child  # at once: not the 2 s bound, not a hang
    assert write_session(make_summary(queries=5, hits=5), tmp_path).id == "2024-11-08/004"  # the next writer imports the child's
    assert not list((tmp_path / "spool").iterdir())
    assert [r.doc["discovery"]["total_queries"] for r in scan(tmp_path).sessions] == [1, 2, 3, 5]
