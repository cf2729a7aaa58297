"""Issue 11: ``observe()`` never raises at startup over deployment configuration.

A bad ``OTEL_*`` value is one warning naming the variable and the OpenTelemetry default used
instead; the same value passed as a keyword argument is a programming error and still raises
``ValueError``. A Prometheus port already taken (a second agent on the host) is a warning, and the
session runs without ``/metrics``.
"""

from __future__ import annotations

import logging
import socket
import urllib.request

import pytest

from mcp_exec_telemetry import observe

BAD_ENV = [
    # variable, value, config attribute, value used instead (OpenTelemetry's default)
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "otlp_protocol", "http/protobuf"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "otlp_protocol", "grpc"),
    ("OTEL_METRIC_EXPORT_INTERVAL", "0", "export_interval_ms", 60_000.0),
    ("OTEL_METRIC_EXPORT_INTERVAL", "-1", "export_interval_ms", 60_000.0),
    ("OTEL_METRIC_EXPORT_INTERVAL", "soon", "export_interval_ms", 60_000.0),
    ("OTEL_EXPORTER_PROMETHEUS_PORT", "abc", "prometheus_port", 9464),
    ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000", "prometheus_port", 9464),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1", "otlp_endpoint", "http://localhost:4317"),
]


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "mcp_exec_telemetry" and r.levelno == logging.WARNING]


@pytest.mark.parametrize("variable, value, attribute, default", BAD_ENV)
def test_a_bad_otel_variable_is_one_warning_naming_it_and_the_default_is_used(variable, value, attribute, default, monkeypatch, caplog):
    monkeypatch.setenv(variable, value)
    caplog.set_level(logging.WARNING, logger="mcp_exec_telemetry")
    # Nothing is served or exported: the point is that building the session does not raise.
    tel = observe(history=False, export_timeout_ms=500)
    if attribute == "prometheus_port":  # read where prometheus=True would serve, without serving
        tel.config.prometheus = True
        used = tel.config.prometheus_port
        tel.config.prometheus = False
    else:
        used = getattr(tel.config, attribute)
    with tel:
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        assert tel.summary()["execution"]["total_executions"] == 1
    assert used == default
    mentioning = [m for m in _warnings(caplog) if variable in m]
    assert len(mentioning) == 1, _warnings(caplog)
    assert repr(value) in mentioning[0] and str(default).rstrip("0").rstrip(".") in mentioning[0]


@pytest.mark.parametrize(
    "option, value",
    [("otlp_protocol", "http/json"), ("export_interval_ms", 0), ("export_interval_ms", -1), ("prometheus", 70000),
     ("otlp_endpoint", "http://[::1")],
)
def test_the_same_value_as_a_keyword_argument_still_raises_value_error(option, value):
    with pytest.raises(ValueError, match=option):
        observe(history=False, **{option: value})


def test_a_taken_prometheus_port_is_a_warning_and_the_session_runs_without_metrics_endpoint(caplog):
    caplog.set_level(logging.WARNING, logger="mcp_exec_telemetry")
    with socket.socket() as other_agent:
        other_agent.bind(("127.0.0.1", 0))
        other_agent.listen()
        port = other_agent.getsockname()[1]
        with observe(history=False, prometheus=port) as tel:
            with tel.execution.run("python3") as ex:
                ex.set_result(0)
            assert tel.prometheus_port is None
            assert "mcp_exec_execution_duration_seconds_count" in tel.export_prometheus()
            summary = tel.summary()
    assert summary["execution"]["total_executions"] == 1
    (warning,) = [m for m in _warnings(caplog) if "/metrics" in m]
    assert f"127.0.0.1:{port}" in warning and "in use" in warning


def test_port_zero_serves_on_a_free_port():
    with observe(history=False, prometheus=0) as tel:
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        port = tel.prometheus_port
        assert port
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'mcp_exec_execution_duration_seconds_count{' in body


# Variables OpenTelemetry's own classes read (span limits, the batch span processor, gRPC
# compression): a value they reject raised ValueError (or InvalidCompressionValueException) out of
# observe(), and a non-numeric OTEL_BSP_SCHEDULE_DELAY logged a traceback. Each is now one warning
# naming the variable, OpenTelemetry's default in its place, and the spans still reach the collector.
SDK_ENV = [
    # variable, value, protocol
    ("OTEL_ATTRIBUTE_COUNT_LIMIT", "abc", "http/protobuf"),
    ("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "-3", "http/protobuf"),
    ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "-5", "http/protobuf"),
    ("OTEL_SPAN_EVENT_COUNT_LIMIT", "many", "http/protobuf"),
    ("OTEL_BSP_MAX_QUEUE_SIZE", "-1", "http/protobuf"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0", "http/protobuf"),
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "4096", "http/protobuf"),  # more than the queue holds (2048)
    ("OTEL_BSP_SCHEDULE_DELAY", "soon", "http/protobuf"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "bogus", "grpc"),
    ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "deflate", "grpc"),
    ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "zstd", "grpc"),
]


@pytest.mark.parametrize("variable, value, protocol", SDK_ENV)
def test_a_bad_value_of_a_variable_opentelemetry_reads_itself_is_one_warning_and_spans_still_flow(
    variable, value, protocol, monkeypatch, caplog, capfd
):
    from tests.servers import OtlpReceiver

    monkeypatch.setenv(variable, value)
    caplog.set_level(logging.WARNING)
    with OtlpReceiver() as rx:
        endpoint = rx.grpc_endpoint if protocol == "grpc" else rx.http_endpoint
        with observe(history=False, otlp_endpoint=endpoint, otlp_protocol=protocol, export_timeout_ms=5_000) as tel:
            for _ in range(3):
                with tel.execution.run("python3") as ex:
                    ex.set_result(0)
        assert len(rx.wait_for_spans(3, name="execution.run")) == 3
        assert rx.latest("mcp_exec.execution.duration", {"language": "python3", "outcome": "success"}).count == 3
    ours = [m for m in _warnings(caplog) if variable in m]
    assert len(ours) == 1, _warnings(caplog)
    assert repr(value) in ours[0]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("value", ["none", "gzip", "GZIP "])
def test_legal_grpc_compression_values_are_taken_without_a_warning(value, monkeypatch, caplog):
    from tests.servers import OtlpReceiver

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", value)
    caplog.set_level(logging.WARNING, logger="mcp_exec_telemetry")
    with OtlpReceiver() as rx:
        with observe(history=False, otlp_endpoint=rx.grpc_endpoint, otlp_protocol="grpc") as tel:
            with tel.execution.run("python3") as ex:
                ex.set_result(0)
        assert len(rx.wait_for_spans(1, name="execution.run")) == 1
    assert not [m for m in _warnings(caplog) if "COMPRESSION" in m], _warnings(caplog)
