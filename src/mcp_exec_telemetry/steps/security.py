"""PII protection: how much PII the tokenizer caught before the model could see it.

Plain calls, not timed operations: detections per pattern type, tokens created, and audit events.
Only pattern types, counts and event kinds are recorded; a detected value never reaches telemetry.
Audit events become span events through :func:`~mcp_exec_telemetry.audit.emit_audit_event` and are
kept in the session's bounded ``audit_events`` buffer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Counter

from ..audit import emit_audit_event
from ..records import AuditEvent, utc
from ..views import SECURITY, SECURITY_AUDIT_EVENTS, SECURITY_DETECTIONS, SECURITY_TOKENIZED, SECURITY_TOKENS_CREATED
from ._base import AttributeSets, Step

if TYPE_CHECKING:  # pragma: no cover
    from .._session import Session


class SecurityStep(Step):
    """PII detections, tokens and audit events: ``tel.security.pii_detected("email", 2)``."""

    name = "security"
    SPECS = SECURITY
    _detections: Counter
    _tokens_created: Counter
    _tokenized: Counter
    _audit_events: Counter

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._pattern_attributes: AttributeSets[str] = AttributeSets(lambda pattern: {"pattern": pattern})
        """The attributes of detections and tokenized values: the PII ``pattern`` type alone."""
        self._audit_attributes: AttributeSets[tuple[str, str]] = AttributeSets(lambda key: {"event_type": key[0], "severity": key[1]})
        """The attributes of ``audit_events``: the event's ``event_type`` and ``severity``."""

    def _create_instruments(self) -> None:
        self._detections = self._counter(SECURITY_DETECTIONS)
        self._tokens_created = self._counter(SECURITY_TOKENS_CREATED)
        self._tokenized = self._counter(SECURITY_TOKENIZED)
        self._audit_events = self._counter(SECURITY_AUDIT_EVENTS)

    def pii_detected(self, pattern_type: str, count: int = 1) -> None:
        """Count ``count`` PII values of ``pattern_type`` (``email``, ``ssn``, ``credit_card`` ...)."""
        if self._on:
            self._count_pattern(self._detections, pattern_type, count, "security.pii_detected")

    def pii_tokenized(self, pattern_type: str, count: int = 1) -> None:
        """Count ``count`` detected values of ``pattern_type`` that were replaced by tokens.

        With :meth:`pii_detected` this gives the protection rate: tokenized / detected.
        """
        if self._on:
            self._count_pattern(self._tokenized, pattern_type, count, "security.pii_tokenized")

    def _count_pattern(self, counter: Counter, pattern_type: Any, count: Any, where: str) -> None:
        g = self._s.guard
        try:
            pattern = g.label(pattern_type, "pattern_type")
            n = g.count(count, "count")
            self._s.begin("security")
            if n:
                self._buf.add(counter, n, self._pattern_attributes[pattern])
        except Exception as exc:
            g.contain(exc, where)

    def tokens_created(self, n: int) -> None:
        """Count ``n`` tokens created to stand in for PII values."""
        if not self._on:
            return
        g = self._s.guard
        try:
            n = g.count(n, "n")
            self._s.begin("security")
            if n:
                self._buf.add(self._tokens_created, n)
        except Exception as exc:
            g.contain(exc, "security.tokens_created")

    def audit(self, event_type: str, pattern_type: str = "", severity: str = "info") -> None:
        """Record an audit event as a span event, a counter increment and a buffered record."""
        if not self._on:
            return
        s = self._s
        g = s.guard
        try:
            event_type = g.label(event_type, "event_type")
            pattern = g.label(pattern_type, "pattern_type") if pattern_type != "" else ""
            severity = g.label(severity, "severity")
            s.begin("security")
            now = s.clock()
            event = AuditEvent(event_type, pattern, utc(now), severity)
            self._buf.add(self._audit_events, 1, self._audit_attributes[event_type, severity])
            s.audit_events.append(event)
            emit_audit_event(s.tracer, event)
        except Exception as exc:
            g.contain(exc, "security.audit")
