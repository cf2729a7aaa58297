"""Issue 5, point 4: concurrency.

8 threads x 10,000 operations, and 1,000 asyncio tasks, in one session: the totals are exact in
the JSON summary, in the Prometheus exposition (parsed with ``prometheus_client.parser``) and over
OTLP (a real receiver), and every step span is parented under its own thread's or task's span.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
from opentelemetry.sdk.trace import SpanProcessor

from mcp_exec_telemetry import observe

from tests.servers import OtlpReceiver

WORKER = "test.worker"


class ParentRecorder(SpanProcessor):
    """Keeps, for every ended span, only what the parentage check needs (no span objects)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.workers: dict[int, int] = {}  # worker span id -> worker number
        self.worker_parents: dict[int, int | None] = {}
        self.steps: list[tuple[str, int | None, int | None]] = []  # (name, parent span id, worker attribute)
        self.session_id: int | None = None

    def on_end(self, span) -> None:  # type: ignore[override]
        parent = span.parent.span_id if span.parent is not None else None
        with self._lock:
            if span.name == "session":
                self.session_id = span.context.span_id
            elif span.name.startswith("worker"):
                self.workers[span.context.span_id] = span.attributes[WORKER]
                self.worker_parents[span.context.span_id] = parent
            else:
                self.steps.append((span.name, parent, span.attributes.get(WORKER)))

    def check(self, workers: int, steps_per_worker: int, under_session: bool) -> None:
        assert len(self.workers) == workers
        # Tasks copy the context, so their spans sit under the session span; a new thread starts
        # from an empty context (Python's rule), so its worker span is a root.
        assert set(self.worker_parents.values()) == ({self.session_id} if under_session else {None})
        assert len(self.steps) == workers * steps_per_worker
        wrong = [(name, self.workers.get(parent), w) for name, parent, w in self.steps if self.workers.get(parent) != w]
        assert not wrong, f"{len(wrong)} step spans under another worker's span, e.g. {wrong[:5]}"
        assert Counter(w for _n, _p, w in self.steps) == {w: steps_per_worker for w in range(workers)}


def _op(tel, worker: int, i: int) -> None:
    """One operation of four kinds in turn; the step span carries the worker's number."""
    k = i % 4
    if k in (0, 1):
        with tel.execution.run("python3") as ex:
            ex.span.set_attribute(WORKER, worker)
            ex.set_result(k)  # 0 succeeds, 1 fails
    elif k == 2:
        with tel.filtering.operation("filter", 1_000) as f:
            f.span.set_attribute(WORKER, worker)
            f.set_output(100)
    else:
        with tel.discovery.search("kw") as q:
            q.span.set_attribute(WORKER, worker)
            q.set_results(1)
        tel.security.pii_detected("email", 2)


def _expected(n_ops: int) -> dict[str, int]:
    quarter = n_ops // 4
    return {
        "exec_ok": quarter,
        "exec_failed": quarter,
        "filter_ops": quarter,
        "input_bytes": quarter * 1_000,
        "output_bytes": quarter * 100,
        "queries": quarter,
        "pii": quarter * 2,
    }


def _from_summary(summary: dict) -> dict[str, int]:
    e, f = summary["execution"], summary["filtering"]
    return {
        "exec_ok": e["successful_executions"],
        "exec_failed": e["failed_executions"],
        "filter_ops": f["total_operations"],
        "input_bytes": f["total_input_bytes"],
        "output_bytes": f["total_output_bytes"],
        "queries": summary["discovery"]["total_queries"],
        "pii": summary["security"]["pii_detected"],
    }


def _from_prometheus(text: str) -> dict[str, int]:
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[tuple, float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def get(name: str, **labels: str) -> int:
        return int(samples[(name, tuple(sorted(labels.items())))])

    return {
        "exec_ok": get("mcp_exec_execution_duration_seconds_count", language="python3", outcome="success"),
        "exec_failed": get("mcp_exec_execution_duration_seconds_count", language="python3", outcome="failure"),
        "filter_ops": get("mcp_exec_filtering_duration_seconds_count", operation="filter", outcome="success"),
        "input_bytes": get("mcp_exec_filtering_input_size_bytes_total", operation="filter"),
        "output_bytes": get("mcp_exec_filtering_output_size_bytes_total", operation="filter"),
        "queries": get("mcp_exec_discovery_duration_seconds_count", detail_level="name-and-description", outcome="success"),
        "pii": get("mcp_exec_pii_detections_total", pattern="email"),
    }


def _from_otlp(rx: OtlpReceiver) -> dict[str, int]:
    def latest(name: str, **attrs):
        point = rx.latest(name, attrs)
        assert point is not None, (name, attrs, rx.summary())
        return point

    return {
        "exec_ok": latest("mcp_exec.execution.duration", language="python3", outcome="success").count,
        "exec_failed": latest("mcp_exec.execution.duration", language="python3", outcome="failure").count,
        "filter_ops": latest("mcp_exec.filtering.duration", operation="filter", outcome="success").count,
        "input_bytes": latest("mcp_exec.filtering.input_size", operation="filter").value,
        "output_bytes": latest("mcp_exec.filtering.output_size", operation="filter").value,
        "queries": latest("mcp_exec.discovery.duration", detail_level="name-and-description", outcome="success").count,
        "pii": latest("mcp_exec.pii.detections", pattern="email").value,
    }


def _session(rx: OtlpReceiver, recorder: ParentRecorder):
    return observe(
        otlp_endpoint=rx.http_endpoint,
        otlp_protocol="http/protobuf",
        export_interval_ms=3_600_000,  # the flush at exit carries the totals
        history=False,
        strict=True,  # any internal error under contention raises instead of being swallowed
        span_processors=(recorder,),
    )


THREADS, PER_THREAD = 8, 10_000


@pytest.mark.slow
def test_eight_threads_of_ten_thousand_operations_give_exact_totals_everywhere():
    recorder = ParentRecorder()
    errors: list[BaseException] = []
    with OtlpReceiver() as rx:
        with _session(rx, recorder) as tel:
            start = threading.Barrier(THREADS)

            def work(worker: int) -> None:
                try:
                    start.wait()
                    with tel.tracer.start_as_current_span(f"worker-{worker}", attributes={WORKER: worker}):
                        for i in range(PER_THREAD):
                            _op(tel, worker, i)
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not any(t.is_alive() for t in threads), "a worker thread is stuck"
            assert not errors, errors[:3]
            expected = _expected(THREADS * PER_THREAD)
            assert _from_summary(tel.summary()) == expected
            assert _from_prometheus(tel.export_prometheus()) == expected
        assert _from_otlp(rx) == expected
    recorder.check(THREADS, PER_THREAD, under_session=False)


TASKS, PER_TASK = 1_000, 12


@pytest.mark.slow
def test_a_thousand_asyncio_tasks_give_exact_totals_and_parent_each_span_under_its_task():
    recorder = ParentRecorder()
    with OtlpReceiver() as rx:
        with _session(rx, recorder) as tel:

            async def task(worker: int) -> None:
                with tel.tracer.start_as_current_span(f"worker-{worker}", attributes={WORKER: worker}):
                    for i in range(PER_TASK):
                        k = i % 4
                        if k in (0, 1):
                            async with tel.execution.run("python3") as ex:
                                ex.span.set_attribute(WORKER, worker)
                                await asyncio.sleep(0)  # the other tasks run inside this operation
                                ex.set_result(k)
                        elif k == 2:
                            async with tel.filtering.operation("filter", 1_000) as f:
                                f.span.set_attribute(WORKER, worker)
                                await asyncio.sleep(0)
                                f.set_output(100)
                        else:
                            async with tel.discovery.search("kw") as q:
                                q.span.set_attribute(WORKER, worker)
                                await asyncio.sleep(0)
                                q.set_results(1)
                            tel.security.pii_detected("email", 2)
                        await asyncio.sleep(0)

            async def main() -> None:
                await asyncio.wait_for(asyncio.gather(*(task(w) for w in range(TASKS))), timeout=120)

            asyncio.run(main())
            expected = _expected(TASKS * PER_TASK)
            assert _from_summary(tel.summary()) == expected
            assert _from_prometheus(tel.export_prometheus()) == expected
        assert _from_otlp(rx) == expected
    recorder.check(TASKS, PER_TASK, under_session=True)
