"""Benchmark: an instrumented step against the same telemetry written by hand with raw OpenTelemetry.

Everything runs side by side in one process (children only for the 1,000,000-operation memory
runs and the OTLP receiver), variants interleaved round by round; figures are medians over rounds
and ratios are medians of per-round ratios. Sections (issue 6):

1. per step: our API vs *naive* raw OpenTelemetry (one instrument per metric the design lists,
   plus the span and an event) and vs the *floor* (one span plus one histogram record with the
   same attributes). Our figure includes handing the buffered measurements to the SDK
   (``flush`` inside the timed region), so deferred work is not hidden.
2. disabled (``OTEL_SDK_DISABLED=true``) vs the no-op tracer;
3. two threads vs one (throughput), ours vs raw histograms and the raw floor;
4. collection: ``summary()``, ``export_prometheus()`` and the in-memory reader's own collect at
   10 .. 10,000 attribute sets;
5. PII scanning (``benchmarks/bench_pii.py``, run as is) and scrubbing, when available;
6. peak RSS of a 1,000,000-operation run, and a step's cost with Prometheus and OTLP attached.

    .venv/bin/python benchmarks/bench_steps.py            # full run, writes docs/PERFORMANCE.md
    .venv/bin/python benchmarks/bench_steps.py --quick    # smaller, prints only
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from opentelemetry import context as otel_context  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.metrics import Histogram, MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402

from _harness import Result, Variant, fmt_us, interleave, machine, time_loop, write_section  # noqa: E402
from mcp_exec_telemetry import observe  # noqa: E402
from mcp_exec_telemetry.config import TelemetryConfig  # noqa: E402
from mcp_exec_telemetry.views import DURATION_BUCKETS_S, EXECUTION_BUCKETS_S, MEMORY_BUCKETS_MIB, SIZE_BUCKETS_BY  # noqa: E402

_pc = time.perf_counter_ns
_attach = otel_context.attach
_detach = otel_context.detach
_in_ctx = trace.set_span_in_context

STEPS = ("discovery", "execution", "sdk", "filtering", "skills", "security")
GOALS = {"naive": 0.8, "floor": 1.2, "by_hand": 0.8, "disabled_us": 1.0, "threads": 0.9, "summary_vs_collect": 2.0, "scrub_overhead": 0.15}


# --- the three implementations of each step --------------------------------------------------


def ours_ops(tel: Any) -> dict[str, Callable[[], None]]:
    """One operation of each step through our API."""
    d, e, s, f, k, sec = tel.discovery, tel.execution, tel.sdk, tel.filtering, tel.skills, tel.security

    def discovery() -> None:
        with d.search("files", "full") as q:
            q.set_results(3)

    def execution() -> None:
        with e.run("python3") as ex:
            ex.set_result(0)

    def sdk() -> None:
        with s.generate(12) as g:
            g.set_result(4096)

    def filtering() -> None:
        with f.operation("filter", 52_000) as op:
            op.set_output(1_200)

    def skills() -> None:
        with k.run("summarize"):
            pass

    def security() -> None:
        sec.pii_detected("email", 1)
        sec.audit("pii_detected", "email")

    return {"discovery": discovery, "execution": execution, "sdk": sdk, "filtering": filtering, "skills": skills, "security": security}


class Raw:
    """A hand-written setup on the raw OpenTelemetry SDK: its own providers and one in-memory reader."""

    def __init__(self) -> None:
        resource_ = Resource.create({"service.name": "bench-raw"})
        self.reader = InMemoryMetricReader()
        views = [
            View(instrument_type=Histogram, instrument_name="raw.execution.duration", aggregation=ExplicitBucketHistogramAggregation(EXECUTION_BUCKETS_S)),
            View(instrument_type=Histogram, instrument_name="raw.skills.duration", aggregation=ExplicitBucketHistogramAggregation(EXECUTION_BUCKETS_S)),
            View(instrument_type=Histogram, instrument_name="raw.execution.memory", aggregation=ExplicitBucketHistogramAggregation(MEMORY_BUCKETS_MIB)),
            View(instrument_type=Histogram, instrument_name="raw.execution.result_size", aggregation=ExplicitBucketHistogramAggregation(SIZE_BUCKETS_BY)),
        ] + [
            View(instrument_type=Histogram, instrument_name=f"raw.{step}.duration", aggregation=ExplicitBucketHistogramAggregation(DURATION_BUCKETS_S))
            for step in ("discovery", "sdk", "filtering")
        ]
        self.meter_provider = MeterProvider(metric_readers=[self.reader], resource=resource_, views=views)
        self.tracer_provider = TracerProvider(resource=resource_)
        self.tracer = self.tracer_provider.get_tracer("bench-raw")
        m = self.meter_provider.get_meter("bench-raw")
        self.m = m
        h, c = m.create_histogram, m.create_counter
        # floor: one histogram per step (security: one counter)
        self.d_dur, self.e_dur, self.s_dur = h("raw.discovery.duration", unit="s"), h("raw.execution.duration", unit="s"), h("raw.sdk.duration", unit="s")
        self.e_mem, self.e_size = h("raw.execution.memory", unit="MiBy"), h("raw.execution.result_size", unit="By")
        self.f_dur, self.k_dur, self.p_det = h("raw.filtering.duration", unit="s"), h("raw.skills.duration", unit="s"), c("raw.pii.detections")
        # naive: one instrument per metric of the design's *Metrics records
        self.d_total, self.d_ok, self.d_cont, self.d_ms = c("raw.discovery.total_queries"), c("raw.discovery.successful_queries"), c("raw.discovery.continued_queries"), h("raw.discovery.response_time_ms", unit="ms")
        self.e_total, self.e_ok, self.e_ms = c("raw.execution.total_executions"), c("raw.execution.successful_executions"), h("raw.execution.duration_ms", unit="ms")
        self.s_total, self.s_ms, self.s_tools, self.s_ipc = c("raw.sdk.total_generations"), h("raw.sdk.generation_time_ms", unit="ms"), c("raw.sdk.tools_included"), c("raw.sdk.ipc_handler_size_bytes")
        self.f_total, self.f_ms, self.f_in, self.f_out, self.f_saved = c("raw.filtering.total_operations"), h("raw.filtering.duration_ms", unit="ms"), c("raw.filtering.input_bytes"), c("raw.filtering.output_bytes"), c("raw.context.tokens_saved")
        self.k_total, self.k_ok, self.k_ms = c("raw.skills.total_executions"), c("raw.skills.successful_executions"), h("raw.skills.duration_ms", unit="ms")
        self.p_total, self.p_by, self.p_audit = c("raw.pii.detections_total"), c("raw.pii.pattern_distribution"), c("raw.security.audit_events")

    def floor_ops(self) -> dict[str, Callable[[], None]]:
        """One span (current during the block, same attributes as ours) + one histogram record."""
        tr = self.tracer
        d_dur, e_dur, s_dur, f_dur, k_dur, p_det = self.d_dur, self.e_dur, self.s_dur, self.f_dur, self.k_dur, self.p_det

        def discovery() -> None:
            t0 = _pc()
            span = tr.start_span("discovery.search", attributes={"mcp_exec.discovery.keyword": "files", "mcp_exec.discovery.detail_level": "full"})
            token = _attach(_in_ctx(span))
            span.set_attribute("mcp_exec.discovery.result_count", 3)
            d_dur.record((_pc() - t0) / 1e9, {"detail_level": "full", "outcome": "success"})
            span.end()
            _detach(token)

        def execution() -> None:
            t0 = _pc()
            span = tr.start_span("execution.run", attributes={"mcp_exec.execution.language": "python3"})
            token = _attach(_in_ctx(span))
            span.set_attribute("process.exit.code", 0)
            e_dur.record((_pc() - t0) / 1e9, {"language": "python3", "outcome": "success"})
            span.end()
            _detach(token)

        def sdk() -> None:
            t0 = _pc()
            span = tr.start_span("sdk.generate", attributes={"mcp_exec.sdk.tools_included": 12})
            token = _attach(_in_ctx(span))
            span.set_attribute("mcp_exec.sdk.ipc_handler_size_bytes", 4096)
            span.set_attribute("mcp_exec.sdk.cache_hit", False)
            s_dur.record((_pc() - t0) / 1e9, {"cache_hit": False, "outcome": "success"})
            span.end()
            _detach(token)

        def filtering() -> None:
            t0 = _pc()
            span = tr.start_span("filtering.operation", attributes={"mcp_exec.filtering.operation": "filter", "mcp_exec.filtering.input_bytes": 52_000})
            token = _attach(_in_ctx(span))
            span.set_attribute("mcp_exec.filtering.output_bytes", 1_200)
            f_dur.record((_pc() - t0) / 1e9, {"operation": "filter", "outcome": "success"})
            span.end()
            _detach(token)

        def skills() -> None:
            t0 = _pc()
            span = tr.start_span("skills.run", attributes={"mcp_exec.skill.name": "summarize"})
            token = _attach(_in_ctx(span))
            k_dur.record((_pc() - t0) / 1e9, {"skill.name": "summarize", "outcome": "success"})
            span.end()
            _detach(token)

        def security() -> None:  # no span of its own: one counter and the audit event on the current span
            p_det.add(1, {"pattern": "email"})
            trace.get_current_span().add_event("mcp_exec.audit", {"mcp_exec.audit.event_type": "pii_detected", "mcp_exec.audit.pattern_type": "email", "mcp_exec.audit.severity": "info"})

        return {"discovery": discovery, "execution": execution, "sdk": sdk, "filtering": filtering, "skills": skills, "security": security}

    def naive_ops(self) -> dict[str, Callable[[], None]]:
        """What a first hand-written version does: a span with an event, one instrument per metric."""
        tr, r = self.tracer, self

        def discovery() -> None:
            t0 = _pc()
            span = tr.start_span("discovery.search", attributes={"keyword": "files", "detail_level": "full"})
            token = _attach(_in_ctx(span))
            count = 3
            ms = (_pc() - t0) / 1e6
            span.set_attribute("result_count", count)
            span.add_event("discovery.completed", {"result_count": count, "success": True})
            attrs = {"detail_level": "full"}
            r.d_total.add(1, attrs)
            r.d_ok.add(1, attrs)
            r.d_cont.add(1, {"outcome": "success"})
            r.d_ms.record(ms, attrs)
            span.end()
            _detach(token)

        def execution() -> None:
            t0 = _pc()
            span = tr.start_span("execution.run", attributes={"language": "python3"})
            token = _attach(_in_ctx(span))
            exit_code = 0
            ms = (_pc() - t0) / 1e6
            span.set_attribute("exit_code", exit_code)
            span.add_event("execution.completed", {"exit_code": exit_code, "success": True})
            attrs = {"language": "python3"}
            r.e_total.add(1, attrs)
            r.e_ok.add(1, attrs)
            r.e_ms.record(ms, attrs)
            span.end()
            _detach(token)

        def sdk() -> None:
            t0 = _pc()
            span = tr.start_span("sdk.generate", attributes={"tools_included": 12})
            token = _attach(_in_ctx(span))
            ms = (_pc() - t0) / 1e6
            span.set_attribute("ipc_handler_size_bytes", 4096)
            span.add_event("sdk.generated", {"ipc_handler_size_bytes": 4096, "cache_hit": False})
            r.s_total.add(1, {"cache_hit": False})
            r.s_ms.record(ms, {"cache_hit": False})
            r.s_tools.add(12)
            r.s_ipc.add(4096)
            span.end()
            _detach(token)

        def filtering() -> None:
            t0 = _pc()
            span = tr.start_span("filtering.operation", attributes={"operation": "filter", "input_bytes": 52_000})
            token = _attach(_in_ctx(span))
            ms = (_pc() - t0) / 1e6
            span.set_attribute("output_bytes", 1_200)
            span.add_event("filtering.completed", {"output_bytes": 1_200})
            attrs = {"operation": "filter"}
            r.f_total.add(1, attrs)
            r.f_ms.record(ms, attrs)
            r.f_in.add(52_000, attrs)
            r.f_out.add(1_200, attrs)
            r.f_saved.add((52_000 - 1_200) // 4)
            span.end()
            _detach(token)

        def skills() -> None:
            t0 = _pc()
            span = tr.start_span("skills.run", attributes={"skill.name": "summarize"})
            token = _attach(_in_ctx(span))
            ms = (_pc() - t0) / 1e6
            span.add_event("skill.completed", {"success": True})
            attrs = {"skill.name": "summarize"}
            r.k_total.add(1, attrs)
            r.k_ok.add(1, attrs)
            r.k_ms.record(ms, attrs)
            span.end()
            _detach(token)

        def security() -> None:
            r.p_total.add(1)
            r.p_by.add(1, {"pattern": "email"})
            r.p_audit.add(1, {"event_type": "pii_detected", "severity": "info"})
            trace.get_current_span().add_event("mcp_exec.audit", {"mcp_exec.audit.event_type": "pii_detected", "mcp_exec.audit.pattern_type": "email", "mcp_exec.audit.severity": "info"})

        return {"discovery": discovery, "execution": execution, "sdk": sdk, "filtering": filtering, "skills": skills, "security": security}

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _root(tracer: Any) -> Callable[[], Callable[[], None]]:
    """A setup that makes a session-like root span current for one sample (as inside observe())."""
    span = tracer.start_span("session")

    def setup() -> Callable[[], None]:
        token = _attach(_in_ctx(span))
        return lambda: _detach(token)

    return setup


def new_telemetry(**options: Any) -> Any:
    options.setdefault("history", False)
    options.setdefault("service_name", "bench")
    return observe(**options)


# --- 1. per step ------------------------------------------------------------------------------


def bench_steps(n: int, rounds: int, steps: tuple[str, ...] = STEPS) -> dict[str, Any]:
    tel = new_telemetry()
    raw = Raw()
    ours, floor, naive = ours_ops(tel), raw.floor_ops(), raw.naive_ops()
    flush = tel._session.flush  # the buffered measurements reach the SDK inside the timed region
    ours_root, raw_root = _root(tel.tracer), _root(raw.tracer)
    out: dict[str, Any] = {}
    try:
        for step in steps:
            res = interleave(
                {
                    "ours": Variant(ours[step], after=flush, setup=ours_root),
                    "naive": Variant(naive[step], setup=raw_root),
                    "floor": Variant(floor[step], setup=raw_root),
                },
                n,
                rounds,
            )
            out[step] = {
                "ours_us": res.median("ours"),
                "naive_us": res.median("naive"),
                "floor_us": res.median("floor"),
                "ratio_naive": res.ratio("ours", "naive"),
                "ratio_floor": res.ratio("ours", "floor"),
            }
    finally:
        tel.shutdown()
        raw.shutdown()
    return out


# --- 1b. the execution step against the same telemetry by hand, both shapes ---------------------

SHAPES = {
    "set_result(0)": {},
    "set_result(exit_code=0, memory_mb=42, result_size_bytes=1800)": {"memory_mb": 42, "result_size_bytes": 1800},
}


class _Discard:
    """A span exporter that accepts every batch (what a healthy collector costs this process, minus the network)."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def hand_execution(raw: "Raw", memory_mb: float | None, result_size_bytes: int | None) -> Callable[[], None]:
    """The same telemetry as our execution step, written by hand: one span, current during the block,
    with the same attributes, and the same histograms (duration; memory and result size when given)."""
    tr, dur, mem, size = raw.tracer, raw.e_dur, raw.e_mem, raw.e_size
    lang = {"language": "python3"}
    ok = {"language": "python3", "outcome": "success"}

    if memory_mb is None:

        def run() -> None:
            t0 = _pc()
            span = tr.start_span("execution.run", attributes={"mcp_exec.execution.language": "python3"})
            token = _attach(_in_ctx(span))
            span.set_attribute("process.exit.code", 0)
            dur.record((_pc() - t0) / 1e9, ok)
            span.end()
            _detach(token)

        return run

    def run_full() -> None:
        t0 = _pc()
        span = tr.start_span("execution.run", attributes={"mcp_exec.execution.language": "python3"})
        token = _attach(_in_ctx(span))
        span.set_attributes({"process.exit.code": 0, "mcp_exec.execution.memory_mb": memory_mb, "mcp_exec.execution.result_size_bytes": result_size_bytes})
        dur.record((_pc() - t0) / 1e9, ok)
        mem.record(memory_mb, lang)
        size.record(result_size_bytes, lang)
        span.end()
        _detach(token)

    return run_full


def ours_execution(tel: Any, memory_mb: float | None, result_size_bytes: int | None) -> Callable[[], None]:
    run = tel.execution.run
    if memory_mb is None:

        def ours() -> None:
            with run("python3") as ex:
                ex.set_result(0)

        return ours

    def ours_full() -> None:
        with run("python3") as ex:
            ex.set_result(exit_code=0, memory_mb=memory_mb, result_size_bytes=result_size_bytes)

    return ours_full


def bench_by_hand(n: int, rounds: int) -> dict[str, Any]:
    """Our execution step vs the same telemetry by hand, spans through a BatchSpanProcessor on both sides."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tel = new_telemetry()
    tel.add_span_exporter(_Discard(), batch=True)
    raw = Raw()
    raw.tracer_provider.add_span_processor(BatchSpanProcessor(_Discard()))  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    try:
        variants = {}
        for i, (shape, kw) in enumerate(SHAPES.items()):
            variants[f"ours{i}"] = Variant(ours_execution(tel, kw.get("memory_mb"), kw.get("result_size_bytes")), after=tel._session.flush, setup=_root(tel.tracer))
            variants[f"hand{i}"] = Variant(hand_execution(raw, kw.get("memory_mb"), kw.get("result_size_bytes")), setup=_root(raw.tracer))
        # Where the floor is, for the full shape: the SDK calls alone that both sides make.
        tr, dur, mem, size = raw.tracer, raw.e_dur, raw.e_mem, raw.e_size
        lang, ok = {"language": "python3"}, {"language": "python3", "outcome": "success"}

        def sdk_span() -> None:
            span = tr.start_span("execution.run", attributes={"mcp_exec.execution.language": "python3"})
            token = _attach(_in_ctx(span))
            span.set_attributes({"process.exit.code": 0, "mcp_exec.execution.memory_mb": 42, "mcp_exec.execution.result_size_bytes": 1800})
            span.end()
            _detach(token)

        def sdk_records() -> None:
            dur.record(0.001, ok)
            mem.record(42, lang)
            size.record(1800, lang)

        variants["sdk_span"] = Variant(sdk_span, setup=_root(raw.tracer))
        variants["sdk_records"] = Variant(sdk_records)
        plain = new_telemetry(scrub=False)
        plain.add_span_exporter(_Discard(), batch=True)
        variants["ours_noscrub"] = Variant(ours_execution(plain, 42, 1800), after=plain._session.flush, setup=_root(plain.tracer))
        res = interleave(variants, n, rounds)
        plain.shutdown()
        for i, shape in enumerate(SHAPES):
            out[shape] = {"ours_us": res.median(f"ours{i}"), "hand_us": res.median(f"hand{i}"), "ratio": res.ratio(f"ours{i}", f"hand{i}")}
        full = list(SHAPES)[1]
        out["floor"] = {
            "span_us": res.median("sdk_span"),
            "records_us": res.median("sdk_records"),
            "span_share": res.ratio("sdk_span", "hand1"),
            "records_share": res.ratio("sdk_records", "hand1"),
            "ours_noscrub_us": res.median("ours_noscrub"),
            "ours_noscrub_ratio": res.ratio("ours_noscrub", "hand1"),
            "shape": full,
        }
    finally:
        tel.shutdown()
        raw.shutdown()
    return out


# --- 2. disabled ------------------------------------------------------------------------------


def bench_disabled(n: int, rounds: int) -> dict[str, Any]:
    old = os.environ.get("OTEL_SDK_DISABLED")
    os.environ["OTEL_SDK_DISABLED"] = "true"
    try:
        tel = new_telemetry()
    finally:
        if old is None:
            del os.environ["OTEL_SDK_DISABLED"]
        else:
            os.environ["OTEL_SDK_DISABLED"] = old
    assert not tel.enabled
    noop = trace.NoOpTracer()

    def noop_span() -> None:
        with noop.start_as_current_span("execution.run"):
            pass

    variants = {f"ours_{k}": Variant(v) for k, v in ours_ops(tel).items()}
    variants["noop_tracer"] = Variant(noop_span)
    res = interleave(variants, n, rounds)
    tel.shutdown()
    out = {k.removeprefix("ours_"): res.median(k) for k in variants}
    out["ratio_to_noop"] = max(res.ratio(f"ours_{s}", "noop_tracer") for s in STEPS)
    return out


# --- 3. threads -------------------------------------------------------------------------------


THREAD_OPS = 12_000  # per thread and measurement: shorter samples are at the mercy of the machine's noise
THREAD_ROUNDS = 9


def _throughput(op: Callable[[], None], threads: int, per_thread: int, after: Callable[[], object] | None, setup: Callable[[], Any] | None) -> float:
    """Operations per second of ``threads`` threads each running ``per_thread`` operations."""
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        teardown = setup() if setup else None
        barrier.wait()
        for _ in range(per_thread):
            op()
        if callable(teardown):
            teardown()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    gc.collect()
    for w in workers:
        w.start()
    barrier.wait()
    t0 = _pc()
    for w in workers:
        w.join()
    if after is not None:
        after()
    elapsed = (_pc() - t0) / 1e9
    return threads * per_thread / elapsed


def bench_threads(per_thread: int, rounds: int) -> dict[str, Any]:
    tel = new_telemetry()
    raw = Raw()
    ours = ours_ops(tel)["execution"]
    floor = raw.floor_ops()["execution"]
    hist = raw.e_dur
    attrs = {"language": "python3", "outcome": "success"}

    def raw_hist() -> None:
        hist.record(0.001, attrs)

    def plain_python() -> None:  # no telemetry and no lock: what two threads reach here at best
        row = {}
        for i in range(400):  # about 30 us, as long as one of our steps
            row[i] = str(i)

    variants: dict[str, tuple[Callable[[], None], Any, Any, int]] = {
        "ours (execution step)": (ours, tel._session.flush, _root(tel.tracer), per_thread),
        "ours (execution step, memory and result size)": (ours_execution(tel, 42, 1800), tel._session.flush, _root(tel.tracer), per_thread),
        "raw floor (span + histogram)": (floor, None, _root(raw.tracer), per_thread),
        "raw histogram.record": (raw_hist, None, None, per_thread * 3),
        "plain Python of about the same length, no telemetry": (plain_python, None, None, per_thread),
    }
    ratios: dict[str, list[float]] = {k: [] for k in variants}
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for name, (op, after, setup, n) in variants.items():  # warm-up
        _throughput(op, 1, n // 10, after, setup)
    for r in range(rounds):
        names = list(variants)
        k = r % len(names)
        for name in names[k:] + names[:k]:
            op, after, setup, n = variants[name]
            one = _throughput(op, 1, n, after, setup)
            two = _throughput(op, 2, n, after, setup)
            ratios[name].append(two / one)
            rates[name].append(one)
    tel.shutdown()
    raw.shutdown()
    return {name: {"ratio": statistics.median(ratios[name]), "ops_per_s_1": statistics.median(rates[name])} for name in variants}


# --- 4. collection ----------------------------------------------------------------------------


def bench_collection(sizes: tuple[int, ...], budget_s: float) -> dict[int, dict[str, float]]:
    out: dict[int, dict[str, float]] = {}
    for size in sizes:
        tel = new_telemetry(cardinality_limit=size + 100)
        for i in range(size):
            tel.skills.record(f"skill-{i}", 5.0 + i % 7)
        reader = tel._reader

        def collect() -> None:
            tel._session.flush()
            reader.get_metrics_data()

        tel.summary()
        tel.export_prometheus()  # warm: registry and bridge created
        samples: dict[str, list[float]] = {"collect": [], "summary": [], "prometheus": []}
        fns = {"collect": collect, "summary": tel.summary, "prometheus": tel.export_prometheus}
        deadline = time.monotonic() + budget_s
        r = 0
        while r < 3 or (time.monotonic() < deadline and r < 15):
            names = list(fns)
            k = r % 3
            for name in names[k:] + names[:k]:
                samples[name].append(time_loop(fns[name], 1) / 1000.0)  # ms
            r += 1
        out[size] = {name: statistics.median(v) for name, v in samples.items()}
        out[size]["summary_vs_collect"] = statistics.median(a / b for a, b in zip(samples["summary"], samples["collect"]))
        out[size]["prometheus_vs_collect"] = statistics.median(a / b for a, b in zip(samples["prometheus"], samples["collect"]))
        tel.shutdown()
    return out


# --- 5. PII and scrubbing ---------------------------------------------------------------------


def bench_pii(args: list[str]) -> str | None:
    script = ROOT / "benchmarks" / "bench_pii.py"
    if not script.exists():
        return None
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=ROOT, timeout=600)
    text = proc.stdout.strip()
    if proc.returncode != 0:
        text += f"\n\n(bench_pii.py exited {proc.returncode}: {proc.stderr.strip()[-500:]})"
    return text


def scrub_option() -> str | None:
    names = {f.name for f in fields(TelemetryConfig)}
    for candidate in ("scrub", "scrub_pii"):
        if candidate in names:
            return candidate
    return None


def bench_scrub(n: int, rounds: int) -> dict[str, Any] | None:
    option = scrub_option()
    if option is None:
        return None
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class _Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    # Scrubbing runs where spans are exported. Worst case for the step: a synchronous exporter,
    # so the scrubbing of every span is inside the timed region (a batch exporter moves it to
    # its background thread).
    plain, scrubbed = new_telemetry(**{option: False}), new_telemetry(**{option: True})
    plain.add_span_exporter(_Discard(), batch=False)
    scrubbed.add_span_exporter(_Discard(), batch=False)
    res = interleave(
        {
            "plain": Variant(ours_ops(plain)["discovery"], after=plain._session.flush, setup=_root(plain.tracer)),
            "scrubbed": Variant(ours_ops(scrubbed)["discovery"], after=scrubbed._session.flush, setup=_root(scrubbed.tracer)),
        },
        n,
        rounds,
    )
    plain.shutdown()
    scrubbed.shutdown()
    return {"option": option, "plain_us": res.median("plain"), "scrubbed_us": res.median("scrubbed"), "overhead": res.ratio("scrubbed", "plain") - 1.0}


# --- 6. memory and exporters ------------------------------------------------------------------


def _rss_mib() -> float:
    """Peak RSS of this process. VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child would
    report its parent's peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _current_rss_mib() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def memory_child(kind: str, total: int) -> None:
    """Run ``total`` operations (the six steps in turn) and print RSS figures as JSON."""
    if kind == "ours":
        tel = new_telemetry()
        tel.__enter__()
        ops = list(ours_ops(tel).values())
    else:
        raw = Raw()
        ops = list(raw.floor_ops().values())
        token = _attach(_in_ctx(raw.tracer.start_span("session")))
    for op in ops * 200:
        op()
    gc.collect()
    before = _current_rss_mib()
    t0 = _pc()
    rounds = total // len(ops)
    for _ in range(rounds):
        for op in ops:
            op()
    elapsed = (_pc() - t0) / 1e9
    if kind == "ours":
        t1 = _pc()
        s = tel.summary()
        summary_ms = (_pc() - t1) / 1e6
        assert s["execution"]["total_executions"] == rounds + 200, s["execution"]["total_executions"]
        tel.shutdown()
    else:
        summary_ms = float("nan")
        _detach(token)
    print(json.dumps({"ops": rounds * len(ops), "rss_before_mib": before, "rss_after_mib": _current_rss_mib(), "peak_rss_mib": _rss_mib(), "us_per_op": elapsed / (rounds * len(ops)) * 1e6, "summary_ms": summary_ms}))


def bench_memory(total: int) -> dict[str, Any]:
    out = {}
    for kind in ("ours", "raw"):
        proc = subprocess.run([sys.executable, __file__, "--memory-child", kind, str(total)], capture_output=True, text=True, cwd=ROOT, timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"memory child failed: {proc.stderr[-2000:]}")
        out[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


# A stand-in OTLP/HTTP receiver in a child process: reads every export and answers 200 (no decoding,
# so the benchmark needs nothing beyond the package's extras, not the test suite's receiver).
_RECEIVER = """
import http.server, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
print(f"http://127.0.0.1:{srv.server_address[1]}", flush=True)
sys.stdin.read()
"""


def refused_endpoint() -> str:
    """``http://127.0.0.1:PORT`` where nothing listens (the kernel picked the port a moment ago)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def bench_exporters(n: int, rounds: int) -> dict[str, Any]:
    receiver = subprocess.Popen([sys.executable, "-c", _RECEIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        endpoint = receiver.stdout.readline().strip()  # type: ignore[union-attr]
        sessions = {
            "none": new_telemetry(),
            "prometheus": new_telemetry(prometheus=0),
            "otlp/http (local receiver)": new_telemetry(otlp_endpoint=endpoint, otlp_protocol="http/protobuf", export_interval_ms=1000, export_timeout_ms=2000),
            "otlp/grpc (connection refused)": new_telemetry(otlp_endpoint=refused_endpoint(), otlp_protocol="grpc", export_interval_ms=1000, export_timeout_ms=500),
        }
        variants = {name: Variant(ours_ops(tel)["execution"], after=tel._session.flush, setup=_root(tel.tracer)) for name, tel in sessions.items()}
        res = interleave(variants, n, rounds)
        out = {name: {"us": res.median(name), "ratio": res.ratio(name, "none")} for name in sessions}
        for tel in sessions.values():
            tel.shutdown()
    finally:
        try:
            receiver.communicate(input="", timeout=10)
        except Exception:
            receiver.kill()
    return out


# --- report -----------------------------------------------------------------------------------


def _ok(value: float, goal: float, below: bool = True) -> str:
    met = value <= goal if below else value >= goal
    return "met" if met else "**not met**"


def report(results: dict[str, Any], elapsed_s: float, quick: bool) -> str:
    m = results["machine"]
    lines = [
        "## Per-step costs (`benchmarks/bench_steps.py`)",
        "",
        "Written by `benchmarks/bench_steps.py` (latest run: "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {elapsed_s:.0f} s{', --quick' if quick else ''}). Reproduce with:",
        "",
        "```bash",
        ".venv/bin/python benchmarks/bench_steps.py        # about 3-5 minutes; rewrites this section",
        "```",
        "",
        "Machine: " + m["cpu"] + "; " + m["os"] + ".  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m.items() if k not in ("cpu", "os")) + ".",
        "",
        "Method: every comparison runs in one process, variants interleaved round by round (order",
        "rotating), the garbage collector on (an implementation pays for the objects it keeps alive);",
        "times are medians over rounds, ratios the median of",
        "the per-round ratios. The machine is shared and noisy: expect a few percent of drift between",
        "runs. Our figures *include* handing the buffered measurements to the SDK (the flush that",
        "runs before every collection is inside the timed region), so no deferred work is hidden.",
        "",
        "### 1. A step against raw OpenTelemetry written by hand",
        "",
        "*naive*: raw OpenTelemetry as a first hand-written version does it: the span with its",
        "attributes and one event, one instrument per metric of the design's records (3 to 5",
        "counters and histograms). *floor*: one span (made current, same attributes as ours) plus one",
        "histogram record with the same attributes; for `security`, which has no span of its own, one",
        "counter add plus the audit event on the current span. Goals: ours / naive <= 0.8, ours /",
        "floor <= 1.2. All spans have a session span as parent, as inside `observe()`.",
        "",
        "| step | ours | naive | floor | ours / naive | ours / floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for step, r in results["steps"].items():
        lines.append(
            f"| {step} | {fmt_us(r['ours_us'])} | {fmt_us(r['naive_us'])} | {fmt_us(r['floor_us'])} "
            f"| {r['ratio_naive']:.2f} ({_ok(r['ratio_naive'], GOALS['naive'])}) | {r['ratio_floor']:.2f} ({_ok(r['ratio_floor'], GOALS['floor'])}) |"
        )
    lines += [
        "",
        "What one of our steps does beyond the floor: input checks, the cached attribute dict, the",
        "bounded `recent_*` record (a dataclass and a `datetime`), which step ran last, and appending",
        "the measurement to the thread's buffer. What it saves: the SDK's per-call work (attribute",
        "copy and validation, view filtering, hashing, the aggregation lock) is paid once per histogram",
        "value at drain time without contention, and once per series per drain for counters, which",
        "are summed in the buffer. `discovery` also counts `continued_queries` (each query in this loop",
        "follows another query), one more measurement than the floor.",
        "",
        "### 1b. The execution step against the same telemetry by hand",
        "",
        "*by hand*: exactly the telemetry our step produces, written on the raw SDK: one span (current",
        "during the block, the same attributes, set in one call) and the same histograms (duration; memory",
        "and result size when given), spans exported through a `BatchSpanProcessor` on both sides (to an",
        "exporter that accepts everything; ours scrubs spans before export, as by default). Goal for the",
        "step as README shows it: ours / by hand <= 0.8.",
        "",
        "| step | ours | by hand | ours / by hand |",
        "|---|---:|---:|---:|",
    ]
    bh = results["by_hand"]
    for shape, r in bh.items():
        if shape == "floor":
            continue
        goal = f" ({_ok(r['ratio'], GOALS['by_hand'])})" if "memory_mb" in shape else ""
        lines.append(f"| `execution.run(...)` + `{shape}` | {fmt_us(r['ours_us'])} | {fmt_us(r['hand_us'])} | {r['ratio']:.2f}{goal} |")
    fl = bh["floor"]
    lines += [
        "",
        f"Where the floor is (same run, full shape): the SDK calls that both sides must make cost, alone,",
        f"{fmt_us(fl['span_us'])} for the span (start, make current, set attributes, end into the batch",
        f"processor) = {fl['span_share']:.2f} of the by-hand step, and {fmt_us(fl['records_us'])} for the three",
        f"`Histogram.record` calls = {fl['records_share']:.2f} of it; together {fl['span_share'] + fl['records_share']:.2f}.",
        "Every value still goes through the OpenTelemetry instruments (our step buffers the three values",
        "and hands them to the same `Histogram.record` at drain time), so our step cannot cost less than",
        "those calls: 0.8x by hand would leave our own work (input checks, the bounded `recent_*` record",
        "the summary needs, the buffer) no time at all. In opentelemetry-sdk " + results["machine"]["opentelemetry-sdk"] + " one",
        "`Histogram.record` cleans and copies the attribute dict, filters it through the view, hashes it",
        "as a sorted tuple, builds a frozen `Measurement` dataclass and takes the aggregation's lock; the",
        "span's attributes are validated one by one on the same `BoundedAttributes` path. Profiled with",
        "cProfile over 20,000 steps, those two account for nearly all of our step's time. Without scrubbing",
        f"(`scrub=False`) our full step is {fmt_us(fl['ours_noscrub_us'])}, {fl['ours_noscrub_ratio']:.2f}x by hand: scrubbing",
        "runs on the batch processor's thread but shares the GIL. Below 0.8x would need a second",
        "aggregation beside the SDK's, which the design rules out.",
        "",
        "### 2. Disabled (`OTEL_SDK_DISABLED=true`)",
        "",
        "| operation | per call |",
        "|---|---:|",
    ]
    dis = results["disabled"]
    for step in STEPS:
        lines.append(f"| {step} (our API, disabled) | {dis[step] * 1000:.0f} ns |")
    worst = max(dis[s] for s in STEPS)
    lines += [
        f"| no-op tracer `start_as_current_span` | {dis['noop_tracer'] * 1000:.0f} ns |",
        "",
        f"Goal: under 1 us per step operation and faster than the no-op tracer: slowest step {worst * 1000:.0f} ns "
        f"({_ok(worst, GOALS['disabled_us'])}), at most {dis['ratio_to_noop']:.2f}x the no-op tracer "
        f"({_ok(dis['ratio_to_noop'], 1.0)}). A disabled session hands out one shared no-op handle; `security` is two calls.",
        "",
        "### 3. Two threads",
        "",
        "Total throughput of two threads each running the same operations, divided by one thread's",
        "(the process has one GIL, so 1.0 is the ceiling). Goal: ours >= 0.9.",
        f"Each measurement runs {THREAD_OPS:,} operations per thread (about a third of a second for one thread",
        f"of ours), the ratio is the median of {THREAD_ROUNDS} rounds: with 4,000 operations (0.1 s) the same code",
        "measured anywhere from 0.85 to 0.97 from run to run on this shared machine.",
        "",
        "| variant | one thread | two threads / one |",
        "|---|---:|---:|",
    ]
    for name, r in results["threads"].items():
        goal = f" ({_ok(r['ratio'], GOALS['threads'], below=False)})" if name.startswith("ours") else ""
        lines.append(f"| {name} | {r['ops_per_s_1']:,.0f} ops/s | {r['ratio']:.2f}{goal} |")
    lines += [
        "",
        "The last row is the machine's own ceiling in the same run: Python code with no lock at all",
        "(filling a small dict), whose ratio shows what the GIL's hand-overs and this host's load leave.",
        "",
        "Raw OpenTelemetry takes a lock per aggregation on every record; two threads recording into one",
        "series queue on it, and under the GIL a contended lock means a forced thread switch per record",
        "(a convoy). Our steps append to a per-thread list instead and hand the measurements to the SDK",
        "in batches, under one drain lock that a busy thread skips rather than waits for (see",
        "`src/mcp_exec_telemetry/_buffer.py`).",
        "",
        "### 4. Collection",
        "",
        "`summary()`, `export_prometheus()` and the in-memory reader's own collect (flush +",
        "`get_metrics_data()`) with N attribute sets (N skill names, one `skills.duration` series each).",
        "Goals: cost linear in series; `summary()` at most 2x the reader's collect.",
        "",
        "| series | reader collect | summary() | export_prometheus() | summary / collect | per series: collect, summary, prometheus |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for size, r in results["collection"].items():
        lines.append(
            f"| {size:,} | {r['collect']:.2f} ms | {r['summary']:.2f} ms | {r['prometheus']:.2f} ms | {r['summary_vs_collect']:.2f} ({_ok(r['summary_vs_collect'], GOALS['summary_vs_collect'])}) "
            f"| {r['collect'] / size * 1000:.0f} us, {r['summary'] / size * 1000:.0f} us, {r['prometheus'] / size * 1000:.0f} us |"
        )
    lines += ["", "### 5. PII scanning and scrubbing", ""]
    pii = results.get("pii")
    if pii:
        lines += ["Output of `benchmarks/bench_pii.py` (run as is, not edited here):", "", pii, ""]
    else:
        lines += ["`benchmarks/bench_pii.py` was not present at this run.", ""]
    scrub = results.get("scrub")
    if scrub:
        lines += [
            f"Scrubbing (`observe({scrub['option']}=True)`): a discovery step costs {fmt_us(scrub['scrubbed_us'])} against {fmt_us(scrub['plain_us'])} "
            f"without, +{scrub['overhead'] * 100:.0f}% (goal: at most +15%, {_ok(scrub['overhead'], GOALS['scrub_overhead'])}).",
            "",
        ]
    else:
        lines += [
            "Scrubbing: **pending**. No `scrub` option exists on `observe()` yet (it is to be wired at export",
            "time, in a span processor or exporter wrapper); the benchmark measures a step with and without",
            "it as soon as `TelemetryConfig` has a `scrub` field.",
            "",
        ]
    mem = results["memory"]
    o, r_ = mem["ours"], mem["raw"]
    lines += [
        "### 6. Memory and exporters",
        "",
        f"{o['ops']:,} operations (the six steps in turn) in a fresh process, spans to no exporter:",
        "",
        "| | RSS before | RSS after | peak RSS | per operation | summary() after |",
        "|---|---:|---:|---:|---:|---:|",
        f"| ours | {o['rss_before_mib']:.1f} MiB | {o['rss_after_mib']:.1f} MiB | {o['peak_rss_mib']:.1f} MiB | {o['us_per_op']:.1f} us | {o['summary_ms']:.1f} ms |",
        f"| raw floor | {r_['rss_before_mib']:.1f} MiB | {r_['rss_after_mib']:.1f} MiB | {r_['peak_rss_mib']:.1f} MiB | {r_['us_per_op']:.1f} us | - |",
        "",
        "Memory does not grow with the number of operations: metrics are aggregated per series, the",
        "`recent_*` records are bounded (`recent_limit`), and each recording thread buffers at most",
        "512 measurements (8x that while another thread drains) before handing them to the SDK.",
        "",
        "An execution step with exporters attached (the OTLP receiver runs in a child process; spans go",
        "through a `BatchSpanProcessor`, metrics are pushed every second):",
        "",
        "| attached | per step | vs none |",
        "|---|---:|---:|",
    ]
    for name, r in results["exporters"].items():
        lines.append(f"| {name} | {fmt_us(r['us'])} | {r['ratio']:.2f} |")
    lines += [
        "",
        "Prometheus adds nothing to a record: one in-memory reader aggregates and a scrape renders its",
        "snapshot. OTLP costs what OpenTelemetry's own `BatchSpanProcessor` and OTLP exporter cost, and",
        "would cost the same in hand-written code: the span is queued on every end, and the export",
        "thread encodes every span to protobuf and sends it in this process, competing for the GIL with",
        "the agent (with a refused port the encoding still happens before the send fails).",
        "",
        "### Notes",
        "",
        "- The lock convoy: the issue measured raw histograms at 0.29x with two threads. Here, on",
        "  opentelemetry-sdk " + results["machine"]["opentelemetry-sdk"] + ", two threads on raw histograms or on the raw floor reach between",
        "  about 0.6x and 1.0x of one thread from run to run (it varies with load); 0.29x was",
        "  not reproduced. Our buffered path takes no lock per measurement, so it stays near 1.0x either way.",
        "- The garbage collector stays on in timed loops. A first version of the buffer kept one tuple",
        "  per buffered measurement; alive for hundreds of operations, those made the cyclic GC run far",
        "  more often (about +10% per step over 1,000,000 operations). The buffer is now a flat list of",
        "  existing objects and floats, which the GC does not track. The remaining long-lived object per",
        "  step is the bounded `recent_*` record the design asks for.",
        "- The regression guard is `tests/test_performance.py` (normal suite, about 10 s): ours / naive <= 1.0",
        "  and ours / floor <= 1.6 for three steps, the README step <= 1.25x the same telemetry by hand,",
        "  disabled < 2 us, two threads >= 0.6x, each retried three times; plus the buffer's exactness",
        "  (threads that exit, bounded size, summed counters, every value of the README step recorded).",
        "",
    ]
    gaps = results.get("gaps")
    if gaps:
        lines += ["### Goals not met", ""] + [f"- {g}" for g in gaps] + [""]
    return "\n".join(lines)


def find_gaps(results: dict[str, Any]) -> list[str]:
    gaps = []
    for step, r in results["steps"].items():
        if r["ratio_naive"] > GOALS["naive"]:
            gaps.append(f"{step}: ours / naive = {r['ratio_naive']:.2f} > {GOALS['naive']}")
        if r["ratio_floor"] > GOALS["floor"]:
            gaps.append(f"{step}: ours / floor = {r['ratio_floor']:.2f} > {GOALS['floor']}")
    for shape, r in results["by_hand"].items():
        if shape != "floor" and "memory_mb" in shape and r["ratio"] > GOALS["by_hand"]:
            fl = results["by_hand"]["floor"]
            gaps.append(
                f"execution step with memory and result size: ours / same by hand = {r['ratio']:.2f} > {GOALS['by_hand']}. Cause: the SDK calls both "
                f"sides make are {fl['span_share'] + fl['records_share']:.2f} of the by-hand step by themselves (section 1b), and every value must go through them."
            )
    dis = results["disabled"]
    if max(dis[s] for s in STEPS) > GOALS["disabled_us"] or dis["ratio_to_noop"] > 1.0:
        gaps.append("disabled: slower than 1 us or than the no-op tracer")
    for k, t in results["threads"].items():
        if k.startswith("ours") and t["ratio"] < GOALS["threads"]:
            gaps.append(f"threads ({k}): two threads reach {t['ratio']:.2f}x of one < {GOALS['threads']}")
    for size, r in results["collection"].items():
        if r["summary_vs_collect"] > GOALS["summary_vs_collect"]:
            gaps.append(
                f"collection at {size:,} series: summary() = {r['summary_vs_collect']:.2f}x the reader's collect > 2. Cause: summary() has a "
                "fixed cost of about 0.1 ms (six sections, their ratios and timestamps, and the JSON-ready dict) whatever the number of series, and "
                "at a handful of series the reader's collect is itself about 0.1 ms; per added series summary() costs about 1.5x the "
                "collect (see the larger sizes), so the ratio falls under 2 from about 100 series on. Closing it would mean making "
                "summary.py's fixed part cheaper, outside the hot path."
            )
    scrub = results.get("scrub")
    if scrub and scrub["overhead"] > GOALS["scrub_overhead"]:
        gaps.append(f"scrubbing adds {scrub['overhead'] * 100:.0f}% > 15%")
    return gaps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and operations; prints, does not write the report")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "PERFORMANCE.md")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--memory-child", nargs=2, metavar=("KIND", "OPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child[0], int(args.memory_child[1]))
        return 0
    t0 = time.monotonic()
    q = args.quick
    results: dict[str, Any] = {"machine": machine()}

    def stage(name: str, fn: Callable[[], Any]) -> None:
        t = time.monotonic()
        results[name] = fn()
        print(f"[{name}: {time.monotonic() - t:.1f} s]", file=sys.stderr, flush=True)

    stage("steps", lambda: bench_steps(n=300 if q else 1000, rounds=7 if q else 21))
    stage("by_hand", lambda: bench_by_hand(n=300 if q else 1000, rounds=7 if q else 21))
    stage("disabled", lambda: bench_disabled(n=5000 if q else 20000, rounds=5 if q else 11))
    stage("threads", lambda: bench_threads(per_thread=1000 if q else THREAD_OPS, rounds=3 if q else THREAD_ROUNDS))
    stage("collection", lambda: bench_collection((10, 100, 1000) if q else (10, 100, 1000, 10000), budget_s=1.0 if q else 4.0))
    stage("pii", lambda: bench_pii(["--quick"] if q else []))
    stage("scrub", lambda: bench_scrub(n=300 if q else 1000, rounds=5 if q else 15))
    stage("memory", lambda: bench_memory(60_000 if q else 1_000_000))
    stage("exporters", lambda: bench_exporters(n=300 if q else 1000, rounds=5 if q else 15))
    results["gaps"] = find_gaps(results)
    elapsed = time.monotonic() - t0
    text = report(results, elapsed, q)
    print(text)
    if not (q or args.no_write):
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_section(args.out, "bench_steps", text)
        print(f"wrote section bench_steps of {args.out} in {elapsed:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
