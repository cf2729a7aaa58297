"""Structured logging: the design's session-metrics record, JSON lines, and OpenTelemetry logs with trace ids."""

from __future__ import annotations

import io
import json
import logging
from typing import Any, Iterator

import pytest

from mcp_exec_telemetry import observe
from mcp_exec_telemetry.logs import SESSION_LOGGER, SESSION_MESSAGE, JsonFormatter, log_session_metrics, otel_logging, session_fields, structured_fields
from mcp_exec_telemetry.testing import capture
from tests.servers import OtlpReceiver
from tests.test_history import make_summary


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Everything logged under "mcp_metrics" and "app", formatted by JsonFormatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(SESSION_LOGGER), logging.getLogger("app")]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    yield stream
    for lg in loggers:
        lg.removeHandler(handler)
        lg.setLevel(logging.NOTSET)


def test_session_fields_are_the_designs_record() -> None:
    fields = session_fields(make_summary(queries=12, hits=11, runs=8, runs_ok=7, in_bytes=40_000, out_bytes=6_000))
    assert fields == {
        "service_name": "agent-a", "session_duration_ms": 1_800_000,
        "discovery_queries": 12, "discovery_hit_rate": 0.916667, "discovery_avg_response_time_ms": 37.5,
        "execution_count": 8, "execution_success_rate": 0.875, "execution_avg_duration_ms": 850.0, "execution_timeouts": 0,
        "sdk_generations": 2, "filtering_operations": 14, "filtering_reduction_ratio": 0.85, "estimated_token_savings": 8500,
        "skill_executions": 7, "skill_reuse_ratio": 2.333333, "pii_detections": 5, "pii_tokens_created": 5,
    }


def test_session_metrics_record_carries_its_fields_as_attributes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SESSION_LOGGER)
    log_session_metrics(make_summary(queries=12, hits=11))
    [record] = caplog.records
    assert (record.name, record.levelno, record.getMessage()) == ("mcp_metrics", logging.INFO, "MCP execution session metrics")
    fields = structured_fields(record)
    assert (fields["discovery_queries"], fields["execution_success_rate"], fields["estimated_token_savings"]) == (12, 0.875, 6500)


def test_json_formatter_writes_one_object_per_record_with_the_fields(json_lines: io.StringIO) -> None:
    with capture() as cap:
        cap.telemetry.execution.record("python3", 100.0, "success", 0)
        log_session_metrics(cap.telemetry)
    logging.getLogger("app").warning("disk %s", "full", extra={"free_bytes": 0})
    first, second = (json.loads(line) for line in json_lines.getvalue().splitlines())
    assert first["message"] == SESSION_MESSAGE and first["level"] == "INFO" and first["logger"] == "mcp_metrics"
    assert (first["execution_count"], first["execution_avg_duration_ms"], first["discovery_queries"]) == (1, 100.0, 0)
    assert first["timestamp"].endswith("Z") and len(first["timestamp"]) == 24
    assert second == {"timestamp": second["timestamp"], "level": "WARNING", "logger": "app", "message": "disk full", "free_bytes": 0}


def test_json_formatter_adds_the_active_trace_and_span_ids(json_lines: io.StringIO) -> None:
    with capture() as cap:
        with cap.telemetry.tracer.start_as_current_span("work") as span:
            logging.getLogger("app").info("inside")
        ctx = span.get_span_context()
    line = json.loads(json_lines.getvalue())
    assert (line["trace_id"], line["span_id"]) == (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))


def test_json_formatter_includes_exceptions(json_lines: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("app").exception("failed")
    line = json.loads(json_lines.getvalue())
    assert line["exception"].splitlines()[-1] == "RuntimeError: boom"


def test_without_otlp_there_is_no_otel_routing() -> None:
    with capture() as cap:
        with otel_logging(cap.telemetry) as handler:
            assert handler is None


@pytest.mark.server
def test_records_reach_otlp_logs_with_trace_and_span_ids() -> None:
    app = logging.getLogger("app.otel")
    app.setLevel(logging.INFO)
    with OtlpReceiver() as rx:
        with observe(otlp_endpoint=rx.http_endpoint, otlp_protocol="http/protobuf", history=False, export_timeout_ms=5000) as tel:
            with otel_logging(tel, app) as handler:
                assert handler is not None
                with tel.tracer.start_as_current_span("step") as span:
                    app.info("step done", extra={"rows": 3})
                tel.execution.record("python3", 40.0, "success", 0)
                log_session_metrics(tel, app)
            assert handler not in app.handlers
            session_ctx = tel.session_span.get_span_context()
        records = rx.wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(rx.logs()), timeout=10)
    step, metrics = records
    ctx = span.get_span_context()
    assert (step.body, step.severity_text, step.attributes["rows"]) == ("step done", "INFO", 3)
    assert (step.trace_id, step.span_id) == (format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"))
    assert metrics.body == SESSION_MESSAGE
    assert (metrics.trace_id, metrics.span_id) == (format(session_ctx.trace_id, "032x"), format(session_ctx.span_id, "016x"))
    assert (metrics.attributes["execution_count"], metrics.attributes["execution_success_rate"]) == (1, 1.0)
    assert metrics.resource["service.name"] == "mcp-exec-agent"
