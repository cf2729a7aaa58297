"""Structured logging: the design's session-metrics record, a JSON formatter, and routing into OpenTelemetry logs.

The design logs one record per session with metrics as fields (``target: "mcp_metrics"``)::

    log_session_metrics(tel)
    # logger "mcp_metrics", INFO, "MCP execution session metrics",
    # discovery_queries=12 discovery_hit_rate=0.92 execution_success_rate=0.875
    # estimated_token_savings=8500 ...

Fields are ordinary ``logging`` record attributes (``extra=``), so any handler sees them:
:class:`JsonFormatter` writes them as JSON keys, and OpenTelemetry's ``LoggingHandler`` (from
:func:`otel_logging`, when OTLP is on) sends them as log attributes with the active trace and
span ids.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from opentelemetry import trace

if TYPE_CHECKING:  # pragma: no cover
    from .telemetry import Telemetry

__all__ = ["JsonFormatter", "SESSION_LOGGER", "SESSION_MESSAGE", "log_session_metrics", "otel_logging", "session_fields", "structured_fields"]

SESSION_LOGGER = "mcp_metrics"
SESSION_MESSAGE = "MCP execution session metrics"

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


def _summary_of(source: "Telemetry | Mapping[str, Any]") -> Mapping[str, Any]:
    return source if isinstance(source, Mapping) else source.summary()


def session_fields(source: "Telemetry | Mapping[str, Any]") -> dict[str, Any]:
    """The session-metrics record's fields, from a Telemetry or a JSON summary."""
    s = _summary_of(source)
    d, e, g, f, k, sec = (s.get(x, {}) for x in ("discovery", "execution", "sdk", "filtering", "skills", "security"))
    return {
        "service_name": s.get("service_name", ""),
        "session_duration_ms": s.get("session_duration_ms", 0),
        "discovery_queries": d.get("total_queries", 0),
        "discovery_hit_rate": d.get("hit_rate", 0.0),
        "discovery_avg_response_time_ms": d.get("avg_response_time_ms", 0.0),
        "execution_count": e.get("total_executions", 0),
        "execution_success_rate": e.get("success_rate", 0.0),
        "execution_avg_duration_ms": e.get("avg_duration_ms", 0.0),
        "execution_timeouts": e.get("timeouts", 0),
        "sdk_generations": g.get("total_generations", 0),
        "filtering_operations": f.get("total_operations", 0),
        "filtering_reduction_ratio": f.get("avg_reduction_ratio", 0.0),
        "estimated_token_savings": f.get("estimated_tokens_saved", 0),
        "skill_executions": k.get("executions", 0),
        "skill_reuse_ratio": k.get("reuse_ratio", 0.0),
        "pii_detections": sec.get("pii_detected", 0),
        "pii_tokens_created": sec.get("tokens_created", 0),
    }


def log_session_metrics(
    source: "Telemetry | Mapping[str, Any]", logger: logging.Logger | str | None = None, level: int = logging.INFO
) -> dict[str, Any]:
    """Log the design's "MCP execution session metrics" record with its fields; returns the fields."""
    fields = session_fields(source)
    log = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger or SESSION_LOGGER)
    log.log(level, SESSION_MESSAGE, extra=fields)
    return fields


def structured_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a record carries beyond the standard ones (what ``extra=`` added)."""
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, every structured field, trace ids.

    ``trace_id`` and ``span_id`` are those of the span active when the record is formatted (a
    handler formats in the logging thread), so JSON logs join the session's traces.
    """

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in structured_fields(record).items():
            out.setdefault(key, _jsonable(value))
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            out["trace_id"] = format(ctx.trace_id, "032x")
            out["span_id"] = format(ctx.span_id, "016x")
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"))


class _NotFromOpenTelemetry(logging.Filter):
    """Keep the exporters' own warnings out of the exporter (a failing export must not feed itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith("opentelemetry")


@contextmanager
def otel_logging(tel: "Telemetry", logger: logging.Logger | str | None = None, level: int = logging.NOTSET) -> Iterator[logging.Handler | None]:
    """Route ``logger``'s records (the root logger by default) into the session's OTLP logs.

    Yields the handler, or None when the session has no OTLP endpoint (then nothing changes).
    Records get the trace and span ids of the span active when they are logged.
    """
    handler = tel.log_handler(level)
    if handler is None:
        yield None
        return
    handler.addFilter(_NotFromOpenTelemetry())
    target = logger if isinstance(logger, logging.Logger) else logging.getLogger(logger)
    target.addHandler(handler)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        try:
            handler.flush()
        except Exception:
            pass
