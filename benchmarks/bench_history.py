"""History at scale: a session's write at exit, and the command line's reads, up to 100,000 sessions.

    .venv/bin/python benchmarks/bench_history.py          # 2-5 minutes; rewrites its section of docs/PERFORMANCE.md
    .venv/bin/python benchmarks/bench_history.py --quick  # about 20 s; prints only

Write at exit: the history is filled to 1,000, 10,000 and 100,000 sessions of one day (the worst
case for numbering a day's sessions), and at each size ``write_session`` (a whole write as
``observe()`` does it at exit: open, number, insert, update the day's aggregate, commit, close) is
timed against the same durable insert written by hand (open, ``BEGIN IMMEDIATE``, insert the JSON
document, commit, close) on the same database, interleaved round by round.

Reads: a second history of 100,000 sessions over 365 days; each command is run in-process
(``cli.main``, output discarded) and as a fresh process (``python -m mcp_exec_telemetry``, which
also pays for the interpreter and the package's imports), against reading and aggregating every
session document, which is what a history without maintained day aggregates must do.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine, write_section  # noqa: E402

from mcp_exec_telemetry import cli, history  # noqa: E402
from mcp_exec_telemetry.history import History, write_session  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "PERFORMANCE.md"


def real_summary() -> dict[str, Any]:
    """The summary of a real session (every step recorded), as ``observe()`` writes it at exit."""
    from mcp_exec_telemetry import observe

    with observe(service_name="bench-agent", history=False) as tel:
        tel.discovery.record("customer records", "name-and-description", 30.0, 0)
        tel.discovery.record("crm customer", "name-and-description", 25.0, 4)
        tel.sdk.record(12.0, tools_included=6, ipc_handler_size_bytes=2048, cache_hit=True)
        for i, ms in enumerate((85.0, 240.0, 620.0, 910.0, 1450.0)):
            tel.execution.record("javascript" if i == 4 else "python3", ms, "success", 0)
        tel.filtering.record("filter", 52_000, 1_200, 4.0)
        tel.filtering.record("map", 8_000, 2_000, 1.5)
        for name in ("filter_test_files", "analyze_rs_files", "export_json", "cleanup_tmp"):
            tel.skills.save(name, "python3")
            tel.skills.record(name, 40.0, True)
        tel.security.pii_detected("email", 2)
        tel.security.pii_tokenized("email", 2)
        tel.security.tokens_created(2)
    return tel.summary()


def session_at(base: dict[str, Any], day: date, i: int) -> dict[str, Any]:
    s = json.loads(json.dumps(base))
    sec = i % 86400
    s["start_time"] = f"{day.isoformat()}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z"
    s["timestamp"] = s["start_time"]
    s["discovery"]["total_queries"] += i % 7
    s["execution"]["total_duration_ms"] += i % 13
    return s


def fill(root: Path, base: dict[str, Any], start: int, stop: int, day_of: Callable[[int], date]) -> float:
    """Add sessions ``start``..``stop - 1`` in one transaction through the writer's own insert; seconds taken."""
    t0 = time.perf_counter()
    store = History(root)
    with closing(store._open_write(60)) as con:
        con.execute("BEGIN IMMEDIATE")
        for i in range(start, stop):
            history._insert(con, store.db_path, f"bench-{i}", session_at(base, day_of(i), i))
        con.execute("COMMIT")
    return time.perf_counter() - t0


def hand_write(db: Path, text: str) -> None:
    """The floor: a durable insert of the session's JSON in its own connection and transaction."""
    con = sqlite3.connect(db, timeout=2, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("BEGIN IMMEDIATE")
        con.execute("INSERT INTO hand (doc) VALUES (?)", (text,))
        con.execute("COMMIT")
    finally:
        con.close()


def bench_writes(base: dict[str, Any], sizes: list[int], rounds: int, work: Path) -> list[tuple[int, float, float, float, float, float]]:
    """One history per size; each round writes one session to every history and one by hand, in a rotating order.

    Interleaving puts every size under the same machine conditions (the disk's fsync latency swings
    with other processes' I/O), so the paired ratio to the smallest history is the flatness measure.
    """
    day = date(2024, 11, 8)
    roots = {size: work / f"writes-{size}" for size in sizes}
    for size, root in roots.items():
        fill(root, base, 0, size, lambda i: day)
    floor = roots[sizes[-1]] / history.DB_FILE
    with closing(sqlite3.connect(floor)) as con:
        con.execute("CREATE TABLE IF NOT EXISTS hand (id INTEGER PRIMARY KEY, doc TEXT NOT NULL)")
    text = json.dumps(session_at(base, day, 0))
    os.sync()  # the fills' hundreds of MB are on disk before timing: fsyncs must not wait for their writeback
    names: list[Any] = [*sizes, "hand"]
    times: dict[Any, list[float]] = {name: [] for name in names}
    for r in range(rounds + 20):  # the first 20 rounds warm up, untimed
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            if name == "hand":
                hand_write(floor, text)
            else:
                saved = write_session(session_at(base, day, name + r), roots[name])
                assert not saved.spooled
            if r >= 20:
                times[name].append((time.perf_counter() - t0) * 1000)
    rows = []
    for size in sizes:
        ours = times[size]
        to_hand = statistics.median(o / h for o, h in zip(ours, times["hand"]))
        to_first = statistics.median(o / f for o, f in zip(ours, times[sizes[0]]))
        p90 = sorted(ours)[int(len(ours) * 0.9)]
        rows.append((size, statistics.median(ours), p90, statistics.median(times["hand"]), to_hand, to_first))
        print(f"write at {size:>7,} sessions: ours {statistics.median(ours):.2f} ms (p90 {p90:.2f}), by hand {statistics.median(times['hand']):.2f} ms, "
              f"ours / by hand {to_hand:.2f}, / at {sizes[0]:,} {to_first:.2f}", flush=True)
    return rows


def in_process(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        out, err = io.StringIO(), io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cli.main(argv)
        times.append(time.perf_counter() - t0)
        assert status == 0 and not err.getvalue(), (argv, status, err.getvalue()[:300])
    return statistics.median(times)


def as_process(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "mcp_exec_telemetry", *argv], capture_output=True, text=True, cwd=REPO)
        times.append(time.perf_counter() - t0)
        assert r.returncode == 0 and not r.stderr, (argv, r.stderr[:300])
    return statistics.median(times)


def bench_reads(base: dict[str, Any], n: int, days: int, runs: int, work: Path) -> tuple[list[tuple[str, float, float]], dict[str, float]]:
    root = work / "reads"
    first = date(2024, 1, 1)
    secs = fill(root, base, 0, n, lambda i: first + timedelta(days=i * days // n))
    print(f"filled {n:,} sessions over {days} days in {secs:.1f} s", flush=True)
    r = str(root)
    mid = (first + timedelta(days=days // 2)).isoformat()
    commands = [
        ("dashboard", ["dashboard", "--root", r, "--width", "72"]),
        ("report", ["report", "--root", r]),
        ("advise", ["advise", "--root", r]),
        ("history --limit 20", ["history", "--root", r, "--limit", "20"]),
        ("report --session latest", ["report", "--root", r, "--session", "latest"]),
        ("dashboard --date (one day)", ["dashboard", "--root", r, "--date", mid]),
        ("report --from/--to (a month)", ["report", "--root", r, "--from", mid, "--to", (date.fromisoformat(mid) + timedelta(days=30)).isoformat()]),
    ]
    out = []
    for label, argv in commands:
        a = in_process(argv, runs)
        b = as_process(argv, max(3, runs // 2))
        out.append((label, a, b))
        print(f"{label:<30} in-process {a * 1000:7.1f} ms   as a process {b * 1000:7.1f} ms", flush=True)

    from prometheus_client import CollectorRegistry, generate_latest

    from mcp_exec_telemetry.timeseries import HistoryCollector

    registry = CollectorRegistry(auto_describe=False)
    registry.register(HistoryCollector(root))
    scrapes = []
    for _ in range(runs):
        t0 = time.perf_counter()
        generate_latest(registry)
        scrapes.append(time.perf_counter() - t0)
    write_session(session_at(base, first + timedelta(days=days - 1), n + 1), root)  # a new session: the next scrape recomputes
    t0 = time.perf_counter()
    text = generate_latest(registry).decode()
    after_write = time.perf_counter() - t0
    assert f"mcp_exec_history_sessions_total {float(n + 1)}" in text

    def everything() -> None:
        with closing(sqlite3.connect(root / history.DB_FILE)) as con:
            history.aggregate(json.loads(t) for (t,) in con.execute("SELECT doc FROM sessions"))

    t0 = time.perf_counter()
    everything()
    scan_all = time.perf_counter() - t0
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t0
    extra = {
        "scrape": statistics.median(scrapes),
        "scrape_after_write": after_write,
        "scan_all": scan_all,
        "help": as_process(["--help"], 3),
        "bare": bare,
    }
    print(f"serve scrape {extra['scrape'] * 1000:.1f} ms (after a write {after_write * 1000:.1f} ms); "
          f"reading and aggregating every session {scan_all:.2f} s; --help {extra['help'] * 1000:.0f} ms; bare interpreter {bare * 1000:.0f} ms", flush=True)
    return out, extra


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, print only")
    args = p.parse_args()
    sizes = [1000, 5000] if args.quick else [1000, 10_000, 100_000]
    rounds = 60 if args.quick else 200
    reads_n = 10_000 if args.quick else 100_000
    runs = 3 if args.quick else 7
    started = time.time()
    base = real_summary()
    work = Path(tempfile.mkdtemp(prefix="bench-history-", dir=os.environ.get("BENCH_TMP")))
    shm = Path(tempfile.mkdtemp(prefix="bench-history-", dir="/dev/shm")) if os.path.isdir("/dev/shm") else None
    try:
        print(f"writes on disk ({work})", flush=True)
        writes = bench_writes(base, sizes, rounds, work)
        writes_shm = []
        if shm is not None:
            print(f"writes on tmpfs ({shm}): no fsync cost", flush=True)
            writes_shm = bench_writes(base, sizes, rounds, shm)
        reads, extra = bench_reads(base, reads_n, 365, runs, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if shm is not None:
            shutil.rmtree(shm, ignore_errors=True)
    if args.quick:
        return 0

    m = machine()
    lines = [
        "## History at scale (`benchmarks/bench_history.py`)",
        "",
        f"Latest run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}, {time.time() - started:.0f} s, "
        f"{m['cpu']}, {m['python']}, SQLite {sqlite3.sqlite_version}. Reproduce with "
        "`.venv/bin/python benchmarks/bench_history.py` (rewrites this section only).",
        "",
        "### Session write at exit",
        "",
        f"`write_session` as `observe()` calls it at exit, into histories of 1,000, 10,000 and 100,000 sessions, and the",
        "same durable insert written by hand (own connection, `BEGIN IMMEDIATE`, one JSON row, commit, close) into",
        f"the largest: each of {rounds} rounds does one of each, in a rotating order, after `os.sync()` and 20",
        "untimed rounds. Sessions all on one day: the worst case for numbering a day's sessions.",
        "",
        "| where | sessions in the history | ours, median | ours, p90 | by hand, median | ours / by hand | ours / ours at 1,000 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for where, series in (("disk (ext4)", writes), ("tmpfs", writes_shm)):
        for size, med, p90, hand, to_hand, to_first in series:
            lines.append(f"| {where} | {size:,} | {med:.2f} ms | {p90:.2f} ms | {hand:.2f} ms | {to_hand:.2f} | {to_first:.2f} |")
    lines += [
        "",
        "Ratios are medians of the ratios within a round. Flat: at 100,000 sessions a write costs "
        f"{writes[-1][5]:.2f}x what it costs at 1,000 on disk"
        + (f" and {writes_shm[-1][5]:.2f}x on tmpfs" if writes_shm else "") + " (goal: under 2 ms at 100,000, and flat).",
        "On disk a write is dominated by the fixed cost of a durable commit in WAL mode from a new connection",
        "(creating the WAL, then checkpointing and syncing when the last connection closes), which the hand-written",
        "insert pays too; it follows the disk's fsync latency, which on this shared machine swings from about 1 ms",
        "(idle) to 15-20 ms (other test suites writing). The tmpfs rows show our own cost without it.",
        "",
        f"### Reads over {reads_n:,} sessions (365 days)",
        "",
        "In-process: `cli.main(argv)` with the output discarded (what our code costs). As a process:",
        "`python -m mcp_exec_telemetry ...`, including the interpreter's start and the package's imports "
        f"(a bare interpreter: {extra['bare'] * 1000:.0f} ms; `--help`: {extra['help'] * 1000:.0f} ms).",
        "",
        "| command | in-process, median | as a process, median |",
        "|---|---:|---:|",
    ]
    for label, a, b in reads:
        lines.append(f"| `{label}` | {a * 1000:.0f} ms | {b * 1000:.0f} ms |")
    lines += [
        f"| `serve`: one scrape (`HistoryCollector`) | {extra['scrape'] * 1000:.0f} ms | - |",
        f"| `serve`: the scrape after a new session | {extra['scrape_after_write'] * 1000:.0f} ms | - |",
        "",
        f"By hand, reading and aggregating every session document takes {extra['scan_all']:.2f} s: whole-history",
        "commands instead aggregate the day rows that every write maintains (365 here); `history --limit` and",
        "`report --session latest` read only the rows they print.",
        "",
        "Goals, in this run:",
        "",
    ]
    timed = {label: (a, b) for label, a, b in reads}
    w100, w_shm = writes[-1], (writes_shm[-1] if writes_shm else None)
    met = lambda ok: "met" if ok else "**not met**"  # noqa: E731
    lines += [
        f"- Session write at exit under 2 ms at 100,000 sessions: {met(w100[1] < 2)} on disk ({w100[1]:.2f} ms; the hand-written durable",
        f"  insert alone takes {w100[3]:.2f} ms on this disk now)" + (f", {met(w_shm[1] < 2)} on tmpfs ({w_shm[1]:.2f} ms)" if w_shm else "")
        + f"; flat from 1,000 to 100,000: {met(w100[5] < 1.25)} ({w100[5]:.2f}x).",
    ]
    for labels, limit in ((("dashboard", "report", "advise"), 0.5), (("history --limit 20", "report --session latest"), 0.2)):
        for label in labels:
            a, b = timed[label]
            lines.append(f"- `{label}` under {limit} s: {met(a < limit)} in-process ({a * 1000:.0f} ms); as a process {met(b < limit)} ({b * 1000:.0f} ms).")
    lines += [
        f"- A `serve` scrape under 0.2 s: {met(extra['scrape'] < 0.2)} ({extra['scrape'] * 1000:.0f} ms).",
        "",
        "As a process, most of the time is the interpreter's start and the CLI's imports (`--help` alone above),",
        "not the history; no command that reads the history loads an OpenTelemetry SDK module.",
    ]
    write_section(DOC, "bench_history", "\n".join(lines))
    print(f"wrote the bench_history section of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
