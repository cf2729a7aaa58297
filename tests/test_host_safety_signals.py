"""Issue 11: SIGTERM and SIGHUP do not lose the in-flight session.

``docker stop``, Kubernetes and a closing terminal end a process with SIGTERM or SIGHUP. A real
agent process (a subprocess of the test) records, then sits inside a step when the test sends it
a real signal: the session is closed (the open step recorded as ``abandoned``), saved to the
history and flushed over OTLP to a real receiver, and the process then ends with the same signal
status. A handler the host installed is never replaced; ``handle_signals=False`` leaves signals
alone. SIGINT keeps working as before (``KeyboardInterrupt`` unwinds the ``with`` block).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry import trace

from tests.servers import OtlpReceiver

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")

EXPORT_TIMEOUT_MS = 3_000
DONE = 5  # executions finished before the signal; one more is open when it arrives

AGENT = r"""
import signal, sys, time
from mcp_exec_telemetry import observe

mode, endpoint, history, marker = sys.argv[1:5]

def host_handler(signum, frame):
    with open(marker, "a") as f:
        f.write(f"host {signum}\n")
    if mode == "host_before":
        sys.exit(3)
    previous[signum](signum, frame)  # host_after: the host chains to what it replaced

previous = {}
if mode == "host_before":
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, host_handler)

options = dict(otlp_endpoint=endpoint, otlp_protocol="http/protobuf", export_interval_ms=3_600_000,
               export_timeout_ms=%d, history=history, handle_signals=(mode != "opt_out"))
with observe(**options) as tel:
    if mode == "host_after":
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, host_handler)
    for i in range(%d):
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
    with tel.execution.run("python3"):
        print("ready", flush=True)
        time.sleep(60)
""" % (EXPORT_TIMEOUT_MS, DONE)


def _run_agent(mode: str, sig: int, endpoint: str, tmp_path: Path) -> tuple[int, float, str]:
    """Start the agent, wait until it is inside its last step, signal it; return (status, seconds, stderr)."""
    marker = tmp_path / "host_handler_ran"
    proc = subprocess.Popen(
        [sys.executable, "-c", AGENT, mode, endpoint, str(tmp_path / "history"), str(marker)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        t0 = time.monotonic()
        proc.send_signal(sig)
        status = proc.wait(timeout=EXPORT_TIMEOUT_MS / 1000 + 10)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return status, elapsed, proc.stderr.read()


def _saved_sessions(tmp_path: Path) -> list[dict]:
    from mcp_exec_telemetry.history import scan

    return [r.doc for r in scan(tmp_path / "history").sessions]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_closes_saves_and_flushes_the_session_then_ends_the_process_with_that_signal(sig, tmp_path):
    with OtlpReceiver() as rx:
        status, elapsed, stderr = _run_agent("default", sig, rx.http_endpoint, tmp_path)
        assert status == -sig, stderr
        assert elapsed < EXPORT_TIMEOUT_MS / 1000 + 2.5, elapsed

        (saved,) = _saved_sessions(tmp_path)
        e = saved["execution"]
        assert (e["total_executions"], e["successful_executions"], e["interrupted"]) == (DONE + 1, DONE, {"abandoned": 1})

        # The final OTLP flush reached the receiver: every span, and the final metric totals.
        runs = rx.spans("execution.run")
        assert len(runs) == DONE + 1, rx.summary()
        assert len(rx.spans("session")) == 1
        name = "mcp_exec.execution.duration"
        assert rx.latest(name, {"language": "python3", "outcome": "success"}).count == DONE
        assert rx.latest(name, {"language": "python3", "outcome": "abandoned", "error.type": "abandoned"}).count == 1
    assert "Traceback" not in stderr, stderr


def test_a_host_handler_installed_before_observe_is_kept_and_the_session_still_saved(tmp_path):
    with OtlpReceiver() as rx:
        status, _, stderr = _run_agent("host_before", signal.SIGTERM, rx.http_endpoint, tmp_path)
        assert status == 3, stderr  # the host's handler decided: sys.exit(3)
        assert (tmp_path / "host_handler_ran").read_text() == f"host {int(signal.SIGTERM)}\n"
        (saved,) = _saved_sessions(tmp_path)  # SystemExit unwound the with block, which saved
        assert saved["execution"]["total_executions"] == DONE + 1
        assert len(rx.spans("execution.run")) == DONE + 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_host_handler_installed_later_is_chained_to_ours(sig, tmp_path):
    with OtlpReceiver() as rx:
        status, _, stderr = _run_agent("host_after", sig, rx.http_endpoint, tmp_path)
        assert status == -sig, stderr
        assert (tmp_path / "host_handler_ran").read_text() == f"host {int(sig)}\n"
        (saved,) = _saved_sessions(tmp_path)
        assert saved["execution"]["total_executions"] == DONE + 1
        assert len(rx.spans("execution.run")) == DONE + 1


def test_handle_signals_false_leaves_the_default_action(tmp_path):
    with OtlpReceiver() as rx:
        status, _, stderr = _run_agent("opt_out", signal.SIGTERM, rx.http_endpoint, tmp_path)
        assert status == -signal.SIGTERM, stderr
        assert _saved_sessions(tmp_path) == []  # the default action: nothing ran
        assert rx.spans("session") == []


def test_sigint_still_unwinds_and_saves(tmp_path):
    with OtlpReceiver() as rx:
        status, _, stderr = _run_agent("default", signal.SIGINT, rx.http_endpoint, tmp_path)
        assert status in (-signal.SIGINT, 1), stderr  # KeyboardInterrupt (-2 on CPython >= 3.8)
        (saved,) = _saved_sessions(tmp_path)
        e = saved["execution"]
        # KeyboardInterrupt went through the open step: an error, recorded by the step itself.
        assert (e["total_executions"], e["successful_executions"]) == (DONE + 1, DONE)
        assert len(rx.spans("execution.run")) == DONE + 1


TWO_SESSIONS = r"""
import sys, time
from mcp_exec_telemetry import observe

root = sys.argv[1]
with observe(history=root, service_name="outer") as outer:
    with observe(history=root, service_name="inner") as inner:
        for tel in (outer, inner):
            with tel.execution.run("python3") as ex:
                ex.set_result(0)
        print("ready", flush=True)
        time.sleep(60)
"""


def test_two_open_sessions_are_both_saved_and_the_process_ends_with_the_signal(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", TWO_SESSIONS, str(tmp_path / "history")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == -signal.SIGTERM, proc.stderr.read()
    saved = _saved_sessions(tmp_path)
    assert sorted(s["service_name"] for s in saved) == ["inner", "outer"]
    assert [s["execution"]["total_executions"] for s in saved] == [1, 1]


def test_ended_sessions_give_the_default_disposition_back_in_any_order():
    from mcp_exec_telemetry import observe

    before = signal.getsignal(signal.SIGTERM)
    assert before is signal.SIG_DFL
    before_span = trace.get_current_span()
    a = observe(history=False).__enter__()
    b = observe(history=False).__enter__()
    assert signal.getsignal(signal.SIGTERM) == b._on_signal
    a.shutdown()  # out of order: b's handler stays, it chains to a's, which now passes through
    assert signal.getsignal(signal.SIGTERM) == b._on_signal
    b.shutdown()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    assert trace.get_current_span() is before_span  # no ended session span left current either
