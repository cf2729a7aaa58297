"""Structural leaks: a value the detector knows must not leave by a path the scrubber does not walk.

Each test pushes a known-PII value through one shape the scrubbing stage once skipped -- a bytes
attribute, a nested mapping in a log record, a label folded to lower case before scrubbing, the
resource and the in-process ``get_*_metrics()`` records -- and reads what really left: the
in-memory span exporter, OTLP bytes received over gRPC and HTTP, the Prometheus text, the JSON
summary and the history database.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mcp_exec_telemetry import observe
from mcp_exec_telemetry.logs import otel_logging
from mcp_exec_telemetry.testing import capture
from tests.servers import OtlpReceiver

EMAIL = "jane.roe@example.com"
AWS = "AKIAIOSFODNN7EXAMPLE"
CARD = "4111 1111 1111 1111"

def _history_bytes(root: Path) -> bytes:
    """Every byte of the session history database (one session): a value is found in it whatever the layout."""
    from mcp_exec_telemetry.history import DB_FILE, scan

    assert len(scan(root).sessions) == 1
    return b"".join(p.read_bytes() for p in root.glob(DB_FILE + "*"))



def _forms(value: str) -> list[str]:
    """Every spelling under which a value would still be a leak."""
    return [value, value.lower(), value.upper(), value.replace(" ", "")]


def _leaks(blob: str | bytes, *values: str) -> list[str]:
    found = []
    for v in values:
        for form in _forms(v):
            needle = form.encode() if isinstance(blob, bytes) else form
            if needle in blob:
                found.append(form)
    return found


# --- 1. bytes attribute values --------------------------------------------------------------


def test_bytes_attribute_values_and_sequences_of_bytes_are_scrubbed_in_memory():
    with capture(strict=False) as cap:
        with cap.telemetry.execution.run("python3") as ex:
            ex.span.set_attribute("payload", f"to {EMAIL}".encode())
            ex.span.set_attribute("payloads", [b"ok", CARD.encode()])
            ex.span.set_attribute("binary", b"\xff\xfe" + EMAIL.encode() + b"\x00")
            ex.span.add_event("sent", {"body": EMAIL.encode()})
            ex.set_result(0)
    (span,) = cap.spans("execution.run")
    assert span.attributes["payload"] == b"to [REDACTED:email]"
    assert tuple(span.attributes["payloads"]) == (b"ok", b"[REDACTED:credit_card]")
    # Bytes that are not UTF-8 keep their other bytes exactly.
    assert span.attributes["binary"] == b"\xff\xfe[REDACTED:email]\x00"
    assert span.events[0].attributes["body"] == b"[REDACTED:email]"
    assert _leaks(repr(span.attributes) + repr(span.events[0].attributes), EMAIL, CARD) == []


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_bytes_attribute_values_leave_scrubbed_over_otlp(protocol):
    with OtlpReceiver() as rx:
        endpoint = rx.grpc_endpoint if protocol == "grpc" else rx.http_endpoint
        with observe(otlp_endpoint=endpoint, otlp_protocol=protocol, history=False, export_interval_ms=3_600_000) as tel:
            with tel.execution.run("python3") as ex:
                ex.span.set_attribute("payload", EMAIL.encode())
                ex.set_result(0)
        (span,) = rx.wait_for_spans(1, name="execution.run")
        raw = rx.raw_bytes()
    assert span.attributes["payload"] == b"[REDACTED:email]"
    assert _leaks(raw, EMAIL) == []


# --- 2. nested maps in logs, span attributes and events --------------------------------------


@pytest.mark.server
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_nested_log_extras_and_mapping_bodies_leave_scrubbed_over_otlp(protocol):
    app = logging.getLogger(f"app.pii.nested.{protocol}")
    app.setLevel(logging.INFO)
    with OtlpReceiver() as rx:
        endpoint = rx.grpc_endpoint if protocol == "grpc" else rx.http_endpoint
        with observe(otlp_endpoint=endpoint, otlp_protocol=protocol, history=False, export_timeout_ms=5000) as tel:
            with otel_logging(tel, app):
                app.warning("x", extra={"request": {"user": EMAIL, "cards": [CARD, {"aws": AWS}]}})
                app.warning({"user": EMAIL, "nested": {"key": AWS}})
                app.warning("bytes", extra={"blob": EMAIL.encode()})
        records = rx.wait_for(lambda: (lambda r: r if len(r) >= 3 else None)(rx.logs()), timeout=10)
        raw = rx.raw_bytes()
    assert _leaks(raw, EMAIL, CARD, AWS) == []
    first = records[0]
    request = first.attributes["request"]
    assert request["user"] == "[REDACTED:email]"
    assert request["cards"][0] == "[REDACTED:credit_card]" and request["cards"][1]["aws"] == "[REDACTED:api_key]"
    assert b"[REDACTED:email]" in raw


def test_nested_mappings_are_scrubbed_by_the_telemetry_scrubber():
    from mcp_exec_telemetry.scrubbing import TelemetryScrubber

    s = TelemetryScrubber()
    clean = {"a": {"b": ["x", 1, {"c": "ok"}]}}
    assert s.value(clean) is clean  # nothing to redact: the very same object
    out = s.value({"a": {"b": ["x", 1, {"c": EMAIL}]}, "t": (b"1", EMAIL.encode())})
    assert out == {"a": {"b": ["x", 1, {"c": "[REDACTED:email]"}]}, "t": (b"1", b"[REDACTED:email]")}
    # Keys are scrubbed too: a value used as a key is still a value.
    assert s.value({EMAIL: 1}) == {"[REDACTED:email]": 1}


# --- 3. labels folded to lower case before scrubbing -----------------------------------------


def test_a_label_derived_from_a_sensitive_value_is_never_exported_in_any_form(tmp_path: Path):
    with capture(strict=False, history=tmp_path) as cap:
        tel = cap.telemetry
        tel.security.pii_detected(AWS)
        tel.security.pii_tokenized(AWS)
        tel.security.audit("pii_detected", AWS, "info")
        tel.security.audit(AWS, "email", AWS)
        with tel.execution.run(AWS) as ex:
            ex.set_result(0)
        tel.execution.record(AWS, 3.0, "success", 0)
        with tel.filtering.operation(AWS, 100) as f:
            f.set_output(10)
        tel.security.pii_detected("EMAIL")  # an ordinary label still folds
        prometheus = tel.export_prometheus()
        summary = json.dumps(tel.summary())
        records = repr(tel.get_security_metrics()) + repr(tel.get_execution_metrics())
        metrics = repr(cap.metrics())
    spans = "\n".join(s.to_json() for s in cap.spans())
    history = _history_bytes(tmp_path)
    for name, blob in [("prometheus", prometheus), ("summary", summary), ("records", records),
                       ("metrics", metrics), ("spans", spans), ("history", history)]:
        assert _leaks(blob, AWS) == [], name
    # The folded ordinary label and the sensitive one (as "other") are both still counted.
    assert tel.get_security_metrics().pattern_distribution == {"other": 1, "email": 1}
    assert 'pattern="email"' in prometheus
    assert 'pattern="other"' in prometheus


def test_a_folded_sensitive_label_raises_in_strict_mode_without_echoing_it():
    with capture() as cap:
        with pytest.raises(ValueError) as err:
            cap.telemetry.security.pii_detected(AWS)
    assert AWS not in str(err.value) and AWS.lower() not in str(err.value)


@pytest.mark.server
def test_folded_labels_do_not_reach_otlp():
    with OtlpReceiver() as rx:
        with observe(otlp_endpoint=rx.grpc_endpoint, history=False, export_interval_ms=3_600_000) as tel:
            tel.security.pii_detected(AWS)
            tel.security.audit("pii_detected", AWS, "info")
            with tel.execution.run(AWS) as ex:
                ex.set_result(0)
        rx.wait_for_spans(1, name="execution.run")
        raw = rx.raw_bytes()
    assert _leaks(raw, AWS) == []


# --- 4. resource attributes and in-process records ------------------------------------------


def test_service_name_and_otel_resource_attributes_are_scrubbed_everywhere(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", f"owner={EMAIL},deployment.password=hunter2hunter2")
    with capture(strict=False, history=tmp_path, service_name=f"agent-{EMAIL}") as cap:
        tel = cap.telemetry
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        prometheus = tel.export_prometheus()
        summary = json.dumps(tel.summary())
        metrics = repr(cap.metrics())
    spans = cap.spans()
    resource = dict(spans[0].resource.attributes)
    history = _history_bytes(tmp_path)
    for name, blob in [("resource", repr(resource)), ("prometheus", prometheus), ("summary", summary),
                       ("metrics", metrics), ("history", history)]:
        assert _leaks(blob, EMAIL, "hunter2hunter2") == [], name
    assert resource["service.name"] == "[REDACTED:email]"  # "agent-jane.roe@..." is one address
    assert b"[REDACTED:email]" in history  # the database holds the service name, redacted
    assert resource["owner"] == "[REDACTED:email]"
    assert resource["deployment.password"] == "[REDACTED:api_key]"


def test_get_metrics_records_hold_scrubbed_keywords_and_names():
    with capture(strict=False) as cap:
        tel = cap.telemetry
        with tel.discovery.search(f"orders of {EMAIL}") as q:
            q.set_results(1)
        tel.discovery.record(f"card {CARD}", "full", 3.0, 1)
        tel.skills.save(f"skill-{AWS}", "python3")
        with tel.skills.run(f"skill-{AWS}"):
            pass
        blobs = [repr(tel.get_discovery_metrics()), repr(tel.get_skill_metrics()),
                 repr(tel.get_security_metrics()), repr(tel.get_execution_metrics())]
        queries = tel.get_discovery_metrics().recent_queries
    assert [q.keyword for q in queries] == ["orders of [REDACTED:email]", "card [REDACTED:credit_card]"]
    for blob in blobs:
        assert _leaks(blob, EMAIL, CARD, AWS) == []
