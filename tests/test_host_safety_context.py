"""Issue 11: the OpenTelemetry context and the outcomes stay right, whatever the host does.

A span processor that raises in ``on_end``, generators that interleave steps, handles exited out of
order, a step closed from another task: afterwards no ended step span is current, and nothing is
printed to stderr. Cancellation (``CancelledError``, an ``asyncio.wait_for`` timeout,
``GeneratorExit``) is outcome ``cancelled``: counted, but not a failure.
"""

from __future__ import annotations

import asyncio
import logging

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from mcp_exec_telemetry import dashboard, observe


def _session(**options):
    exporter = InMemorySpanExporter()
    tel = observe(history=False, **options)
    tel.add_span_exporter(exporter, batch=False)
    return tel, exporter


def _parent_name(spans, span):
    by_id = {s.context.span_id: s.name for s in spans}
    return by_id.get(span.parent.span_id) if span.parent is not None else None


class _RaisingOnEnd(SpanProcessor):
    def on_end(self, span):
        if span.name == "execution.run":
            raise RuntimeError("exporter bug")


def test_a_span_processor_raising_in_on_end_does_not_leave_the_step_span_current():
    tel, exporter = _session(span_processors=(_RaisingOnEnd(),))
    with tel:
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        after = trace.get_current_span()
        with tel.discovery.search("files") as q:
            q.set_results(1)
    assert after is tel.session_span
    spans = exporter.get_finished_spans()
    (search,) = [s for s in spans if s.name == "discovery.search"]
    assert _parent_name(spans, search) == "session"
    assert tel.summary()["execution"]["total_executions"] == 1


def test_interleaved_generators_leave_no_ended_step_current():
    tel, exporter = _session()

    def worker(name):
        with tel.filtering.operation(name, 100) as f:
            yield
            f.set_output(10)
        yield

    with tel:
        a, b = worker("grep"), worker("head")
        next(a)  # a's step is current
        next(b)  # b's step is current, under a's
        next(a)  # a exits while b is current: out of order
        next(b)  # b exits: its parent (a) has ended, so the session is current again
        current = trace.get_current_span()
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
    assert current is tel.session_span
    spans = exporter.get_finished_spans()
    (run,) = [s for s in spans if s.name == "execution.run"]
    assert _parent_name(spans, run) == "session"
    assert tel.summary()["filtering"]["total_operations"] == 2


def test_handles_exited_out_of_order_restore_the_session_context():
    tel, exporter = _session()
    with tel:
        outer = tel.discovery.search("a").__enter__()
        inner = tel.execution.run("python3").__enter__()
        outer.__exit__(None, None, None)  # out of order: inner is still current and stays so
        still = trace.get_current_span()
        inner.__exit__(None, None, None)
        current = trace.get_current_span()
    assert still is inner.span
    assert current is tel.session_span


def test_an_async_generator_closed_from_another_task_prints_no_traceback(caplog, capfd):
    tel, exporter = _session()

    async def agen():
        async with tel.execution.run("python3") as ex:
            ex.set_result(0)
            yield 1
            yield 2

    async def main():
        g = agen()
        await g.__anext__()  # the step is open in this task
        await asyncio.get_running_loop().create_task(g.aclose())  # closed from another task

    caplog.set_level(logging.DEBUG)
    with tel:
        asyncio.run(main())
        current = trace.get_current_span()
    assert current is tel.session_span
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert "Failed to detach context" not in caplog.text
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Failed to detach" not in err, err
    e = tel.summary()["execution"]
    assert (e["total_executions"], e["failed_executions"], e["interrupted"]) == (1, 0, {"cancelled": 1})


def test_cancellation_timeouts_and_generator_exit_are_cancelled_not_failed():
    tel, exporter = _session()

    async def slow_step():
        with tel.execution.run("python3"):
            await asyncio.sleep(10)

    async def cancelled_task():
        task = asyncio.ensure_future(slow_step())
        await asyncio.sleep(0.01)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def timed_out():
        try:
            await asyncio.wait_for(slow_step(), 0.01)
        except asyncio.TimeoutError:
            pass

    def gen():
        with tel.execution.run("python3"):
            yield

    with tel:
        asyncio.run(cancelled_task())
        asyncio.run(timed_out())
        g = gen()
        next(g)
        g.close()  # GeneratorExit inside the step
        for code in (0, 0, 1):
            with tel.execution.run("python3") as ex:
                ex.set_result(code)
        e = tel.get_execution_metrics()
        summary = tel.summary()

    assert e.total_executions == 6  # still counted
    assert e.interrupted == {"cancelled": 3}
    assert (e.successful_executions, e.failed_executions) == (2, 1)
    assert e.success_rate == round(2 / 3, 6)  # cancelled runs do not drag the rate down
    assert summary["execution"]["interrupted"] == {"cancelled": 3}
    runs = [s for s in exporter.get_finished_spans() if s.name == "execution.run"]
    cancelled = [s for s in runs if s.attributes.get("error.type") in ("CancelledError", "GeneratorExit")]
    assert len(cancelled) == 3
    assert all(s.status.status_code is not StatusCode.ERROR for s in cancelled)
    assert all(not s.events for s in cancelled)  # no exception event with a stack trace

    text = dashboard.render(summary, fancy=False, color=False, width=80)
    (line,) = [ln for ln in text.splitlines() if "Execution Success Rate" in ln]
    assert "66.7%" in line and "3 cancelled" in line, line


def test_a_cancelled_step_in_other_steps_is_not_a_failure_either():
    tel, _ = _session()

    async def run():
        with tel.discovery.search("files") as q:
            q.set_results(3)
        with tel.filtering.operation("grep", 100) as f:
            await asyncio.sleep(10)
            f.set_output(1)

    async def main():
        try:
            await asyncio.wait_for(run(), 0.01)
        except asyncio.TimeoutError:
            pass

    with tel:
        asyncio.run(main())
        s = tel.summary()
    assert (s["filtering"]["total_operations"], s["filtering"]["failed_operations"]) == (1, 0)
    assert s["filtering"]["interrupted"] == {"cancelled": 1}
    assert s["discovery"]["failed_queries"] == 0
