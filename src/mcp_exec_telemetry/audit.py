"""Audit events as span events: the single place where they are emitted.

An audit event (``pii_detected``, ``tokenized``, ``detokenized`` ...) is added as a span event named
``mcp_exec.audit`` to the active span, or to a short ``security.audit`` span of its own when no span
is recording. OpenTelemetry plans to move span events to log-based events; keeping emission behind
:func:`emit_audit_event` means that move touches one function.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from .records import AuditEvent

AUDIT_EVENT_NAME = "mcp_exec.audit"
AUDIT_SPAN_NAME = "security.audit"


def audit_attributes(event: AuditEvent) -> dict[str, Any]:
    return {
        "mcp_exec.audit.event_type": event.event_type,
        "mcp_exec.audit.pattern_type": event.pattern_type,
        "mcp_exec.audit.severity": event.severity,
    }


def emit_audit_event(tracer: trace.Tracer, event: AuditEvent, timestamp_ns: int | None = None) -> None:
    """Attach ``event`` to the active span, or to a short span of its own when none is recording."""
    attrs = audit_attributes(event)
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(AUDIT_EVENT_NAME, attrs, timestamp_ns)
        return
    own = tracer.start_span(AUDIT_SPAN_NAME)
    try:
        own.add_event(AUDIT_EVENT_NAME, attrs, timestamp_ns)
    finally:
        own.end()
