"""The ``mcp-exec-telemetry`` command line: reports, dashboard, advice and exports over the metrics history.

Subcommands (each has ``--help``)::

    report         JSON, CSV or InfluxDB line protocol for a session, a day or a date range
    dashboard      the KPI dashboard
    advise         the advisor's findings
    history        sessions with their headline figures
    serve          a Prometheus /metrics endpoint over the history
    export-influx  send the history to an InfluxDB 1.x database

Which sessions: ``--session`` (a file, ``YYYY-MM-DD/N`` or ``latest``), ``--date``, or
``--from``/``--to``; nothing means the whole history. The history folder is ``--root``, else
``$MCP_EXEC_METRICS_DIR``, else ``.mcp_exec/metrics``. A problem (bad path or date, empty
history, InfluxDB rejecting a write) is one line on stderr and a non-zero exit: 1 for a
runtime problem, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Sequence

from . import advisor, dashboard, history, timeseries
from ._version import __version__

PROG = "mcp-exec-telemetry"


class CliError(Exception):
    """A problem reported as one line and exit status 1."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (not usage text plus the error)."""

    def error(self, message: str) -> Any:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad date {text!r}: expected YYYY-MM-DD") from None


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return n


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"bad tag {text!r}: expected key=value")
    return key, value


# --- selecting sessions ----------------------------------------------------------------------


@dataclass
class Selection:
    """What the user asked for: one session, one day, or a range, with what came just before."""

    kind: str  # "session" | "day" | "range"
    summary: dict[str, Any]
    sessions: list[history.SessionRecord]
    previous: dict[str, Any] | None
    label: str


def _warn(problems: Sequence[history.Problem]) -> None:
    for problem in problems:
        print(f"{PROG}: warning: {problem}", file=sys.stderr)


def _root(args: argparse.Namespace) -> Path:
    root = history.metrics_root(args.root)
    if not root.exists():
        raise CliError(f"no metrics history at {root} (pass --root or set {history.ENV_VAR})")
    if not root.is_dir():
        raise CliError(f"{root} is not a folder")
    return root


def _find_session(args: argparse.Namespace) -> tuple[history.SessionRecord, list[history.SessionRecord]]:
    """The session named by ``--session``, and every session of the history (for its predecessor)."""
    ref = args.session
    path = Path(ref)
    if ref != "latest" and path.exists() and not path.is_file():  # a FIFO or device would block the read
        raise CliError(f"--session {ref}: not a regular file")
    if ref != "latest" and (path.suffix == ".json" or path.is_file()):
        doc = history.load_session(path)
        day = date.fromisoformat(str(doc.get("date") or str(doc["start_time"])[:10]))
        record = history.SessionRecord(path, day, int(doc["session"]), doc)
        root = history.metrics_root(args.root) if args.root else path.resolve().parent.parent
        found = history.scan(root)
        return record, found.sessions
    root = _root(args)
    found = history.scan(root)
    _warn(found.problems)
    if not found.sessions:
        raise CliError(f"no sessions in {root}")
    if ref == "latest":
        return found.sessions[-1], found.sessions
    day_text, sep, num = ref.partition("/")
    try:
        day = date.fromisoformat(day_text)
        number = int(num)
    except ValueError:
        raise CliError(f"bad session {ref!r}: expected a session file, YYYY-MM-DD/N or latest") from None
    for record in found.sessions:
        if record.day == day and record.number == number:
            return record, found.sessions
    raise CliError(f"no session {day.isoformat()}/{number:03d} in {root}")


def _select(args: argparse.Namespace) -> Selection:
    if getattr(args, "session", None):
        if args.date or args.start or args.end:
            raise CliError("--session cannot be combined with --date, --from or --to")
        record, everything = _find_session(args)
        order = sorted(everything, key=lambda r: (r.day, r.number))
        before = [r for r in order if (r.day, r.number) < (record.day, record.number)]
        previous = before[-1].doc if before else None
        return Selection("session", record.doc, [record], previous, f"session {record.id}")
    if args.date and (args.start or args.end):
        raise CliError("--date cannot be combined with --from or --to")
    start, end = (args.date, args.date) if args.date else (args.start, args.end)
    if start and end and start > end:
        raise CliError(f"--from {start} is after --to {end}")
    root = _root(args)
    found = history.scan(root, start, end)
    _warn(found.problems)
    if not found.sessions:
        span = f" on {args.date}" if args.date else (f" from {start or 'the beginning'} to {end or 'the end'}" if start or end else "")
        raise CliError(f"no sessions in {root}{span}")
    summary = history.report(root, start, end)
    previous = None
    if args.date:
        earlier = [r for r in history.scan(root, None, args.date - timedelta(days=1)).sessions]
        if earlier:
            last_day = earlier[-1].day
            previous = history.aggregate(r for r in earlier if r.day == last_day)
        return Selection("day", summary, found.sessions, previous, args.date.isoformat())
    if start and end:
        length = (end - start).days + 1
        earlier = history.scan(root, start - timedelta(days=length), start - timedelta(days=1)).sessions
        previous = history.aggregate(earlier) if earlier else None
    label = f"{summary['period']['from']} to {summary['period']['to']}"
    return Selection("range", summary, found.sessions, previous, label)


# --- subcommands -----------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    sel = _select(args)
    if args.format == "json":
        sys.stdout.write(json.dumps(sel.summary, indent=2) + "\n")
    elif args.format == "csv":
        sys.stdout.write(timeseries.to_csv(sel.sessions))
    else:
        sys.stdout.write(timeseries.to_line_protocol(sel.sessions, namespace=args.namespace))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    sel = _select(args)
    n = sel.summary.get("sessions", 1)
    subtitle = f"{sel.label} · {n} session{'s' if n != 1 else ''}" if sel.kind != "session" else sel.label
    fancy = None if args.style == "auto" else args.style == "fancy"
    if fancy is False or (fancy is None and not sys.stdout.isatty()):
        subtitle = subtitle.replace("·", "-")
    text = dashboard.render(sel.summary, sel.previous, width=args.width, fancy=fancy, color=False if args.no_color else None, subtitle=subtitle)
    sys.stdout.write(text)
    return 0


def cmd_advise(args: argparse.Namespace) -> int:
    sel = _select(args)
    t = advisor.Thresholds(
        min_discovery_hit_rate=args.min_hit_rate,
        max_avg_execution_ms=args.max_avg_ms,
        min_skill_utilization=args.min_skill_utilization,
        min_pii_protection_rate=args.min_pii_protection,
        max_timeout_rate=args.max_timeout_rate,
        min_reduction_ratio=args.min_reduction_ratio,
    )
    findings = advisor.advise(sel.summary, t)
    if args.format == "json":
        sys.stdout.write(json.dumps({"scope": sel.label, "findings": [f.to_dict() for f in findings]}, indent=2) + "\n")
    elif findings:
        for f in findings:
            print(f)
    else:
        print(f"no findings for {sel.label}: every check passed")
    if args.fail_on != "never":
        rank = {"info": 0, "warning": 1, "critical": 2}
        if any(rank[f.severity] >= rank[args.fail_on] for f in findings):
            return 3
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    sel = _select(args)
    rows = sel.sessions[-args.limit :] if args.limit else sel.sessions
    header = ("SESSION", "START", "END", "DURATION", "QUERIES", "HIT", "RUNS", "OK", "AVG_MS", "TOKENS", "PII")
    table = [header]
    for r in rows:
        d, e, f, sec = (r.doc[x] for x in ("discovery", "execution", "filtering", "security"))
        table.append((
            r.id,
            str(r.doc.get("start_time", ""))[11:19],
            str(r.doc.get("end_time") or r.doc.get("timestamp", ""))[11:19],
            f"{int(r.doc.get('session_duration_ms', 0)) / 1000:.1f}s",
            str(d.get("total_queries", 0)),
            f"{float(d.get('hit_rate', 0)) * 100:.1f}%" if d.get("total_queries") else "-",
            str(e.get("total_executions", 0)),
            f"{float(e.get('success_rate', 0)) * 100:.1f}%" if e.get("total_executions") else "-",
            f"{float(e.get('avg_duration_ms', 0)):.1f}" if e.get("total_executions") else "-",
            str(f.get("estimated_tokens_saved", 0)),
            str(sec.get("pii_detected", 0)),
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        print("  ".join(cells).rstrip())
    shown = len(rows)
    print(f"{shown} of {len(sel.sessions)} sessions" if shown != len(sel.sessions) else f"{shown} session{'s' if shown != 1 else ''}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    from prometheus_client import CollectorRegistry, start_http_server

    from .timeseries import HistoryCollector

    root = _root(args)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HistoryCollector(root, namespace=args.namespace))
    try:
        server, thread = start_http_server(args.port, addr=args.host, registry=registry)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
    port = server.server_address[1]
    print(f"serving http://{args.host}:{port}/metrics over {root} (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


def cmd_export_influx(args: argparse.Namespace) -> int:
    sel = _select(args)
    tags = dict(args.tag or [])
    text = timeseries.to_line_protocol(sel.sessions, namespace=args.namespace, tags=tags)
    try:
        writer = timeseries.InfluxWriter(args.url, args.database, retention_policy=args.retention_policy, username=args.username,
                                         password=os.environ.get("INFLUX_PASSWORD") if args.username else None, retries=args.retries, timeout=args.timeout)
        if args.create_database:
            _create_database(writer)
        n = writer.write(text)
    except (ValueError, timeseries.InfluxWriteError) as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {n} points for {len(sel.sessions)} session{'s' if len(sel.sessions) != 1 else ''} to {args.url} database {args.database!r}")
    return 0


def _create_database(writer: timeseries.InfluxWriter) -> None:
    import urllib.error
    import urllib.parse
    import urllib.request

    name = writer.database.replace("\\", "\\\\").replace('"', '\\"')
    data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(f"{writer.url}/query", data=data, method="POST"), timeout=writer.timeout) as resp:
            resp.read()
    except urllib.error.HTTPError as err:
        raise timeseries.InfluxWriteError(f"InfluxDB refused to create database {writer.database!r} (HTTP {err.code})", err.code) from None
    except OSError as err:
        raise timeseries.InfluxWriteError(f"cannot reach InfluxDB at {writer.url}: {getattr(err, 'reason', err)}") from None


# --- parser ----------------------------------------------------------------------------------


def _selectors(p: argparse.ArgumentParser, session: bool = True) -> None:
    g = p.add_argument_group("which sessions (default: the whole history)")
    if session:
        g.add_argument("--session", metavar="REF", help="one session: a session file, YYYY-MM-DD/N, or 'latest'")
    g.add_argument("--date", type=_day, metavar="YYYY-MM-DD", help="one UTC day")
    g.add_argument("--from", dest="start", type=_day, metavar="YYYY-MM-DD", help="first UTC day of a range")
    g.add_argument("--to", dest="end", type=_day, metavar="YYYY-MM-DD", help="last UTC day of a range")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (exposed for documentation and tests)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", metavar="DIR", help=f"metrics history folder (default: ${history.ENV_VAR} or {history.DEFAULT_ROOT})")
    parser = _Parser(prog=PROG, description="Reports, dashboard, advice and exports over the mcp-exec-telemetry metrics history.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    sub.add_parser("demo", help="run the scripted demo agent against a real MCP server (see 'demo --help')", add_help=False)
    p = sub.add_parser("report", parents=[common], help="JSON, CSV or line protocol for a session, a day or a range",
                       description="Print a session's summary or the aggregate of a day or range as JSON, or one row per session as CSV or InfluxDB line protocol.")
    _selectors(p)
    p.add_argument("--format", choices=("json", "csv", "influx"), default="json", help="output format (default: json)")
    p.add_argument("--namespace", default="mcp_exec", help="measurement prefix for --format influx (default: mcp_exec)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("dashboard", parents=[common], help="the KPI dashboard", description="Draw the KPI dashboard; the hit-rate arrow compares with the previous session, day or period.")
    _selectors(p)
    p.add_argument("--width", type=_positive_int, help="columns (default: the terminal's, at most 80)")
    p.add_argument("--style", choices=("auto", "fancy", "ascii"), default="auto", help="box drawing or plain ASCII (default: fancy on a terminal)")
    p.add_argument("--no-color", action="store_true", help="no ANSI colours")
    p.set_defaults(func=cmd_dashboard)

    t = advisor.Thresholds()
    p = sub.add_parser("advise", parents=[common], help="the advisor's findings", description="Run the advisor's checks and print its findings.")
    _selectors(p)
    p.add_argument("--min-hit-rate", type=float, default=t.min_discovery_hit_rate, help="lowest acceptable discovery hit rate (default: %(default)s)")
    p.add_argument("--max-avg-ms", type=float, default=t.max_avg_execution_ms, help="highest acceptable average execution time in ms (default: %(default)s)")
    p.add_argument("--min-skill-utilization", type=float, default=t.min_skill_utilization, help="lowest acceptable share of skill executions per skill (default: %(default)s)")
    p.add_argument("--min-pii-protection", type=float, default=t.min_pii_protection_rate, help="lowest acceptable tokens created / PII detections (default: %(default)s)")
    p.add_argument("--max-timeout-rate", type=float, default=t.max_timeout_rate, help="highest acceptable timeouts / executions (default: %(default)s)")
    p.add_argument("--min-reduction-ratio", type=float, default=t.min_reduction_ratio, help="lowest acceptable filtering reduction ratio (default: %(default)s)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default: text)")
    p.add_argument("--fail-on", choices=("never", "info", "warning", "critical"), default="never", help="exit with status 3 when a finding is at least this severe (default: never)")
    p.set_defaults(func=cmd_advise)

    p = sub.add_parser("history", parents=[common], help="list sessions with their headline figures", description="List the sessions of the history, oldest first.")
    _selectors(p, session=False)
    p.add_argument("--limit", type=_positive_int, default=0, help="only the last N sessions")
    p.set_defaults(func=cmd_history, session=None)

    p = sub.add_parser("serve", parents=[common], help="a Prometheus /metrics endpoint over the history",
                       description="Serve the whole history's totals and rates at /metrics for Prometheus; re-read on every scrape.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_positive_int, default=9464, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--namespace", default="mcp_exec", help="metric name prefix (default: %(default)s)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export-influx", parents=[common], help="send sessions to an InfluxDB 1.x database",
                       description="Write the selected sessions to InfluxDB 1.x through its /write endpoint as line protocol.")
    _selectors(p)
    p.add_argument("--url", required=True, help="InfluxDB base URL, e.g. http://127.0.0.1:8086")
    p.add_argument("--database", required=True, help="database to write to")
    p.add_argument("--create-database", action="store_true", help="CREATE DATABASE first (a no-op when it exists)")
    p.add_argument("--retention-policy", help="retention policy (default: the database's default)")
    p.add_argument("--username", help="user name; the password is read from $INFLUX_PASSWORD")
    p.add_argument("--tag", type=_tag, action="append", metavar="KEY=VALUE", help="extra tag on every point (repeatable)")
    p.add_argument("--namespace", default="mcp_exec", help="measurement prefix (default: %(default)s)")
    p.add_argument("--retries", type=_positive_int, default=3, help="retries of connection errors and 5xx answers (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default: %(default)s)")
    p.set_defaults(func=cmd_export_influx)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    logging.getLogger("mcp_exec_telemetry").addHandler(logging.NullHandler())  # problems are printed below instead
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["demo"]:
        # The demo has its own options (it needs the 'mcp' extra); it parses them itself.
        from .integrations.demo import main as demo_main

        return demo_main(args_list[1:])
    argv = args_list
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
    except history.HistoryError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # never a traceback; MCP_EXEC_DEBUG=1 shows it
        if os.environ.get("MCP_EXEC_DEBUG"):
            raise
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
