"""The shipped configs: ``otel-collector.yaml`` is a consistent Collector config whose ports are the
SDK's OTLP defaults, and ``examples/prometheus.yml`` scrapes the collector and the SDK where they listen."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_exec_telemetry.config import TelemetryConfig
from mcp_exec_telemetry.telemetry import _otlp_exporters
from tests.servers import require_binary

ROOT = Path(__file__).resolve().parent.parent
COLLECTOR = ROOT / "otel-collector.yaml"
PROMETHEUS = ROOT / "examples" / "prometheus.yml"
PRODUCTION = ROOT / "docs" / "PRODUCTION.md"

_OTEL_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_PROMETHEUS_PORT",
)


@pytest.fixture
def collector() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COLLECTOR.read_text())
    return doc


@pytest.fixture(autouse=True)
def _no_otlp_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1].split("/")[0])


def test_collector_config_parses_and_pipelines_reference_defined_components(collector):
    assert set(collector) == {"receivers", "processors", "exporters", "service"}
    pipelines = collector["service"]["pipelines"]
    assert set(pipelines) == {"metrics", "traces", "logs"}  # the SDK exports all three signals
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, pipeline in pipelines.items():
        assert name.split("/")[0] in ("metrics", "traces", "logs"), name
        assert pipeline["receivers"] and pipeline["exporters"], name
        for kind in used:
            for component in pipeline.get(kind, []):
                assert component in collector[kind], f"pipeline {name} uses undefined {kind[:-1]} {component!r}"
                used[kind].add(component)
        # memory_limiter must come first, batch after it.
        assert pipeline["processors"][0] == "memory_limiter", name
        assert "batch" in pipeline["processors"], name
    for kind, names in used.items():
        assert set(collector[kind]) == names, f"defined but unused {kind}: {sorted(set(collector[kind]) - names)}"
    # A pipeline's exporters must handle its signal: the prometheus exporter takes metrics only.
    assert "prometheus" not in pipelines["traces"]["exporters"] + pipelines["logs"]["exporters"]
    assert "prometheus" in pipelines["metrics"]["exporters"]


def test_collector_ports_are_the_sdk_otlp_defaults(collector):
    protocols = collector["receivers"]["otlp"]["protocols"]
    grpc_port, http_port = _port(protocols["grpc"]["endpoint"]), _port(protocols["http"]["endpoint"])
    assert (grpc_port, http_port) == (4317, 4318)

    # The SDK's default protocol is gRPC; a bare OTEL_EXPORTER_OTLP_ENDPOINT on 4317 reaches the gRPC receiver.
    cfg = TelemetryConfig.from_kwargs(otlp_endpoint="http://localhost:4317")
    assert cfg.otlp_protocol == "grpc"
    metrics, spans = _otlp_exporters(cfg)
    assert (metrics._endpoint, spans._endpoint) == ("localhost:4317", "localhost:4317")

    # http/protobuf: the SDK appends the signal paths the collector's HTTP receiver serves.
    cfg = TelemetryConfig.from_kwargs(otlp_endpoint="http://localhost:4318", otlp_protocol="http/protobuf")
    metrics, spans = _otlp_exporters(cfg)
    assert (metrics._endpoint, spans._endpoint) == ("http://localhost:4318/v1/metrics", "http://localhost:4318/v1/traces")

    # The same conventions as the OpenTelemetry exporters' own defaults.
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter

    assert _port(GrpcMetricExporter()._endpoint) == grpc_port
    assert _port(HttpMetricExporter()._endpoint) == http_port

    # The header tells users the same thing.
    header = COLLECTOR.read_text().split("receivers:")[0]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317" in header
    assert "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318" in header


def test_collector_prometheus_exporter_keeps_service_labels(collector):
    exporter = collector["exporters"]["prometheus"]
    assert _port(exporter["endpoint"]) == 8889
    assert exporter["resource_to_telemetry_conversion"]["enabled"] is True


def test_prometheus_example_scrapes_the_collector_and_the_sdk(collector):
    doc = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    targets = {name: [t for sc in job["static_configs"] for t in sc["targets"]] for name, job in jobs.items()}
    collector_port = _port(collector["exporters"]["prometheus"]["endpoint"])
    assert [_port(t) for t in targets["otel-collector"]] == [collector_port]
    # The collector's job/instance labels (from service.name) must win over the scrape job's.
    assert jobs["otel-collector"]["honor_labels"] is True
    sdk_port = TelemetryConfig.from_kwargs(prometheus=True).prometheus_port
    assert [_port(t) for t in targets["mcp-exec-agent"]] == [sdk_port] == [9464]
    assert all(job.get("metrics_path", "/metrics") == "/metrics" for job in jobs.values())


def test_prometheus_example_passes_promtool(tmp_path):
    prometheus = require_binary("prometheus")  # promtool ships in the same Debian package
    promtool = str(Path(prometheus).with_name("promtool"))
    result = subprocess.run([promtool, "check", "config", str(PROMETHEUS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_production_guide_matches_the_configs(collector):
    text = PRODUCTION.read_text()
    for needle in (
        "otelcol-contrib --config otel-collector.yaml",
        "OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317",
        "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
        "http://localhost:4318",
        "examples/prometheus.yml",
        "examples/grafana-dashboard.json",
        ":8889",
        ":9464",
    ):
        assert needle in text, needle
