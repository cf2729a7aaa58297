"""OTLP end to end, beyond tests/test_otlp_export.py: configured only by the standard environment
variables, over gRPC and HTTP/protobuf, the receiver decodes exactly what was recorded: histogram
buckets, counters, derived gauges, spans with their durations, the operation recorded last before
``observe()`` exits, and the resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``) on
metrics and spans alike."""

from __future__ import annotations

import pytest

from mcp_exec_telemetry import observe
from mcp_exec_telemetry.views import EXECUTION_BUCKETS_S

from tests.servers import OtlpReceiver

PROTOCOLS = ["grpc", "http/protobuf"]
PY_OK = {"language": "python3", "outcome": "success"}


def _configure(monkeypatch: pytest.MonkeyPatch, rx: OtlpReceiver, protocol: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.grpc_endpoint if protocol == "grpc" else rx.http_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "3600000")  # only the flush at exit exports


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_env_configured_session_arrives_exactly_including_the_last_operation(monkeypatch, protocol):
    with OtlpReceiver() as rx:
        _configure(monkeypatch, rx, protocol)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "env-e2e-agent")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,agent.pool=green")
        with observe(history=False) as tel:
            for ms in (80, 450, 900, 1600):
                tel.execution.record("python3", ms, "success", exit_code=0)
            tel.execution.record("javascript", 3000, "failure", exit_code=1)
            tel.discovery.record("orders", "full", 40, 2)
            tel.sdk.record(120, 5, 2048)
            tel.security.pii_detected("email", 2)
            assert rx.metric_points() == [] and rx.spans() == []  # nothing exported before the exit
            # The last operation of the session, right before observe() exits:
            with tel.skills.run("final_skill") as run:
                run.set_success(True)
        transport = "grpc" if protocol == "grpc" else "http"

        # Metrics: the final export holds everything, the last operation included.
        ok = rx.latest("mcp_exec.execution.duration", PY_OK)
        assert ok.transport == transport and ok.kind == "histogram" and ok.temporality == "cumulative"
        assert ok.explicit_bounds == list(EXECUTION_BUCKETS_S)
        #                         0.01 0.05 0.1 0.25 0.5 1  2  5  10 30 60 +Inf
        assert ok.bucket_counts == [0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0]
        assert (ok.count, ok.sum, ok.min, ok.max) == (4, pytest.approx(3.03), 0.08, 1.6)
        failed = rx.latest("mcp_exec.execution.duration", {"language": "javascript", "outcome": "failure"})
        assert failed.count == 1 and failed.bucket_counts[EXECUTION_BUCKETS_S.index(5.0)] == 1
        assert rx.latest("mcp_exec.execution.success_rate").value == 0.8
        assert rx.latest("mcp_exec.discovery.queries", {"detail_level": "full", "outcome": "success"}).value == 1
        assert rx.latest("mcp_exec.sdk.tools_included").value == 5
        assert rx.latest("mcp_exec.sdk.ipc_handler_size").value == 2048
        assert rx.latest("mcp_exec.pii.detections", {"pattern": "email"}).value == 2
        last = rx.latest("mcp_exec.skills.duration", {"skill.name": "final_skill", "outcome": "success"})
        assert last is not None and last.count == 1

        # Spans: one per operation, with the recorded durations, under the session span.
        spans = rx.wait_for_spans(9)
        assert {s.transport for s in spans} == {transport}
        assert sorted(s.name for s in spans) == sorted(
            ["session", "discovery.search", "sdk.generate", "skills.run"] + ["execution.run"] * 5
        )
        (session,) = rx.spans("session")
        executions = rx.spans("execution.run")
        durations_ms = sorted(round((s.end_time_unix_nano - s.start_time_unix_nano) / 1e6) for s in executions)
        assert durations_ms == [80, 450, 900, 1600, 3000]
        (js,) = [s for s in executions if s.attributes["mcp_exec.execution.language"] == "javascript"]
        assert js.status_code == "error" and js.attributes["process.exit.code"] == 1
        (final,) = rx.spans("skills.run")
        assert final.attributes["mcp_exec.skill.name"] == "final_skill"
        assert final.end_time_unix_nano <= session.end_time_unix_nano
        for s in spans:
            assert s.trace_id == session.trace_id
            if s.span_id != session.span_id:
                assert s.parent_span_id == session.span_id, s.name

        # The resource, as the environment set it, on every metric point and every span.
        for resource in [p.resource for p in rx.metric_points()] + [s.resource for s in spans]:
            assert resource["service.name"] == "env-e2e-agent"
            assert resource["deployment.environment"] == "staging" and resource["agent.pool"] == "green"
            assert resource["telemetry.distro.name"] == "mcp-exec-telemetry"
            assert resource["telemetry.sdk.language"] == "python"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_service_name_precedence(monkeypatch, protocol):
    """``service.name`` in OTEL_RESOURCE_ATTRIBUTES is used when OTEL_SERVICE_NAME is unset; the
    ``service_name`` argument and ``resource_attributes`` win over both."""
    with OtlpReceiver() as rx:
        _configure(monkeypatch, rx, protocol)
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,team=search")
        with observe(history=False) as tel:
            tel.execution.record("python3", 10, "success", exit_code=0)
        point = rx.latest("mcp_exec.execution.duration", PY_OK)
        assert (point.resource["service.name"], point.resource["team"]) == ("from-attributes", "search")
        (session,) = rx.wait_for_spans(1, name="session")
        assert session.resource["service.name"] == "from-attributes"

        rx.clear()
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        with observe(history=False) as tel:
            tel.execution.record("python3", 10, "success", exit_code=0)
        assert rx.latest("mcp_exec.execution.duration", PY_OK).resource["service.name"] == "from-env"

        rx.clear()
        with observe(service_name="from-argument", resource_attributes={"team": "billing"}, history=False) as tel:
            tel.execution.record("python3", 10, "success", exit_code=0)
        resource = rx.latest("mcp_exec.execution.duration", PY_OK).resource
        assert (resource["service.name"], resource["team"]) == ("from-argument", "billing")
        (session,) = rx.wait_for_spans(1, name="session")
        assert session.resource["service.name"] == "from-argument" and session.resource["team"] == "billing"
