"""Issue 11: no session lost, whatever shape the host's program has.

``with tel:`` inside ``with tel:`` is one session; a step still open when the session ends is
recorded as ``abandoned`` with one warning; records after the end are dropped without a line per
record and counted; steps in ``ThreadPoolExecutor`` workers land in the session's trace; steps in
forked ``multiprocessing`` pool workers reach the history.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mcp_exec_telemetry import observe


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "mcp_exec_telemetry" and r.levelno >= logging.WARNING]


def _sessions(root: Path) -> list[dict]:
    from mcp_exec_telemetry.history import scan

    return [r.doc for r in scan(root).sessions]


def test_nested_with_is_one_session_that_ends_at_the_outer_exit(tmp_path):
    exporter = InMemorySpanExporter()
    tel = observe(history=tmp_path)
    tel.add_span_exporter(exporter, batch=False)
    with tel:
        with tel:
            with tel.execution.run("python3") as ex:
                ex.set_result(0)
        assert not tel.closed  # the inner exit did not end the session
        with tel.execution.run("python3") as ex:  # recorded, not silently lost
            ex.set_result(0)
    assert tel.closed
    assert tel.summary()["execution"]["total_executions"] == 2
    (saved,) = _sessions(tmp_path)
    assert saved["execution"]["total_executions"] == 2
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans].count("session") == 1
    session = next(s for s in spans if s.name == "session")
    assert all(s.parent.span_id == session.context.span_id for s in spans if s.name == "execution.run")


def test_a_step_open_at_session_end_is_recorded_as_abandoned_with_one_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mcp_exec_telemetry")
    exporter = InMemorySpanExporter()
    tel = observe(history=tmp_path)
    tel.add_span_exporter(exporter, batch=False)
    release = threading.Event()

    def stuck_worker():
        with tel.execution.run("python3"):
            release.wait(10)

    with tel:
        worker = threading.Thread(target=stuck_worker)
        worker.start()
        leaked = tel.discovery.search("files").__enter__()  # never exited before the end
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        while len(tel._session.open_operations) < 2:
            pass
    release.set()
    worker.join(10)
    leaked.__exit__(None, None, None)  # late exit: nothing recorded twice, nothing printed

    e = tel.summary()["execution"]
    assert (e["total_executions"], e["successful_executions"], e["failed_executions"]) == (2, 1, 0)
    assert e["interrupted"] == {"abandoned": 1}
    assert tel.summary()["discovery"]["interrupted"] == {"abandoned": 1}
    (saved,) = _sessions(tmp_path)
    assert saved["execution"]["interrupted"] == {"abandoned": 1}
    assert saved["discovery"]["total_queries"] == 1
    abandoned = [s for s in exporter.get_finished_spans() if s.attributes.get("error.type") == "abandoned"]
    assert sorted(s.name for s in abandoned) == ["discovery.search", "execution.run"]
    warnings = [m for m in _warnings(caplog) if "abandoned" in m]
    assert len(warnings) == 1 and "2 step(s)" in warnings[0], _warnings(caplog)
    assert tel.dropped_after_close.measurements == 0  # the late exits recorded nothing more


def test_records_after_close_are_dropped_quietly_and_counted(caplog, capfd):
    caplog.set_level(logging.DEBUG)
    exporter = InMemorySpanExporter()
    tel = observe(history=False)
    tel.add_span_exporter(exporter, batch=False)
    with tel:
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
    caplog.clear()
    for _ in range(1000):
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        tel.security.pii_detected("email")
    assert tel.dropped_after_close == (1000, 2000)  # one span and two measurements per iteration
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records[:5]]
    assert "after the session ended" in caplog.records[0].getMessage()
    assert "already shutdown" not in capfd.readouterr().err
    assert tel.summary()["execution"]["total_executions"] == 1
    assert len([s for s in exporter.get_finished_spans() if s.name == "execution.run"]) == 1


def test_steps_in_thread_pool_workers_parent_under_the_span_current_at_submit():
    exporter = InMemorySpanExporter()
    tel = observe(history=False)
    tel.add_span_exporter(exporter, batch=False)

    def task(i):
        with tel.execution.run("python3") as ex:
            ex.set_result(0)

    with tel:
        with tel.tracer.start_as_current_span("batch") as batch:
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(task, range(20)))
    runs = [s for s in exporter.get_finished_spans() if s.name == "execution.run"]
    assert len(runs) == 20
    assert {s.context.trace_id for s in runs} == {tel.session_span.get_span_context().trace_id}
    assert all(s.parent is not None and s.parent.span_id == batch.get_span_context().span_id for s in runs)


_POOL_TEL = None


def _pool_task(i: int) -> int:
    with _POOL_TEL.execution.run("python3") as ex:
        ex.set_result(0)
    return os.getpid()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.parametrize("ending", ["close_and_join", "with_block"])
def test_fork_pool_workers_save_their_records_to_the_history(ending, tmp_path):
    global _POOL_TEL
    with observe(history=tmp_path, export_timeout_ms=2_000) as tel:
        _POOL_TEL = tel
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        pool = multiprocessing.get_context("fork").Pool(2)
        if ending == "with_block":  # Pool.__exit__ terminates the workers with SIGTERM
            with pool:
                pids = pool.map(_pool_task, range(10))
        else:  # the workers exit on their own, through multiprocessing's finalizers
            try:
                pids = pool.map(_pool_task, range(10))
            finally:
                pool.close()
                pool.join()
        _POOL_TEL = None
    sessions = _sessions(tmp_path)
    counts = sorted(s["execution"]["total_executions"] for s in sessions)
    # The parent's session, and one per worker that ran tasks (an idle worker adds no empty session).
    assert len(sessions) == 1 + len(set(pids)), counts
    assert sum(counts) == 11, counts  # 1 in the parent, 10 in the workers


def test_thread_pool_tasks_keep_their_results_exceptions_and_arguments():
    with observe(history=False) as tel:
        def task(a, *, b):
            if a < 0:
                raise KeyError(a)
            return a + b

        with ThreadPoolExecutor(max_workers=2) as pool:
            ok = pool.submit(task, 1, b=2)
            failed = pool.submit(task, -1, b=0)
            assert ok.result(5) == 3
            assert isinstance(failed.exception(5), KeyError)
        assert tel.summary()["execution"]["total_executions"] == 0
