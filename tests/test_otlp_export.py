"""OTLP over gRPC and HTTP/protobuf to a receiver built on opentelemetry-proto's service definitions."""

from __future__ import annotations

import pytest

from mcp_exec_telemetry import observe

from tests.servers import OtlpReceiver

PROTOCOLS = ["grpc", "http/protobuf"]


def _endpoint(rx: OtlpReceiver, protocol: str) -> str:
    return rx.grpc_endpoint if protocol == "grpc" else rx.http_endpoint


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_metrics_and_spans_arrive_with_the_recorded_totals(protocol):
    with OtlpReceiver() as rx:
        with observe(
            service_name="otlp-agent",
            otlp_endpoint=_endpoint(rx, protocol),
            otlp_protocol=protocol,
            export_interval_ms=3_600_000,  # only the flush at exit exports
            history=False,
        ) as tel:
            for i in range(7):
                with tel.execution.run("python3") as ex:
                    ex.set_result(0 if i else 1)
            with tel.discovery.search("files") as q:
                q.set_results(2)
            tel.security.pii_detected("email", 3)
            # Recorded just before the session ends: must not be lost.
            tel.filtering.record("filter", 8000, 800, 1)
            tel.security.pii_detected("ssn")
        points = rx.metric_points()
        assert {p.transport for p in points} == {"grpc" if protocol == "grpc" else "http"}
        ok = rx.latest("mcp_exec.execution.duration", {"language": "python3", "outcome": "success"})
        failed = rx.latest("mcp_exec.execution.duration", {"language": "python3", "outcome": "failure"})
        assert (ok.count, failed.count) == (6, 1)
        assert ok.kind == "histogram" and ok.temporality == "cumulative" and ok.unit == "s"
        assert rx.latest("mcp_exec.pii.detections", {"pattern": "email"}).value == 3
        assert rx.latest("mcp_exec.pii.detections", {"pattern": "ssn"}).value == 1
        assert rx.latest("mcp_exec.filtering.input_size", {"operation": "filter"}).value == 8000
        assert rx.latest("mcp_exec.context.tokens_saved").value == 1800
        assert rx.latest("mcp_exec.discovery.hit_rate").value == 1.0
        assert rx.latest("mcp_exec.execution.success_rate").value == round(6 / 7, 6)
        assert ok.resource["service.name"] == "otlp-agent"

        spans = rx.wait_for_spans(9)
        by_name: dict[str, list] = {}
        for s in spans:
            by_name.setdefault(s.name, []).append(s)
        (session,) = by_name["session"]
        assert len(by_name["execution.run"]) == 7 and len(by_name["discovery.search"]) == 1
        for s in by_name["execution.run"] + by_name["discovery.search"]:
            assert s.trace_id == session.trace_id and s.parent_span_id == session.span_id
        assert sorted(s.attributes.get("process.exit.code") for s in by_name["execution.run"]) == [0] * 6 + [1]
        assert session.resource["service.name"] == "otlp-agent"


def test_environment_configures_endpoint_protocol_interval_and_resource(monkeypatch):
    with OtlpReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.http_endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "env-agent")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,agent.pool=blue")
        with observe(history=False) as tel:
            tel.skills.save("skill_a", "python3")
            tel.skills.record("skill_a", 10)
            # Exported by the periodic reader while the session is still running.
            point = rx.wait_for_metric("mcp_exec.skills.duration", predicate=lambda p: p.count == 1, timeout=10)
            assert point.resource["service.name"] == "env-agent"
            assert point.resource["deployment.environment"] == "ci" and point.resource["agent.pool"] == "blue"
            tel.skills.record("skill_a", 10)
        assert rx.latest("mcp_exec.skills.duration").count == 2
        assert rx.latest("mcp_exec.skill.reuse_ratio").value == 2.0
