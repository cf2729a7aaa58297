"""Generate a sample metrics report: a few simulated agent sessions, then the dashboard, advice and JSON.

    python examples/generate_metrics_report.py                      # history in a temporary folder
    python examples/generate_metrics_report.py --root .mcp_exec/metrics --sessions 5

Each session is a deterministic, simulated agent run (a fake clock and recorded durations), so the
report is the same every time. Every session ends by being written to the metrics history; the
report then reads that history back, as the command line does.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mcp_exec_telemetry import observe
from mcp_exec_telemetry.advisor import advise
from mcp_exec_telemetry.dashboard import render
from mcp_exec_telemetry.history import report, scan


class Clock:
    """A wall clock in nanoseconds that the simulation moves forward."""

    def __init__(self, start: datetime) -> None:
        self.now = int(start.timestamp() * 1e9)

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += int(ms * 1e6)


def simulate_session(root: Path, start: datetime, variant: int) -> Path:
    """One agent session: search tools, run code, filter results, reuse skills, tokenize PII."""
    clock = Clock(start)
    with observe(service_name="example-agent", history=str(root), clock=clock) as tel:
        # Discovery: a search that finds nothing is followed by a better one; then the SDK is generated.
        tel.discovery.record("customer records", "name-and-description", 30.0 + 5 * variant, 0)
        tel.discovery.record("crm customer", "name-and-description", 25.0, 4)
        clock.advance(200)
        tel.sdk.record(12.0, tools_included=6, ipc_handler_size_bytes=2048, cache_hit=variant > 0)
        # Execution: mostly fast, one slow run, and one failure every other session.
        for i, ms in enumerate((85.0, 240.0, 620.0, 910.0 + 400 * variant, 1450.0)):
            outcome = "failure" if (variant % 2 and i == 2) else "success"
            tel.execution.record("javascript" if i == 4 else "python3", ms, outcome, 0 if outcome == "success" else 1)
            clock.advance(ms)
        tel.discovery.record("export csv", "full", 20.0, 2)
        tel.filtering.record("filter", 52_000, 1_200, 4.0)
        tel.filtering.record("map", 8_000, 2_000, 1.5)
        for name in ("filter_test_files", "analyze_rs_files", "export_json", "cleanup_tmp"):
            tel.skills.save(name, "python3")  # the runtime registers its saved skills with each session
        for name, runs in (("filter_test_files", 5), ("analyze_rs_files", 3), ("export_json", 2), ("cleanup_tmp", 1 if variant else 0)):
            for _ in range(runs):
                tel.skills.record(name, 40.0, True)
        tel.security.pii_detected("email", 2)
        tel.security.pii_detected("api_key", 1 + variant % 2)
        tel.security.pii_tokenized("email", 2)
        tel.security.pii_tokenized("api_key", 1)  # one api_key slips through in odd variants
        tel.security.tokens_created(3)
        tel.security.audit("tokenized", "email", "info")
        clock.advance(30_000)
    return tel.saved_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="history folder (default: a new temporary folder)")
    parser.add_argument("--sessions", type=int, default=3, help="sessions to simulate (default: 3)")
    parser.add_argument("--start", default="2024-11-08T10:00:00", help="UTC start of the first session")
    parser.add_argument("--quiet", action="store_true", help="only write the history")
    args = parser.parse_args(argv)
    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="mcp-exec-metrics-"))
    start = datetime.fromisoformat(args.start).replace(tzinfo=timezone.utc)
    for i in range(args.sessions):
        path = simulate_session(root, start + timedelta(hours=4 * i), i)
        if not args.quiet:
            print(f"wrote {path}")
    if args.quiet:
        return 0
    sessions = scan(root).sessions
    summary = report(root)
    previous = sessions[-2].doc if len(sessions) > 1 else None
    print()
    print(render(sessions[-1].doc, previous, fancy=sys.stdout.isatty(), subtitle=f"latest session ({sessions[-1].id})"))
    print(render(summary, fancy=sys.stdout.isatty(), subtitle=f"all {summary['sessions']} sessions"))
    print("Advisor:")
    findings = advise(summary)
    for f in findings:
        print(f"  {f}")
    if not findings:
        print("  every check passed")
    print()
    print(json.dumps({k: summary[k] for k in ("sessions", "discovery", "execution", "filtering", "skills", "security")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
