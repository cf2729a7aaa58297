"""Issue 5, point 3: the collector is down, slow or failing.

Faults are injected with the real-backend stand-in ``OtlpReceiver`` (gRPC and HTTP/protobuf):
``refused`` is an endpoint where nothing listens, ``hang`` accepts and never answers,
``unavailable`` answers 503 / UNAVAILABLE. Requirements (thresholds as docs/RELIABILITY.md states):

* record calls never raise and never wait on the network: their p99 latency stays within 2x of
  the healthy case, measured in the same process; no record waits anywhere near an export timeout;
* queues stay bounded (the span queue never exceeds its 2048 maximum);
* leaving ``observe()`` returns within the export timeout (2 s configured, 5 s by default) plus a
  small margin, with exactly one warning from ``mcp_exec_telemetry`` saying what was dropped;
* when the collector comes back, the next exports carry cumulative totals equal to everything
  recorded, never more.
"""

from __future__ import annotations

import gc
import re
import logging
import time

import pytest

from mcp_exec_telemetry import observe

from tests.servers import OtlpReceiver, refused_endpoint

PROTOCOLS = ["grpc", "http/protobuf"]
FAULTS = ["refused", "hang", "unavailable"]

P99_FACTOR = 2.0  # faulty p99 <= 2x healthy p99
EXIT_MARGIN_S = 0.5  # exit may exceed the export timeout by at most this much
SPAN_QUEUE_MAX = 2048


def _endpoint(rx: OtlpReceiver, protocol: str, condition: str) -> str:
    if condition == "refused":
        return refused_endpoint()
    return rx.grpc_endpoint if protocol == "grpc" else rx.http_endpoint


def _set_mode(rx: OtlpReceiver, condition: str) -> None:
    rx.mode = {"healthy": "ok", "refused": "ok", "hang": "hang", "unavailable": "unavailable"}[condition]


def _record(tel, i: int) -> None:
    with tel.execution.run("python3") as ex:
        ex.set_result(i % 2)
    if i % 10 == 0:
        tel.security.pii_detected("email")


def _latencies(tel, n: int) -> list[int]:
    out = [0] * n
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        _record(tel, i)
        out[i] = clock() - t0
    return out


def _pct(values: list[int], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0  # microseconds


def _span_queues(tel) -> list:
    """The bounded queues of the session's batch span processors (OpenTelemetry SDK internals)."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    out = []
    for proc in getattr(tel.tracer_provider._active_span_processor, "_span_processors", ()):
        if isinstance(proc, BatchSpanProcessor):
            out.append(proc._batch_processor._queue)
    return out


OPS = 10_000
ROUNDS = 3


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_record_latency_p99_with_the_collector_down_stays_within_2x_of_healthy(protocol):
    """Refused, hanging and 503 collectors vs a healthy one: record p99 within 2x, never blocked."""
    conditions = ["healthy", *FAULTS]
    pooled: dict[str, list[int]] = {c: [] for c in conditions}
    worst: dict[str, float] = {c: 0.0 for c in conditions}
    queue_peak = 0
    with OtlpReceiver() as rx:
        for _ in range(ROUNDS):  # interleaved rounds, pooled per condition: the same noise for all
            for cond in conditions:
                _set_mode(rx, cond)
                before = rx.stats()
                with observe(
                    otlp_endpoint=_endpoint(rx, protocol, cond),
                    otlp_protocol=protocol,
                    export_interval_ms=50,  # the exporter runs often while records are made
                    export_timeout_ms=500,
                    history=False,
                ) as tel:
                    _latencies(tel, 1_000)  # warm-up
                    gc.collect()
                    lat = _latencies(tel, OPS)
                    for q in _span_queues(tel):
                        assert len(q) <= SPAN_QUEUE_MAX
                        queue_peak = max(queue_peak, len(q))
                    assert tel.summary()["execution"]["total_executions"] == OPS + 1_000
                after = rx.stats()
                if cond == "hang":
                    assert after.get("hung", 0) > before.get("hung", 0), "the hanging receiver was never reached"
                if cond == "unavailable":
                    assert after.get("rejected", 0) > before.get("rejected", 0), "no export was answered 503"
                pooled[cond] += lat
                worst[cond] = max(worst[cond], max(lat) / 1000.0)
            rx.mode = "ok"  # release hung handlers before the next round
    # The p99 of all rounds' records together: a round's own p99 hangs on whether the exporter
    # thread's work (which takes the GIL) happened to fall on the round's records, and the best
    # round of one condition against the best of another compared two lucky draws.
    p99 = {c: _pct(v, 0.99) for c, v in pooled.items()}
    print(f"\n[{protocol}] record latency over {ROUNDS} x {OPS} ops (us): "
          + "; ".join(f"{c}: p50 {_pct(pooled[c], 0.50):.1f} p99 {p99[c]:.1f} max {worst[c]:.0f}" for c in conditions)
          + f"; span queue peak {queue_peak}")
    for cond in FAULTS:
        assert p99[cond] <= P99_FACTOR * p99["healthy"], (cond, p99)
        # Never waited on the network: no single record waited as long as an export may take (500 ms).
        # (Stalls of 5-50 ms are the interpreter's GIL switch interval with exporter threads running.)
        assert worst[cond] < 500_000, (cond, worst)


def _dropped_warnings(caplog) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and (r.name == "mcp_exec_telemetry" or r.name.startswith("mcp_exec_telemetry."))
    ]


def _exit_against(rx: OtlpReceiver, protocol: str, fault: str, caplog, **options):
    _set_mode(rx, fault)
    tel = observe(otlp_endpoint=_endpoint(rx, protocol, fault), otlp_protocol=protocol, history=False, **options)
    tel.__enter__()
    for i in range(5_000):
        _record(tel, i)
    for q in _span_queues(tel):
        assert len(q) <= SPAN_QUEUE_MAX
    caplog.clear()
    t0 = time.monotonic()
    tel.__exit__(None, None, None)
    elapsed = time.monotonic() - t0
    return tel, elapsed, _dropped_warnings(caplog)


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_exit_returns_within_the_export_timeout_with_one_warning_saying_what_was_dropped(protocol, fault, caplog):
    caplog.set_level(logging.WARNING)
    with OtlpReceiver() as rx:
        tel, elapsed, warnings = _exit_against(rx, protocol, fault, caplog, export_timeout_ms=2_000, export_interval_ms=60_000)
        rx.mode = "ok"
    print(f"\n[{protocol}/{fault}] exit took {elapsed:.2f} s (timeout 2.00 s); warnings: {[w.getMessage() for w in warnings]}")
    assert tel.closed
    assert elapsed <= 2.0 + EXIT_MARGIN_S, elapsed
    assert len(warnings) == 1, [w.getMessage() for w in warnings]
    message = warnings[0].getMessage().lower()
    assert "dropped" in message, message
    assert "span" in message or "metric" in message, message


@pytest.mark.slow
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_exit_with_the_default_timeout_returns_within_5_s_against_a_hanging_collector(protocol, caplog):
    caplog.set_level(logging.WARNING)
    with OtlpReceiver() as rx:
        tel, elapsed, warnings = _exit_against(rx, protocol, "hang", caplog, export_interval_ms=60_000)
        rx.mode = "ok"
    print(f"\n[{protocol}/hang] exit with the default timeout took {elapsed:.2f} s")
    assert tel.config.export_timeout_ms <= 5_000
    assert elapsed <= 5.0 + EXIT_MARGIN_S, elapsed
    assert len(warnings) == 1, [w.getMessage() for w in warnings]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["unavailable", "hang"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_when_the_collector_comes_back_the_next_export_carries_every_recorded_total(protocol, fault):
    with OtlpReceiver() as rx:
        rx.mode = fault
        with observe(
            otlp_endpoint=_endpoint(rx, protocol, fault),
            otlp_protocol=protocol,
            export_interval_ms=200,
            export_timeout_ms=1_000,
            history=False,
        ) as tel:
            for i in range(3_000):
                _record(tel, i)
            key = "hung" if fault == "hang" else "rejected"
            rx.wait_for(lambda: rx.stats().get(key, 0) >= 1, timeout=10)  # an export failed meanwhile
            for i in range(3_000, 5_000):
                _record(tel, i)
            assert rx.metric_requests() == []
            t_back = time.monotonic()
            rx.mode = "ok"
            ok = rx.wait_for_metric(
                "mcp_exec.execution.duration",
                {"language": "python3", "outcome": "success"},
                lambda p: p.count == 2_500,
                timeout=10,
            )
            back_after = time.monotonic() - t_back
            failed = rx.latest("mcp_exec.execution.duration", {"language": "python3", "outcome": "failure"})
            pii = rx.latest("mcp_exec.pii.detections", {"pattern": "email"})
            assert (ok.count, failed.count, pii.value) == (2_500, 2_500, 500)
            assert ok.temporality == "cumulative"
            # Never more than was recorded: no export counted anything twice.
            assert max(p.count for p in rx.metric_points("mcp_exec.execution.duration")) <= 2_500
            assert max(p.value for p in rx.metric_points("mcp_exec.pii.detections")) <= 500
    print(f"\n[{protocol}/{fault}] totals exact {back_after:.2f} s after the collector came back")


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS)
def test_the_warning_counts_every_span_dropped_and_names_the_metrics(fault, caplog):
    """The collector accepted nothing: the one warning must say all 5,001 spans and the metrics were lost."""
    caplog.set_level(logging.WARNING)
    with OtlpReceiver() as rx:
        _tel, _elapsed, warnings = _exit_against(rx, "grpc", fault, caplog, export_timeout_ms=2_000, export_interval_ms=60_000)
        rx.mode = "ok"
        assert rx.trace_requests() == [] and rx.metric_requests() == []
    assert len(warnings) == 1, [w.getMessage() for w in warnings]
    message = warnings[0].getMessage()
    spans = re.search(r"(\d+) spans", message)
    assert spans is not None and int(spans.group(1)) == 5_001, message  # 5,000 operations + the session span
    assert "metric" in message.lower(), message
