"""Proof that the real-backend test servers in ``tests/servers`` are honest.

Only raw OpenTelemetry / prometheus_client are used here (never the project's
package), so a failure points at the stand-ins, not at the code under test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.servers import (
    InfluxDBError,
    InfluxDBServer,
    OtlpReceiver,
    PrometheusServer,
    free_port,
    refused_endpoint,
    require_binary,
)

RESOURCE_ATTRS: dict[str, Any] = {"service.name": "servers-selftest", "deployment.environment": "test", "run": 7}

# "grpc", "http" (uncompressed) and "http-gzip"
TRANSPORTS = ["grpc", "http", "http-gzip"]


def _span_exporter(rx: OtlpReceiver, transport: str, timeout: float = 5.0) -> SpanExporter:
    if transport == "grpc":
        return GrpcSpanExporter(endpoint=rx.grpc_endpoint, insecure=True, timeout=timeout)
    compression = Compression.Gzip if transport == "http-gzip" else Compression.NoCompression
    return HttpSpanExporter(endpoint=rx.http_url("traces"), timeout=timeout, compression=compression)


def _metric_exporter(rx: OtlpReceiver, transport: str) -> Any:
    if transport == "grpc":
        return GrpcMetricExporter(endpoint=rx.grpc_endpoint, insecure=True, timeout=5)
    compression = Compression.Gzip if transport == "http-gzip" else Compression.NoCompression
    return HttpMetricExporter(endpoint=rx.http_url("metrics"), timeout=5, compression=compression)


def _log_exporter(rx: OtlpReceiver, transport: str) -> Any:
    if transport == "grpc":
        return GrpcLogExporter(endpoint=rx.grpc_endpoint, insecure=True, timeout=5)
    compression = Compression.Gzip if transport == "http-gzip" else Compression.NoCompression
    return HttpLogExporter(endpoint=rx.http_url("logs"), timeout=5, compression=compression)


def _one_span(name: str = "probe") -> list[Any]:
    """A finished SDK span (ReadableSpan) to feed straight into exporter.export()."""
    captured: list[Any] = []

    class _Capture(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            captured.extend(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider(resource=Resource.create(RESOURCE_ATTRS))
    provider.add_span_processor(SimpleSpanProcessor(_Capture()))
    with provider.get_tracer("probe").start_as_current_span(name):
        pass
    provider.shutdown()
    return captured


@pytest.fixture
def rx() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


# --------------------------------------------------------------------------- OTLP round trips


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_otlp_metrics_roundtrip(rx: OtlpReceiver, transport: str) -> None:
    """Counter and histogram values, attributes, resource and cumulative totals survive the wire."""
    reader = PeriodicExportingMetricReader(_metric_exporter(rx, transport), export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create(RESOURCE_ATTRS), metric_readers=[reader])
    try:
        meter = provider.get_meter("selftest.meter", "1.2.3")
        counter = meter.create_counter("selftest.requests", unit="{request}", description="reqs")
        hist = meter.create_histogram("selftest.latency", unit="ms", explicit_bucket_boundaries_advisory=[10.0, 100.0])
        counter.add(3, {"route": "/a"})
        counter.add(4, {"route": "/a"})
        counter.add(5, {"route": "/b", "ok": True})
        for value in (5.0, 15.0, 150.0, 7.0):
            hist.record(value, {"tool": "search"})
        assert provider.force_flush(10_000)

        a = rx.latest("selftest.requests", {"route": "/a"})
        b = rx.latest("selftest.requests", {"route": "/b", "ok": True})
        assert a is not None and b is not None, rx.summary()
        assert (a.value, b.value) == (7, 5)
        assert a.kind == "sum" and a.is_monotonic is True and a.temporality == "cumulative"
        assert a.unit == "{request}" and a.description == "reqs" and a.scope_name == "selftest.meter"
        assert a.transport == ("grpc" if transport == "grpc" else "http")
        for key, val in RESOURCE_ATTRS.items():
            assert a.resource[key] == val
        assert rx.latest("selftest.requests", {"route": "/c"}) is None
        with pytest.raises(ValueError, match="several attribute sets"):
            rx.latest("selftest.requests")

        h = rx.latest("selftest.latency")
        assert h is not None
        assert h.kind == "histogram" and h.unit == "ms" and h.attributes == {"tool": "search"}
        assert h.explicit_bounds == [10.0, 100.0]
        assert h.bucket_counts == [2, 1, 1]
        assert (h.count, h.sum, h.min, h.max) == (4, 177.0, 5.0, 150.0)

        # A second export: cumulative totals, and latest() follows the newest request.
        counter.add(10, {"route": "/a"})
        assert provider.force_flush(10_000)
        a2 = rx.wait_for_metric("selftest.requests", {"route": "/a"}, lambda p: p.value != 7, timeout=5)
        assert a2.value == 17 and a2.request_index > a.request_index
        assert [p.value for p in rx.metric_points("selftest.requests", {"route": "/a"})] == [7, 17]
        assert len(rx.metric_requests()) == 2
        assert all(r.request.resource_metrics for r in rx.metric_requests())
        assert b"selftest.latency" in rx.raw_bytes()
    finally:
        provider.shutdown()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_otlp_traces_roundtrip(rx: OtlpReceiver, transport: str) -> None:
    """Span names, kinds, ids, parentage, attributes, events, status and resource are exact."""
    provider = TracerProvider(resource=Resource.create(RESOURCE_ATTRS))
    provider.add_span_processor(SimpleSpanProcessor(_span_exporter(rx, transport)))
    tracer = provider.get_tracer("selftest.tracer")
    try:
        with tracer.start_as_current_span("parent", kind=SpanKind.SERVER) as parent:
            parent.set_attributes({"k": "v", "n": 3, "f": 1.5, "b": True, "arr": ["x", "y"]})
            parent.add_event("checkpoint", {"step": 2, "needle": "needle-4711"})
            with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
                child.set_status(Status(StatusCode.ERROR, "boom"))
        spans = rx.wait_for_spans(2)
        by_name = {s.name: s for s in spans}
        assert sorted(by_name) == ["child", "parent"]
        p, c = by_name["parent"], by_name["child"]
        pctx, cctx = parent.get_span_context(), child.get_span_context()

        assert p.trace_id == c.trace_id == format(pctx.trace_id, "032x")
        assert p.span_id == format(pctx.span_id, "016x")
        assert c.span_id == format(cctx.span_id, "016x")
        assert p.parent_span_id is None and c.parent_span_id == p.span_id
        assert (p.kind, c.kind) == ("server", "client")
        assert p.attributes == {"k": "v", "n": 3, "f": 1.5, "b": True, "arr": ["x", "y"]}
        assert [(e.name, e.attributes) for e in p.events] == [("checkpoint", {"step": 2, "needle": "needle-4711"})]
        assert (c.status_code, c.status_description) == ("error", "boom")
        assert p.status_code == "unset"
        assert p.scope_name == "selftest.tracer"
        assert p.resource["service.name"] == "servers-selftest" and p.resource["run"] == 7
        assert p.end_time_unix_nano >= p.start_time_unix_nano > 0
        assert b"needle-4711" in rx.raw_bytes()
        assert {r.transport for r in rx.trace_requests()} == {"grpc" if transport == "grpc" else "http"}
        if transport == "http-gzip":
            assert all(r.headers.get("content-encoding") == "gzip" for r in rx.trace_requests())
    finally:
        provider.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_otlp_logs_roundtrip(rx: OtlpReceiver, transport: str) -> None:
    """Log body, severity, attributes and the trace context of the active span are exact."""
    log_provider = LoggerProvider(resource=Resource.create(RESOURCE_ATTRS))
    log_provider.add_log_record_processor(SimpleLogRecordProcessor(_log_exporter(rx, transport)))
    tracer_provider = TracerProvider()
    try:
        logger = log_provider.get_logger("selftest.logger")
        with tracer_provider.get_tracer("t").start_as_current_span("around") as span:
            from opentelemetry._logs import SeverityNumber

            logger.emit(
                body="hello receiver",
                severity_number=SeverityNumber.WARN,
                severity_text="WARN",
                attributes={"tool": "fetch", "attempt": 2},
            )
        logs = rx.wait_for(lambda: rx.logs())
        assert len(logs) == 1
        log = logs[0]
        assert (log.body, log.severity_number, log.severity_text) == ("hello receiver", 13, "WARN")
        assert log.attributes == {"tool": "fetch", "attempt": 2}
        assert log.trace_id == format(span.get_span_context().trace_id, "032x")
        assert log.span_id == format(span.get_span_context().span_id, "016x")
        assert log.resource["service.name"] == "servers-selftest" and log.scope_name == "selftest.logger"
    finally:
        log_provider.shutdown()
        tracer_provider.shutdown()


# --------------------------------------------------------------------------- fault modes


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_unavailable_mode_fails_export_then_recovers(rx: OtlpReceiver, transport: str) -> None:
    """mode="unavailable" rejects without storing; switching back to "ok" accepts again."""
    exporter = _span_exporter(rx, transport, timeout=1.0)
    try:
        rx.mode = "unavailable"
        started = time.monotonic()
        assert exporter.export(_one_span("rejected")) == SpanExportResult.FAILURE
        assert time.monotonic() - started < 5
        assert rx.stats()["rejected"] >= 1
        assert rx.spans() == []

        rx.mode = "ok"
        assert exporter.export(_one_span("accepted")) == SpanExportResult.SUCCESS
        assert [s.name for s in rx.spans()] == ["accepted"]
    finally:
        exporter.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_hang_mode_times_out_export_and_stop_is_prompt(transport: str) -> None:
    """A hung receiver makes a short-timeout export fail in about that time; stopping the
    receiver while a request is still hung returns quickly and frees the exporter."""
    with pytest.raises(ValueError):
        OtlpReceiver().mode = "broken"  # type: ignore[assignment]
    rx = OtlpReceiver().start()
    try:
        rx.mode = "hang"
        quick = _span_exporter(rx, transport, timeout=0.5)
        started = time.monotonic()
        assert quick.export(_one_span("too-slow")) == SpanExportResult.FAILURE
        assert time.monotonic() - started < 3
        quick.shutdown()
        assert rx.stats()["hung"] >= 1
        assert rx.spans() == []

        # A request that is still hanging when the receiver stops.
        slow = _span_exporter(rx, transport, timeout=3.0)
        results: list[SpanExportResult] = []
        worker = threading.Thread(target=lambda: results.append(slow.export(_one_span("in-flight"))))
        before = rx.stats()["hung"]
        worker.start()
        rx.wait_for(lambda: rx.stats()["hung"] > before, timeout=5)
    finally:
        started = time.monotonic()
        rx.stop()
        stop_took = time.monotonic() - started
    assert stop_took < 2.0, f"stop() took {stop_took:.2f}s"
    worker.join(timeout=8)
    assert not worker.is_alive()
    assert results == [SpanExportResult.FAILURE]
    assert rx.spans() == []
    slow.shutdown()


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_hang_released_by_mode_change(rx: OtlpReceiver, transport: str) -> None:
    """A hung request is answered (and stored) once the mode goes back to "ok"."""
    exporter = _span_exporter(rx, transport, timeout=10.0)
    results: list[SpanExportResult] = []
    rx.mode = "hang"
    worker = threading.Thread(target=lambda: results.append(exporter.export(_one_span("late"))))
    worker.start()
    try:
        rx.wait_for(lambda: rx.stats().get("hung", 0) >= 1, timeout=5)
        time.sleep(0.2)
        assert results == [] and rx.spans() == []
        rx.mode = "ok"
        worker.join(timeout=5)
        assert results == [SpanExportResult.SUCCESS]
        assert [s.name for s in rx.spans()] == ["late"]
    finally:
        rx.mode = "ok"
        worker.join(timeout=5)
        exporter.shutdown()


def test_refused_endpoint_and_clear(rx: OtlpReceiver) -> None:
    """Nothing listens on refused_endpoint(); clear() forgets stored requests."""
    exporter = HttpSpanExporter(endpoint=f"{refused_endpoint()}/v1/traces", timeout=1)
    assert exporter.export(_one_span()) == SpanExportResult.FAILURE
    exporter.shutdown()

    ok = _span_exporter(rx, "http")
    assert ok.export(_one_span("kept")) == SpanExportResult.SUCCESS
    ok.shutdown()
    assert len(rx.trace_requests()) == 1 and rx.raw_bytes()
    rx.clear()
    assert rx.trace_requests() == [] and rx.raw_bytes() == b"" and rx.spans() == []
    with pytest.raises(TimeoutError, match="requests="):
        rx.wait_for(lambda: rx.spans(), timeout=0.2)


def test_http_receiver_rejects_bad_requests(rx: OtlpReceiver) -> None:
    """Unknown paths, JSON bodies and garbage protobuf get 4xx and are not stored."""
    from tests.servers._util import http_request

    assert http_request(f"{rx.http_endpoint}/v1/nothing", data=b"", method="POST")[0] == 404
    headers = {"Content-Type": "application/json"}
    assert http_request(rx.http_url("traces"), data=b"{}", method="POST", headers=headers)[0] == 415
    headers = {"Content-Type": "application/x-protobuf"}
    assert http_request(rx.http_url("traces"), data=b"\xff\xff\xff", method="POST", headers=headers)[0] == 400
    assert rx.requests() == []


# --------------------------------------------------------------------------- require_binary


def test_require_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing binary skips locally (with install advice) and fails under CI=true."""
    assert require_binary("sh").endswith("/sh")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y no-such-binary-xyz"):
        require_binary("no-such-binary-xyz")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_binary("no-such-binary-xyz")


# --------------------------------------------------------------------------- Prometheus


@pytest.mark.server
def test_prometheus_scrapes_exact_values() -> None:
    """Prometheus scrapes a prometheus_client endpoint; counter and histogram_quantile are exact."""
    require_binary("prometheus")
    from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

    registry = CollectorRegistry()
    counter = Counter("selftest_calls", "calls", ["tool"], registry=registry)
    hist = Histogram("selftest_latency_seconds", "lat", buckets=(1.0, 2.0, 5.0), registry=registry)
    counter.labels(tool="search").inc(42.5)
    counter.labels(tool="fetch").inc(1)
    for value in (0.5, 0.5, 1.5, 1.5):
        hist.observe(value)
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with PrometheusServer([f"127.0.0.1:{port}"]) as prom:
            targets = prom.wait_for_targets_up(timeout=20)
            assert [t["scrapeUrl"] for t in targets] == [f"http://127.0.0.1:{port}/metrics"]
            total = prom.wait_for_value('selftest_calls_total{tool="search"}', lambda v: v > 0, timeout=20)
            assert total == 42.5
            assert prom.query_scalar('selftest_calls_total{tool="nope"}') is None
            series = prom.query("selftest_calls_total")
            assert {s["metric"]["tool"]: float(s["value"][1]) for s in series} == {"search": 42.5, "fetch": 1.0}
            with pytest.raises(ValueError, match="2 series"):
                prom.query_scalar("selftest_calls_total")
            # rank 0.75*4=3 falls in (1,2] holding observations 3..4: 1 + (3-2)/2 = 1.5
            q = prom.query_scalar("histogram_quantile(0.75, sum by (le) (selftest_latency_seconds_bucket))")
            assert q == 1.5
            assert prom.query_scalar("selftest_latency_seconds_count") == 4
            assert prom.query_scalar("selftest_latency_seconds_sum") == 4.0
            assert prom.query_scalar("1 + 1") == 2.0

            # a new value shows up on a later scrape
            counter.labels(tool="search").inc(1)
            assert prom.wait_for_value('selftest_calls_total{tool="search"}', lambda v: v > 42.5, 10) == 43.5
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.server
def test_prometheus_start_failure_reports_log() -> None:
    """A config Prometheus rejects fails fast with the log tail in the error."""
    require_binary("prometheus")
    prom = PrometheusServer(["127.0.0.1:1"], scrape_interval="not-a-duration")
    with pytest.raises(RuntimeError, match=r"(?s)exited with code.*not-a-duration"):
        prom.start()
    assert not prom._proc or not prom._proc.running


# --------------------------------------------------------------------------- InfluxDB


@pytest.mark.server
def test_influxdb_roundtrip() -> None:
    """Line protocol written in goes back out of InfluxQL with exact values, types and times."""
    require_binary("influxd")
    with InfluxDBServer() as influx:
        influx.create_database("selftest")
        assert "selftest" in influx.databases()
        influx.write(
            "selftest",
            'calls,tool=search,env=test count=3i,latency=12.5,ok=true,msg="hi there" 1700000000000000000\n'
            'calls,tool=fetch,env=test count=7i,latency=0.25,ok=false,msg="x" 1700000001000000000\n',
        )
        influx.write("selftest", 'calls,tool=search,env=test count=4i,latency=1,ok=true,msg="s" 1700000002', "s")
        rows = influx.rows("SELECT count, latency, ok, msg, tool FROM calls ORDER BY time", db="selftest")
        assert rows == [
            {"time": 1700000000000000000, "count": 3, "latency": 12.5, "ok": True, "msg": "hi there", "tool": "search"},
            {"time": 1700000001000000000, "count": 7, "latency": 0.25, "ok": False, "msg": "x", "tool": "fetch"},
            {"time": 1700000002000000000, "count": 4, "latency": 1.0, "ok": True, "msg": "s", "tool": "search"},
        ]
        summed = influx.rows("SELECT sum(count) FROM calls GROUP BY tool", db="selftest")
        assert {r["tool"]: r["sum"] for r in summed} == {"search": 7, "fetch": 7}
        with pytest.raises(InfluxDBError, match="field type conflict"):
            influx.write("selftest", "calls,tool=search count=1.5 1700000003000000000")
        with pytest.raises(InfluxDBError, match="database not found"):
            influx.query("SELECT * FROM calls", db="missing")
    assert not influx._proc or not influx._proc.running
