"""Configuration of a telemetry session: constructor arguments, with ``OTEL_*`` variables as defaults.

Every option can be passed to :func:`mcp_exec_telemetry.observe` as a keyword argument; the
OpenTelemetry environment variables fill in what the caller leaves out, as OpenTelemetry users expect.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

__all__ = ["TelemetryConfig"]

_NAMESPACE_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,62}$")


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        return default


@dataclass
class TelemetryConfig:
    """Everything a :class:`~mcp_exec_telemetry.Telemetry` needs to build its providers and readers."""

    service_name: str | None = None
    """``service.name`` of the resource; ``OTEL_SERVICE_NAME`` or ``mcp-exec-agent`` when unset."""
    namespace: str = "mcp_exec"
    """First part of every instrument name: ``<namespace>.<step>.<measure>``."""
    resource_attributes: Mapping[str, Any] = field(default_factory=dict)
    """Extra resource attributes, merged over ``OTEL_RESOURCE_ATTRIBUTES``."""
    prometheus: bool | int = False
    """``True`` serves ``/metrics`` on ``prometheus_host:9464``; an int serves on that port (0 picks one)."""
    prometheus_host: str = "127.0.0.1"
    otlp_endpoint: str | None = None
    """OTLP endpoint; ``OTEL_EXPORTER_OTLP_ENDPOINT`` when unset. No endpoint, no OTLP export."""
    otlp_protocol: str | None = None
    """``grpc`` or ``http/protobuf``; ``OTEL_EXPORTER_OTLP_PROTOCOL`` or ``grpc`` when unset."""
    otlp_headers: Mapping[str, str] | None = None
    export_interval_ms: float | None = None
    """Metric push interval; ``OTEL_METRIC_EXPORT_INTERVAL`` or 60 000 ms when unset."""
    export_timeout_ms: float = 5_000.0
    """Upper bound on how long a flush at shutdown may wait for a collector."""
    set_global: bool = False
    """Also install the providers as OpenTelemetry's global ones (only if none is set yet)."""
    strict: bool = False
    """Raise ``ValueError`` on invalid input instead of dropping it (for tests)."""
    cardinality_limit: int = 200
    """Series kept per metric for open attributes (skill names); the rest fold into one overflow series."""
    recent_limit: int = 100
    """Records kept in each ``recent_*`` buffer and in ``audit_events``."""
    bytes_per_token: float = 4.0
    """Divisor turning bytes saved by filtering into estimated context tokens."""
    exemplars: bool = False
    """Attach trace exemplars to histogram points (costs a little on every record)."""
    disabled: bool | None = None
    """Record nothing at close to no cost; ``OTEL_SDK_DISABLED`` when unset."""
    clock: Callable[[], int] = time.time_ns
    """Wall clock in nanoseconds for session start and end and record timestamps (tests fake it)."""
    history: bool | str | os.PathLike[str] = True
    """Write the session's summary to the metrics history when it ends: ``True`` uses
    ``MCP_EXEC_METRICS_DIR`` or ``.mcp_exec/metrics``, a path uses that folder, ``False`` writes nothing."""
    scrub: bool = True
    """Replace PII values with ``[REDACTED:<type>]`` in everything exported (spans, logs, metrics, resource)."""
    scrub_allow: tuple[str, ...] = ()
    """Exact values the scrubbing stage never redacts."""
    scrub_patterns: Mapping[str, str] | None = None
    """Extra PII patterns for the scrubbing stage: ``{type: regex}``."""
    span_processors: tuple[Any, ...] = ()
    """Extra span processors added to this session's tracer provider; they see spans before scrubbing
    (use :meth:`Telemetry.add_span_exporter` for scrubbed spans)."""
    metric_exporters: tuple[Any, ...] = ()
    """Extra metric exporters that receive each periodic export, beside OTLP."""

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "TelemetryConfig":
        """Build a config from keyword arguments, rejecting unknown names with a clear error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown telemetry option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        cfg = cls(**kwargs)
        cfg.resolve()
        return cfg

    def resolve(self) -> None:
        """Fill unset values from the environment and validate the rest."""
        if not isinstance(self.namespace, str) or not _NAMESPACE_RE.match(self.namespace):
            raise ValueError(f"namespace must be an identifier ([a-zA-Z_][a-zA-Z0-9_]*), got {self.namespace!r}")
        if self.disabled is None:
            self.disabled = _env_bool("OTEL_SDK_DISABLED")
        if self.service_name is None:
            self.service_name = os.environ.get("OTEL_SERVICE_NAME") or None
        if self.otlp_endpoint is None:
            self.otlp_endpoint = (
                os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
                or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or None
            )
        if self.otlp_protocol is None:
            self.otlp_protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc").strip() or "grpc"
        if self.otlp_protocol not in ("grpc", "http/protobuf"):
            raise ValueError(f"otlp_protocol must be 'grpc' or 'http/protobuf', got {self.otlp_protocol!r}")
        if self.export_interval_ms is None:
            self.export_interval_ms = _env_float("OTEL_METRIC_EXPORT_INTERVAL", 60_000.0)
        if not self.export_interval_ms > 0:
            raise ValueError(f"export_interval_ms must be positive, got {self.export_interval_ms!r}")
        if not self.export_timeout_ms > 0:
            raise ValueError(f"export_timeout_ms must be positive, got {self.export_timeout_ms!r}")
        if isinstance(self.cardinality_limit, bool) or not isinstance(self.cardinality_limit, int) or self.cardinality_limit < 1:
            raise ValueError(f"cardinality_limit must be a positive int, got {self.cardinality_limit!r}")
        if isinstance(self.recent_limit, bool) or not isinstance(self.recent_limit, int) or self.recent_limit < 0:
            raise ValueError(f"recent_limit must be an int >= 0, got {self.recent_limit!r}")
        if not self.bytes_per_token > 0:
            raise ValueError(f"bytes_per_token must be positive, got {self.bytes_per_token!r}")

    @property
    def prometheus_port(self) -> int | None:
        """The port to serve ``/metrics`` on, or ``None`` when Prometheus serving is off."""
        if self.prometheus is True:
            return int(os.environ.get("OTEL_EXPORTER_PROMETHEUS_PORT", "9464"))
        if self.prometheus is False or self.prometheus is None:
            return None
        return int(self.prometheus)
