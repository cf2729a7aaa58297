"""PII-safe by construction: no generated PII value survives into anything the SDK exports.

Over 500 values of every PII type are pushed through every string the public API accepts
(keywords, languages, operation kinds, skill names, pattern types, audit fields, error messages,
span attributes set through handles, resource attributes), then everything is exported: spans and
metrics through the in-memory path, the JSON summary, the Prometheus text, the history file, and
OTLP over gRPC and HTTP to a receiver. The exported bytes hold none of the raw values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcp_exec_telemetry import MetricsCollector, Telemetry, observe
from mcp_exec_telemetry.testing import capture
from tests.pii_corpus import samples
from tests.servers import OtlpReceiver

SAMPLES = samples(20261127, 75)


def test_the_corpus_is_large_and_covers_every_type():
    assert len(SAMPLES) >= 500
    assert {s.type for s in SAMPLES} == {"email", "phone_number", "ssn", "credit_card", "ip_address", "api_key", "auth_token", "private_key", "iban", "crypto_wallet"}


def _push_everything(tel: Telemetry, text: str, value: str) -> None:
    """Every public string input, fed the PII text or the bare value.

    A secret known only by its context (``password: <random string>``) is not PII on its own, so
    such samples go through every channel in their context form.
    """
    with tel.discovery.search(f"customer {text}") as q:
        q.set_results(1)
        q.span.set_attribute("app.note", text)
        q.span.set_attribute("app.values", [value, "ok"])
    with tel.execution.run(value) as ex:
        ex.set_result(0)
    try:
        with tel.execution.run("python3") as ex:
            raise RuntimeError(f"tool failed for {text}")
    except RuntimeError:
        pass
    with tel.sdk.generate(2) as g:
        g.set_result(10)
        g.span.add_event("generated", {"detail": text})
    with tel.filtering.operation(value, 100) as f:
        f.set_output(10)
    tel.skills.save(value, value)
    with tel.skills.run(value):
        pass
    tel.skills.delete(value)
    tel.security.pii_detected(value, 1)
    tel.security.audit(value, value, value)
    tel.security.audit("tokenized", value, "info")


def _bare(sample) -> str:
    """The value alone when it identifies itself as PII, else the value in its context."""
    return sample.value if sample.template == "{v}" else sample.text


def _raw_values_in(blob: str | bytes) -> list[str]:
    if isinstance(blob, bytes):
        return [s.value for s in SAMPLES if s.value.encode() in blob]
    return [s.value for s in SAMPLES if s.value in blob]


def test_in_memory_spans_metrics_summary_prometheus_and_history_hold_no_raw_value(tmp_path: Path):
    with capture(strict=False, history=tmp_path, resource_attributes={"customer.email": SAMPLES[0].value}) as cap:
        tel = cap.telemetry
        for s in SAMPLES:
            _push_everything(tel, s.text, _bare(s))
        collector = MetricsCollector(tel)
        for s in SAMPLES[:100]:
            collector.record_discovery_query(s.text, "full")
            collector.record_discovery_response_time(3, 1)
            collector.record_skill_created(_bare(s), "python3")
            collector.record_skill_execution(_bare(s), 2)
            collector.record_pii_detection(_bare(s))
            collector.record_audit_event(_bare(s), _bare(s), "info")
            collector.record_filtering_operation(_bare(s), 10, 5, 1)
        prometheus_text = tel.export_prometheus()
        summary_text = json.dumps(tel.summary())
        metrics_text = repr(cap.metrics())
    spans = cap.spans()
    assert len(spans) > 3 * len(SAMPLES)
    spans_text = "\n".join(s.to_json() for s in spans)
    from mcp_exec_telemetry.history import DB_FILE, scan

    assert len(scan(tmp_path).sessions) == 1
    history_text = b"".join(p.read_bytes() for p in tmp_path.glob(DB_FILE + "*")).decode("latin-1")  # the database's every byte

    for name, blob in [("spans", spans_text), ("metrics", metrics_text), ("summary", summary_text),
                       ("prometheus", prometheus_text), ("history", history_text)]:
        leaked = _raw_values_in(blob)
        assert leaked == [], f"{len(leaked)} raw PII values in the exported {name}, e.g. {leaked[:3]}"
    # The scrubbing really ran (the values were there to be redacted) and it was counted.
    assert "[REDACTED:email]" in spans_text and "[REDACTED:credit_card]" in spans_text
    assert "[REDACTED:ip_address]" in prometheus_text or "[REDACTED:ssn]" in prometheus_text
    redactions = {p.attributes["type"]: p.value for p in cap.metric_points("sdk.redactions")}
    assert set(redactions) >= {"email", "phone_number", "ssn", "credit_card", "ip_address", "api_key", "auth_token"}


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_bytes_hold_no_raw_value(protocol):
    with OtlpReceiver() as rx:
        endpoint = rx.grpc_endpoint if protocol == "grpc" else rx.http_endpoint
        with observe(otlp_endpoint=endpoint, otlp_protocol=protocol, history=False, export_interval_ms=3_600_000,
                     service_name="agent", resource_attributes={"owner": SAMPLES[1].value}) as tel:
            for s in SAMPLES:
                _push_everything(tel, s.text, _bare(s))
        rx.wait_for_spans(len(SAMPLES))
        raw = rx.raw_bytes()
        assert len(raw) > 100_000
        assert _raw_values_in(raw) == []
        assert b"[REDACTED:email]" in raw
        # Safe identifiers stay: trace ids are intact (every step span shares the session's trace).
        spans = rx.spans()
        session = [s for s in spans if s.name == "session"][0]
        assert all(s.trace_id == session.trace_id for s in spans if s.name == "discovery.search")


def test_allow_list_keeps_an_approved_value_and_extra_patterns_add_types():
    allowed = next(s for s in SAMPLES if s.type == "email").value
    with capture(strict=False, scrub_allow=(allowed,), scrub_patterns={"employee_id": r"EMP-\d{6}"}) as cap:
        with cap.telemetry.discovery.search(f"{allowed} and EMP-123456") as q:
            q.set_results(1)
    (span,) = cap.spans("discovery.search")
    assert span.attributes["mcp_exec.discovery.keyword"] == f"{allowed} and [REDACTED:employee_id]"


def test_scrubbing_can_be_turned_off_for_trusted_pipelines():
    with capture(scrub=False) as cap:
        with cap.telemetry.discovery.search("jane@example.com") as q:
            q.set_results(1)
    assert cap.spans("discovery.search")[0].attributes["mcp_exec.discovery.keyword"] == "jane@example.com"
