"""Skills (reuse ratio, stats, cardinality limit) and security (detections, tokens, audit events)."""

from __future__ import annotations

import pytest

from mcp_exec_telemetry.testing import capture


def test_reuse_ratio_is_executions_over_active_skills(telemetry_capture):
    tel = telemetry_capture.telemetry
    for name in ("a", "b", "c"):
        tel.skills.save(name, "python3")
    tel.skills.save("a", "python3")  # an update, not a new skill
    tel.skills.delete("c")
    for name in ("a", "a", "b", "a"):
        with tel.skills.run(name):
            pass
    k = tel.get_skill_metrics()
    assert (k.total_skills, k.deleted_skills, k.active_skills, k.total_executions) == (3, 1, 2, 4)
    assert k.reuse_ratio == 2.0
    assert k.skill_stats["a"].execution_count == 3 and k.skill_stats["a"].language == "python3"
    assert k.skill_stats["a"].last_used is not None and k.skill_stats["a"].created_at is not None
    assert list(k.skill_stats)[:2] == ["a", "b"]  # most used first


def test_failed_skill_runs_lower_success_counts(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.skills.run("s") as r:
        r.set_success(False)
    with pytest.raises(RuntimeError):
        with tel.skills.run("s"):
            raise RuntimeError
    tel.skills.record("s", 5, success=True)
    st = tel.get_skill_metrics().skill_stats["s"]
    assert (st.execution_count, st.success_count) == (3, 1)
    assert tel.get_skill_metrics().reuse_ratio == 0.0  # no skill saved in this session


def test_skill_names_beyond_the_cardinality_limit_fold_into_overflow_with_exact_totals():
    with capture(cardinality_limit=5) as cap:
        tel = cap.telemetry
        for i in range(20):
            tel.skills.record(f"skill_{i}", 1, success=i % 2 == 0)
        points = cap.metric_points("skills.duration")
        kept = {p.attributes["skill.name"] for p in points if "skill.name" in p.attributes}
        assert kept == {f"skill_{i}" for i in range(5)}
        overflow = {p.attributes["outcome"]: p.count for p in points if p.attributes.get("otel.metric.overflow")}
        assert overflow == {"success": 7, "failure": 8}  # the outcome survives the overflow
        assert sum(p.count for p in points) == 20
        assert cap.summary()["skills"]["executions"] == 20
        assert cap.summary()["skills"]["successful_executions"] == 10


def test_pii_detections_by_pattern_and_tokens(telemetry_capture):
    tel = telemetry_capture.telemetry
    tel.security.pii_detected("email", 2)
    tel.security.pii_detected("credit_card")
    tel.security.tokens_created(3)
    sec = tel.get_security_metrics()
    assert (sec.pii_detections, sec.tokens_created) == (3, 3)
    assert sec.pattern_distribution == {"credit_card": 1, "email": 2}


def test_audit_event_becomes_an_event_on_the_active_span(telemetry_capture):
    tel = telemetry_capture.telemetry
    with tel.execution.run("python3") as ex:
        tel.security.audit("pii_detected", "email", "warning")
        ex.set_result(0)
    span = telemetry_capture.spans("execution.run")[0]
    (event,) = [e for e in span.events if e.name == "mcp_exec.audit"]
    assert dict(event.attributes) == {
        "mcp_exec.audit.event_type": "pii_detected",
        "mcp_exec.audit.pattern_type": "email",
        "mcp_exec.audit.severity": "warning",
    }
    (record,) = tel.get_security_metrics().audit_events
    assert (record.event_type, record.pattern_type, record.severity) == ("pii_detected", "email", "warning")


def test_audit_event_without_an_active_span_gets_a_short_span_of_its_own():
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from mcp_exec_telemetry import Telemetry

    # A session that was never entered has no session span, so no span is active.
    exporter = InMemorySpanExporter()
    tel = Telemetry(strict=True, history=False, span_processors=(SimpleSpanProcessor(exporter),))
    tel.security.audit("detokenized")
    tel.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.name == "security.audit"
    assert span.events[0].attributes["mcp_exec.audit.event_type"] == "detokenized"


def test_audit_buffer_keeps_the_last_hundred_events_while_the_counter_keeps_all(telemetry_capture):
    tel = telemetry_capture.telemetry
    for i in range(150):
        tel.security.audit("tokenized", "email")
    sec = tel.get_security_metrics()
    assert len(sec.audit_events) == 100
    assert sec.audit_event_count == 150


def test_protection_rate_is_tokenized_detections_over_detections(telemetry_capture):
    tel = telemetry_capture.telemetry
    tel.security.pii_detected("email", 4)
    tel.security.pii_tokenized("email", 3)  # one value reached the model untokenized
    sec = telemetry_capture.summary()["security"]
    assert (sec["pii_detected"], sec["tokenized_detections"], sec["protection_rate"]) == (4, 3, 0.75)


def test_the_tokenizer_reports_every_detection_as_tokenized(telemetry_capture):
    from mcp_exec_telemetry.pii import PiiTokenizer

    tok = PiiTokenizer(telemetry=telemetry_capture.telemetry)
    text, _ = tok.tokenize("mail jane@example.com and jane@example.com, card 4111 1111 1111 1111")
    assert "jane@example.com" not in text
    sec = telemetry_capture.summary()["security"]
    assert sec["patterns"] == {"credit_card": 1, "email": 2}
    assert (sec["tokenized_detections"], sec["tokens_created"], sec["protection_rate"]) == (3, 2, 1.0)
