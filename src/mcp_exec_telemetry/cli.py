"""The ``mcp-exec-telemetry`` command line: reports, dashboard, advice and exports over the metrics history.

Subcommands (each has ``--help``)::

    report         JSON, CSV or InfluxDB line protocol for a session, a day or a date range
    dashboard      the KPI dashboard
    advise         the advisor's findings
    history        sessions with their headline figures
    serve          a Prometheus /metrics endpoint over the history
    export         the history as the design's JSON files (session, daily and quarterly)
    export-influx  send the history to an InfluxDB 1.x database

Which sessions: ``--session`` (a file, ``YYYY-MM-DD/N`` or ``latest``), ``--date``, or
``--from``/``--to``; nothing means the whole history. The history folder is ``--root``, else
``$MCP_EXEC_METRICS_DIR``, else ``.mcp_exec/metrics``. ``report``, ``dashboard`` and ``advise``
also take ``--prometheus URL --since 24h``: the same figures for a whole fleet, computed with
PromQL by a Prometheus server (:mod:`mcp_exec_telemetry.fleet`). A problem (bad path or date, empty
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
from typing import TYPE_CHECKING, Any, Sequence

from . import advisor, history

if TYPE_CHECKING:
    from . import timeseries
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
    """What the user asked for: one session, one day, a range or a fleet window, with what came just before.

    ``summary`` is a session document or an aggregate; the session documents themselves are only
    read when a command needs them (:meth:`records`).
    """

    kind: str  # "session" | "day" | "range" | "fleet"
    summary: dict[str, Any]
    previous: dict[str, Any] | None
    label: str
    store: history.History | None = None
    start: date | None = None
    end: date | None = None
    record: history.SessionRecord | None = None

    def records(self) -> list[history.SessionRecord]:
        """Every session of the selection, oldest first (rows that do not validate are warned about and skipped)."""
        if self.record is not None:
            return [self.record]
        if self.store is None:
            raise CliError("this command needs the sessions themselves: it reads the local history, not --prometheus")
        return self.store.sessions(self.start, self.end).sessions


class _WarningPrinter(logging.Handler):
    """Prints the history's warnings (a skipped row, an import) as one ``warning:`` line each on stderr, once."""

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().replace("mcp-exec-telemetry history: ", "", 1)
        if text not in self.seen:
            self.seen.add(text)
            print(f"{PROG}: warning: {text}", file=sys.stderr)


_PRINTER = _WarningPrinter(logging.WARNING)


def _root(args: argparse.Namespace) -> Path:
    root = history.metrics_root(args.root)
    if not root.exists():
        raise CliError(f"no metrics history at {root} (pass --root or set {history.ENV_VAR})")
    if not root.is_dir():
        raise CliError(f"{root} is not a folder")
    return root


def _store(args: argparse.Namespace) -> history.History:
    return history.History(_root(args))


def _find_session(args: argparse.Namespace) -> tuple[history.SessionRecord, history.History | None]:
    """The session named by ``--session`` and the history it belongs to (to find its predecessor)."""
    ref = args.session
    path = Path(ref)
    if ref != "latest" and path.exists() and not path.is_file():  # a FIFO or device would block the read
        raise CliError(f"--session {ref}: not a regular file")
    if ref != "latest" and (path.suffix == ".json" or path.is_file()):
        doc = history.load_session(path)
        day = date.fromisoformat(str(doc.get("date") or str(doc["start_time"])[:10]))
        record = history.SessionRecord(path, day, int(doc["session"]), doc)
        root = history.metrics_root(args.root) if args.root else None
        store = history.History(root) if root is not None and (root / history.DB_FILE).exists() else None
        return record, store
    store = _store(args)
    if ref == "latest":
        found = store.latest()
        if found is None:
            raise CliError(f"no sessions in {store.root}")
        return found, store
    day_text, sep, num = ref.partition("/")
    try:
        day = date.fromisoformat(day_text)
        number = int(num)
    except ValueError:
        raise CliError(f"bad session {ref!r}: expected a session file, YYYY-MM-DD/N or latest") from None
    found = store.session(day, number)
    if found is None:
        raise CliError(f"no session {day.isoformat()}/{number:03d} in {store.root}")
    return found, store


def _previous_file(record: history.SessionRecord) -> dict[str, Any] | None:
    """The session before an exported session file, in the same export (``DIR/YYYY-MM-DD/session_NNN.json``)."""
    assert record.path is not None
    folder = record.path.resolve().parent
    candidates = sorted(folder.parent.glob("*/session_*.json"), reverse=True)
    for path in candidates:
        try:
            key = (date.fromisoformat(path.parent.name), int(path.stem.split("_")[1]))
        except (ValueError, IndexError):
            continue
        if key < (record.day, record.number):
            try:
                return history.load_session(path)
            except history.HistoryError as exc:
                print(f"{PROG}: warning: skipped {exc}", file=sys.stderr)
    return None


def _select(args: argparse.Namespace) -> Selection:
    if getattr(args, "prometheus", None):
        return _select_fleet(args)
    if getattr(args, "since", None):
        raise CliError("--since needs --prometheus (the local history is selected with --date, --from and --to)")
    if getattr(args, "session", None):
        if args.date or args.start or args.end:
            raise CliError("--session cannot be combined with --date, --from or --to")
        record, store = _find_session(args)
        if store is not None:
            before = store.before(record.day, record.number)
            previous = before.doc if before else None
        else:
            previous = _previous_file(record)
        return Selection("session", record.doc, previous, f"session {record.id}", store, record=record)
    if args.date and (args.start or args.end):
        raise CliError("--date cannot be combined with --from or --to")
    start, end = (args.date, args.date) if args.date else (args.start, args.end)
    if start and end and start > end:
        raise CliError(f"--from {start} is after --to {end}")
    store = _store(args)
    days = store.days(start, end)
    if not days:
        span = f" on {args.date}" if args.date else (f" from {start or 'the beginning'} to {end or 'the end'}" if start or end else "")
        raise CliError(f"no sessions in {store.root}{span}")
    period = {"from": (start or days[0][0]).isoformat(), "to": (end or days[-1][0]).isoformat()}
    summary = {"kind": history.REPORT_KIND, "schema": history.SCHEMA, "period": period, **history.aggregate(doc for _d, doc in days)}
    previous = None
    if args.date:
        earlier = store.days(None, args.date - timedelta(days=1))
        if earlier:
            previous = earlier[-1][1]
        return Selection("day", summary, previous, args.date.isoformat(), store, start, end)
    if start and end:
        length = (end - start).days + 1
        earlier = store.days(start - timedelta(days=length), start - timedelta(days=1))
        previous = history.aggregate(doc for _d, doc in earlier) if earlier else None
    label = f"{period['from']} to {period['to']}"
    return Selection("range", summary, previous, label, store, start, end)


def _select_fleet(args: argparse.Namespace) -> Selection:
    from .fleet import FleetError, PrometheusSource, parse_duration

    if getattr(args, "session", None) or args.date or args.start or args.end:
        raise CliError("--prometheus selects a time window with --since; it cannot be combined with --session, --date, --from or --to")
    since = args.since or "24h"
    try:
        parse_duration(since)
        parse_duration(args.step)
        source = PrometheusSource(args.prometheus, namespace=getattr(args, "prom_namespace", None) or "mcp_exec", matchers=args.match or "")
        summary = source.summary(since, step=args.step)
        previous = source.previous(since, step=args.step) if args.command == "dashboard" else None
    except (ValueError, FleetError) as exc:
        raise CliError(str(exc)) from None
    if not summary["sessions"] and not summary["discovery"]["total_queries"] and not summary["execution"]["total_executions"]:
        raise CliError(f"no sessions in {args.prometheus} over the last {since}")
    if previous is not None and not previous["sessions"]:
        previous = None
    return Selection("fleet", summary, previous, f"fleet, last {since}")


# --- subcommands -----------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    sel = _select(args)
    if args.format == "json":
        sys.stdout.write(json.dumps(sel.summary, indent=2) + "\n")
    elif args.format == "csv":
        from . import timeseries  # each command imports what only it needs: --help stays fast

        sys.stdout.write(timeseries.to_csv(sel.records()))
    else:
        from . import timeseries

        sys.stdout.write(timeseries.to_line_protocol(sel.records(), namespace=args.namespace))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    sel = _select(args)
    n = sel.summary.get("sessions", 1)
    subtitle = f"{sel.label} · {n} session{'s' if n != 1 else ''}" if sel.kind != "session" else sel.label
    fancy = None if args.style == "auto" else args.style == "fancy"
    if fancy is False or (fancy is None and not sys.stdout.isatty()):
        subtitle = subtitle.replace("·", "-")
    from . import dashboard

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
    if args.date and (args.start or args.end):
        raise CliError("--date cannot be combined with --from or --to")
    start, end = (args.date, args.date) if args.date else (args.start, args.end)
    if start and end and start > end:
        raise CliError(f"--from {start} is after --to {end}")
    store = _store(args)
    rows = store.sessions(start, end, limit=args.limit or None).sessions
    total = store.count(start, end) if args.limit else len(rows)
    if not rows:
        span = f" on {args.date}" if args.date else (f" from {start or 'the beginning'} to {end or 'the end'}" if start or end else "")
        raise CliError(f"no sessions in {store.root}{span}")
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
    print(f"{shown} of {total} sessions" if shown != total else f"{shown} session{'s' if shown != 1 else ''}")
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
    records = sel.records()
    from . import timeseries

    text = timeseries.to_line_protocol(records, namespace=args.namespace, tags=tags)
    try:
        writer = timeseries.InfluxWriter(args.url, args.database, retention_policy=args.retention_policy, username=args.username,
                                         password=os.environ.get("INFLUX_PASSWORD") if args.username else None, retries=args.retries, timeout=args.timeout)
        if args.create_database:
            _create_database(writer)
        n = writer.write(text)
    except (ValueError, timeseries.InfluxWriteError) as exc:
        raise CliError(str(exc)) from None
    print(f"wrote {n} points for {len(records)} session{'s' if len(records) != 1 else ''} to {args.url} database {args.database!r}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
    target = Path(args.dir)
    if target.exists() and not target.is_dir():
        raise CliError(f"{target} exists and is not a folder")
    try:
        n = store.export_json_files(target)
    except OSError as exc:
        raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
    if not n:
        raise CliError(f"no sessions in {store.root}")
    print(f"wrote {n} session{'s' if n != 1 else ''}, their daily summaries and quarterly_report.json to {target}")
    return 0


def _create_database(writer: timeseries.InfluxWriter) -> None:
    import urllib.error
    import urllib.parse
    import urllib.request

    from . import timeseries

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


def _fleet(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fleet view (instead of the local history)")
    g.add_argument("--prometheus", metavar="URL", help="compute from this Prometheus server with PromQL, e.g. http://127.0.0.1:9090")
    g.add_argument("--since", metavar="DURATION", help="the window ending now, as a Prometheus duration: 30m, 24h, 7d (default: 24h)")
    g.add_argument("--match", metavar="MATCHERS", help="label matchers added to every selector, e.g. 'job=\"agents\"'")
    g.add_argument("--step", metavar="DURATION", default="15s",
                   help="resolution for counters that reset inside the window (agents restarted on the same port); at most the scrape interval (default: 15s)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (exposed for documentation and tests)."""
    common = _Parser(add_help=False)  # a parent of the subcommands' parsers, which are _Parsers too
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
    _fleet(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("dashboard", parents=[common], help="the KPI dashboard", description="Draw the KPI dashboard; the hit-rate arrow compares with the previous session, day or period.")
    _selectors(p)
    p.add_argument("--width", type=_positive_int, help="columns (default: the terminal's, at most 80)")
    p.add_argument("--style", choices=("auto", "fancy", "ascii"), default="auto", help="box drawing or plain ASCII (default: fancy on a terminal)")
    p.add_argument("--no-color", action="store_true", help="no ANSI colours")
    _fleet(p)
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
    _fleet(p)
    p.set_defaults(func=cmd_advise)

    p = sub.add_parser("history", parents=[common], help="list sessions with their headline figures", description="List the sessions of the history, oldest first.")
    _selectors(p, session=False)
    p.add_argument("--limit", type=_positive_int, default=0, help="only the last N sessions (reads only those)")
    p.set_defaults(func=cmd_history, session=None)

    p = sub.add_parser("serve", parents=[common], help="a Prometheus /metrics endpoint over the history",
                       description="Serve the whole history's totals and rates at /metrics for Prometheus; each scrape reads the days' aggregates, not the sessions.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    p.add_argument("--port", type=_positive_int, default=9464, help="port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--namespace", default="mcp_exec", help="metric name prefix (default: %(default)s)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("export", parents=[common], help="write the history as the design's JSON files",
                       description="Write every session as YYYY-MM-DD/session_NNN.json, each day's daily_summary.json and quarterly_report.json under DIR.")
    p.add_argument("--format", choices=("json-files",), required=True, help="the layout to write (json-files: the design's files)")
    p.add_argument("dir", metavar="DIR", help="folder to write into (created owner-only if missing)")
    p.set_defaults(func=cmd_export)

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
    hist_logger = logging.getLogger("mcp_exec_telemetry.history")
    if _PRINTER not in hist_logger.handlers:
        hist_logger.addHandler(_PRINTER)
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
