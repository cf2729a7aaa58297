"""Issue 5, point 6: processes forked after ``observe()`` started.

A child made by ``os.fork()`` or by ``multiprocessing`` (start method "fork") after the parent
recorded, while the parent's exporter threads run, records into its own providers: its summary
holds only its own operations, nothing deadlocks (every wait has a timeout), the parent's totals
are unaffected, and the history files stay consistent (the day's summary equals the sum of the
session files, each operation counted once).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import signal
import time
from pathlib import Path

import pytest

from mcp_exec_telemetry import observe

from tests.servers import OtlpReceiver

CHILD_TIMEOUT_S = 15.0
PARENT_BEFORE, PARENT_AFTER, CHILD_OPS = 5, 2, 3

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _record(tel, n: int, language: str) -> None:
    for i in range(n):
        with tel.execution.run(language) as ex:
            ex.set_result(0)
        tel.security.pii_detected("email")


def _child_work(tel) -> dict:
    """What every child does: record its own operations, read its summary, end its session."""
    _record(tel, CHILD_OPS, "javascript")
    summary = tel.summary()
    tel.shutdown()  # writes the child's own session file
    return {
        "executions": summary["execution"]["total_executions"],
        "languages": summary["execution"]["languages"],
        "pii": summary["security"]["pii_detected"],
        "saved": str(tel.saved_path),
    }


def _run_forked(tel) -> dict:
    """os.fork(): run the child's work, get its result through a pipe, never wait forever."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            os.close(r)
            payload = json.dumps(_child_work(tel))
        except BaseException as exc:  # pragma: no cover - reported to the parent
            payload, code = json.dumps({"error": repr(exc)}), 1
        try:
            os.write(w, payload.encode())
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"forked child did not finish within {CHILD_TIMEOUT_S} s (deadlock?)")
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                chunk = os.read(r, 65536)
                if not chunk:
                    break
                data += chunk
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                raise AssertionError("forked child closed its pipe but did not exit (deadlock at exit?)")
            time.sleep(0.02)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(r)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, data[:2000])
    return json.loads(data)


_MP_TEL = None  # the session a multiprocessing child inherits


def _mp_child(conn) -> None:
    try:
        conn.send(_child_work(_MP_TEL))
    except BaseException as exc:  # pragma: no cover - reported to the parent
        conn.send({"error": repr(exc)})
    finally:
        conn.close()


def _run_multiprocessing(tel) -> dict:
    global _MP_TEL
    _MP_TEL = tel
    ctx = multiprocessing.get_context("fork")
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_mp_child, args=(child_conn,))
    proc.start()
    child_conn.close()
    try:
        assert parent_conn.poll(CHILD_TIMEOUT_S), f"multiprocessing child sent nothing within {CHILD_TIMEOUT_S} s (deadlock?)"
        result = parent_conn.recv()
        proc.join(CHILD_TIMEOUT_S)
        assert not proc.is_alive(), "multiprocessing child did not exit (deadlock at exit?)"
        assert proc.exitcode == 0, proc.exitcode
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        _MP_TEL = None
    return result


def _history(root: Path) -> tuple[list[dict], list[dict]]:
    from mcp_exec_telemetry.history import History

    store = History(root)
    sessions = [r.doc for r in store.sessions().sessions]
    dailies = [store.daily_summary(day) for day, _doc in store.days()]
    return sessions, dailies


@pytest.mark.slow
@pytest.mark.parametrize("how", ["os.fork", "multiprocessing"])
def test_a_forked_child_records_into_its_own_providers_and_the_history_stays_consistent(how, tmp_path, monkeypatch):
    root = tmp_path / "history"
    monkeypatch.setenv("MCP_EXEC_METRICS_DIR", str(root))
    with OtlpReceiver() as rx:
        with observe(
            otlp_endpoint=rx.http_endpoint,
            otlp_protocol="http/protobuf",
            export_interval_ms=50,  # the exporter thread is busy when the fork happens
            export_timeout_ms=2_000,
        ) as tel:
            _record(tel, PARENT_BEFORE, "python3")
            rx.wait_for(lambda: rx.metric_requests(), timeout=10)  # the periodic exporter has run
            child = _run_forked(tel) if how == "os.fork" else _run_multiprocessing(tel)
            assert "error" not in child, child
            _record(tel, PARENT_AFTER, "python3")
            parent = tel.summary()

    # The child counted only its own operations, and the parent never saw them.
    assert child["executions"] == CHILD_OPS, child
    assert child["languages"] == {"javascript": CHILD_OPS}, child
    assert child["pii"] == CHILD_OPS, child
    assert parent["execution"]["total_executions"] == PARENT_BEFORE + PARENT_AFTER
    assert parent["execution"]["languages"] == {"python3": PARENT_BEFORE + PARENT_AFTER}
    assert parent["security"]["pii_detected"] == PARENT_BEFORE + PARENT_AFTER

    # History: one session per process, each operation counted once, the daily summary their sum.
    sessions, dailies = _history(root)
    assert len(sessions) == 2, [s.get("session") for s in sessions]
    assert sorted(s["session"] for s in sessions) == [1, 2]
    assert sorted(s["execution"]["total_executions"] for s in sessions) == sorted([CHILD_OPS, PARENT_BEFORE + PARENT_AFTER])
    total = PARENT_BEFORE + PARENT_AFTER + CHILD_OPS
    assert sum(s["execution"]["total_executions"] for s in sessions) == total
    assert sum(s["security"]["pii_detected"] for s in sessions) == total
    (daily,) = dailies
    assert daily["counts"]["sessions"] == 2
    assert daily["session_numbers"] == [1, 2]
    assert daily["execution"]["total_executions"] == total
    assert daily["security"]["pii_detected"] == total
