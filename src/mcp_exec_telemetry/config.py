"""Configuration of a telemetry session: constructor arguments, with ``OTEL_*`` variables as defaults.

Every option can be passed to :func:`mcp_exec_telemetry.observe` as a keyword argument; the
OpenTelemetry environment variables fill in what the caller leaves out, as OpenTelemetry users expect.
"""

# Annotations here are evaluated, not strings (no ``from __future__ import annotations``): ``@dataclass``
# matches every string annotation against ``ClassVar`` / ``InitVar`` patterns at import.

import logging
import math
import os
import time
import urllib.parse
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping

from .records import _FACTORY, _record_eq, _record_repr

__all__ = ["TelemetryConfig"]

_logger = logging.getLogger("mcp_exec_telemetry")


def _valid_namespace(name: object) -> bool:
    """``[a-zA-Z][a-zA-Z0-9_]{0,62}``: the first part of every instrument name, which OpenTelemetry
    wants to start with a letter (no regex compiled for it)."""
    return isinstance(name, str) and name.isascii() and name.isidentifier() and name[0] != "_" and len(name) <= 63


def _check_components(option: str, value: Any, methods: tuple[str, ...]) -> None:
    """``value`` is a list or tuple of objects with ``methods`` (an OpenTelemetry span processor or
    metric exporter): anything else would fail on the first span or export, far from its cause."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{option} must be a list or tuple, got {value!r}")
    for item in value:
        missing = [m for m in methods if not callable(getattr(item, m, None))]
        if missing:
            raise ValueError(f"{option} holds {item!r}, which has no {', '.join(missing)}")


PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_PROTOCOL = "grpc"
DEFAULT_EXPORT_INTERVAL_MS = 60_000.0
DEFAULT_PROMETHEUS_PORT = 9464
DEFAULT_OTLP_ENDPOINTS = {"grpc": "http://localhost:4317", "http/protobuf": "http://localhost:4318"}
"""OpenTelemetry's default collector endpoint for each protocol."""


def _bad_env(name: str, raw: str, why: str, default: Any) -> None:
    """One warning for an ``OTEL_*`` value we cannot use: the variable, why, and the default used instead.

    An environment value is deployment configuration, not code: a typo there must not stop the
    agent, so the OpenTelemetry default is used (explicit keyword arguments still raise ``ValueError``).
    """
    _logger.warning("mcp-exec-telemetry: ignoring %s=%r (%s); using the OpenTelemetry default %s", name, raw, why, default)


def _env_bool(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() == "true"


def _env_positive_ms(name: str, default: float) -> float:
    """A positive number of milliseconds from ``name``; ``default`` (with a warning) when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        _bad_env(name, raw, "not a number", f"{default:g}")
        return default
    if not (math.isfinite(value) and value > 0):
        _bad_env(name, raw, "must be a positive number of milliseconds", f"{default:g}")
        return default
    return value


def _env_port(name: str, default: int) -> int:
    """A TCP port (0 to 65535) from ``name``; ``default`` (with a warning) when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        _bad_env(name, raw, "not a port number", default)
        return default
    if not 0 <= port <= 65535:
        _bad_env(name, raw, "a port is 0 to 65535", default)
        return default
    return port


def endpoint_problem(url: str) -> str | None:
    """Why the OTLP exporters would reject ``url`` (a URL that does not parse), or None when they take it."""
    try:
        urllib.parse.urlsplit(url).port  # .port raises ValueError for a port out of range or not a number
    except ValueError as exc:
        return str(exc) or "not a URL"
    return None


# Variables OpenTelemetry's own classes read at construction, where a bad value raises (span limits,
# the batch span processor's sizes, gRPC compression) or logs a traceback (the schedule delay).
_SPAN_LIMIT_ENV = {
    # variable: (SpanLimits argument, OpenTelemetry's default; None is "no limit")
    "OTEL_ATTRIBUTE_COUNT_LIMIT": ("max_attributes", 128),
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("max_attribute_length", None),
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": ("max_span_attributes", 128),
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": ("max_span_attribute_length", None),
    "OTEL_SPAN_EVENT_COUNT_LIMIT": ("max_events", 128),
    "OTEL_SPAN_LINK_COUNT_LIMIT": ("max_links", 128),
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": ("max_event_attributes", 128),
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": ("max_link_attributes", 128),
}
_BSP_ENV = {
    # variable: (BatchSpanProcessor argument, OpenTelemetry's default)
    "OTEL_BSP_MAX_QUEUE_SIZE": ("max_queue_size", 2048),
    "OTEL_BSP_SCHEDULE_DELAY": ("schedule_delay_millis", 5000),
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": ("max_export_batch_size", 512),
}


def span_limits_from_env() -> Any | None:
    """``SpanLimits`` for the tracer provider, or None when every ``OTEL_*_LIMIT`` value is usable.

    The SDK raises ``ValueError`` out of ``TracerProvider()`` for a limit that is not a
    non-negative integer; such a value is warned about and its default passed explicitly (the
    usable ones are still read from the environment by the SDK).
    """
    from opentelemetry.sdk.trace import SpanLimits

    explicit: dict[str, Any] = {}
    for name, (argument, default) in _SPAN_LIMIT_ENV.items():
        raw = os.environ.get(name)
        if raw is None or raw.strip() == "":  # unset, or "" (OpenTelemetry's "no limit")
            continue
        try:
            ok = int(raw.strip()) >= 0
        except ValueError:
            ok = False
        if not ok:
            _bad_env(name, raw, "must be a non-negative integer", "no limit" if default is None else default)
            explicit[argument] = SpanLimits.UNSET if default is None else default
    return SpanLimits(**explicit) if explicit else None


def batch_span_options_from_env() -> dict[str, int]:
    """Explicit ``BatchSpanProcessor`` sizes from ``OTEL_BSP_*``, each bad value replaced by its default.

    The SDK raises ``ValueError`` for a size that is not positive or a batch larger than the queue,
    and logs a traceback for a value that is not a number; passing the sizes explicitly avoids both.
    """
    options: dict[str, int] = {}
    for name, (argument, default) in _BSP_ENV.items():
        raw = os.environ.get(name, "").strip()
        value = default
        if raw:
            try:
                value = int(raw)
            except ValueError:
                _bad_env(name, raw, "not an integer", default)
                value = default
            else:
                if value <= 0:
                    _bad_env(name, raw, "must be positive", default)
                    value = default
        options[argument] = value
    if options["max_export_batch_size"] > options["max_queue_size"]:
        used = min(_BSP_ENV["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"][1], options["max_queue_size"])
        raw = os.environ.get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", str(options["max_export_batch_size"]))
        _bad_env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", raw.strip(), f"larger than the queue ({options['max_queue_size']} spans)", used)
        options["max_export_batch_size"] = used
    return options


def grpc_compression_from_env(signal_variable: str, warned: set[str]) -> Any | None:
    """The compression for one gRPC exporter, or None to let it read the environment itself.

    The gRPC exporters raise out of their constructor for any ``OTEL_EXPORTER_OTLP_*COMPRESSION``
    value but ``gzip``, including ``none``, which the OpenTelemetry specification allows. The
    signal's own variable wins over ``OTEL_EXPORTER_OTLP_COMPRESSION``, as in the exporters. A bad
    value is warned about once per name in ``warned`` (the session's exporters share the variable).
    """
    from grpc import Compression

    for name in (signal_variable, "OTEL_EXPORTER_OTLP_COMPRESSION"):
        raw = os.environ.get(name)
        if raw is None:
            continue
        value = raw.strip().lower()
        if value == "gzip":
            return Compression.Gzip
        if value not in ("", "none") and name not in warned:
            warned.add(name)
            _bad_env(name, raw, "expected gzip or none", "none")
        return Compression.NoCompression
    return None


@dataclass(init=False, repr=False, eq=False)
class TelemetryConfig:
    """Everything a :class:`~mcp_exec_telemetry.Telemetry` needs to build its providers and readers."""

    # As for the records: ``__init__`` is written out below and ``__repr__`` / ``__eq__`` are the
    # records' shared ones, what @dataclass would generate, without generating and compiling them
    # when the module loads (1.5 ms in every process that imports ``observe``).
    # ``tests/test_records.py`` checks the written-out ``__init__`` against the generated one.
    __repr__ = _record_repr
    __eq__ = _record_eq

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
    """``grpc`` or ``http/protobuf``; ``OTEL_EXPORTER_OTLP_PROTOCOL`` or ``grpc`` when unset
    (``http/json``, which OpenTelemetry Python cannot send, falls back to ``http/protobuf`` with a warning)."""
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
    handle_signals: bool = True
    """On SIGTERM or SIGHUP (``docker stop``, Kubernetes, a closing terminal), close, save and flush the
    session before the process ends with that signal; only where the host left the default
    disposition (a handler of the host's own stays in place). ``False`` leaves signals alone."""
    thread_pool_context: bool = True
    """Run ``ThreadPoolExecutor`` tasks in the OpenTelemetry context current at ``submit()``, so steps
    in worker threads nest under the span that submitted them (see :func:`propagate_context_to_thread_pools`)."""

    def __init__(
        self,
        service_name: str | None = None,
        namespace: str = "mcp_exec",
        resource_attributes: Mapping[str, Any] = _FACTORY,
        prometheus: bool | int = False,
        prometheus_host: str = "127.0.0.1",
        otlp_endpoint: str | None = None,
        otlp_protocol: str | None = None,
        otlp_headers: Mapping[str, str] | None = None,
        export_interval_ms: float | None = None,
        export_timeout_ms: float = 5_000.0,
        set_global: bool = False,
        strict: bool = False,
        cardinality_limit: int = 200,
        recent_limit: int = 100,
        bytes_per_token: float = 4.0,
        exemplars: bool = False,
        disabled: bool | None = None,
        clock: Callable[[], int] = time.time_ns,
        history: bool | str | os.PathLike[str] = True,
        scrub: bool = True,
        scrub_allow: tuple[str, ...] = (),
        scrub_patterns: Mapping[str, str] | None = None,
        span_processors: tuple[Any, ...] = (),
        metric_exporters: tuple[Any, ...] = (),
        handle_signals: bool = True,
        thread_pool_context: bool = True,
    ) -> None:
        self.service_name = service_name
        self.namespace = namespace
        self.resource_attributes = {} if resource_attributes is _FACTORY else resource_attributes
        self.prometheus = prometheus
        self.prometheus_host = prometheus_host
        self.otlp_endpoint = otlp_endpoint
        self.otlp_protocol = otlp_protocol
        self.otlp_headers = otlp_headers
        self.export_interval_ms = export_interval_ms
        self.export_timeout_ms = export_timeout_ms
        self.set_global = set_global
        self.strict = strict
        self.cardinality_limit = cardinality_limit
        self.recent_limit = recent_limit
        self.bytes_per_token = bytes_per_token
        self.exemplars = exemplars
        self.disabled = disabled
        self.clock = clock
        self.history = history
        self.scrub = scrub
        self.scrub_allow = scrub_allow
        self.scrub_patterns = scrub_patterns
        self.span_processors = span_processors
        self.metric_exporters = metric_exporters
        self.handle_signals = handle_signals
        self.thread_pool_context = thread_pool_context

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "TelemetryConfig":
        """Build a config from keyword arguments, rejecting unknown names with a clear error."""
        known = {f.name for f in fields(cls) if f.init}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown telemetry option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        cfg = cls(**kwargs)
        cfg.resolve()
        return cfg

    def resolve(self) -> None:
        """Fill unset values from the environment and validate the rest."""
        if not _valid_namespace(self.namespace):
            raise ValueError(f"namespace must be a letter then at most 62 letters, digits or underscores ([a-zA-Z][a-zA-Z0-9_]*), got {self.namespace!r}")
        if self.disabled is None:
            self.disabled = _env_bool("OTEL_SDK_DISABLED")
        if self.service_name is None:
            self.service_name = os.environ.get("OTEL_SERVICE_NAME") or None
        # Values from OTEL_* variables: a bad one is warned about and replaced by OpenTelemetry's
        # default. Values passed as arguments: a bad one raises ValueError below.
        if self.otlp_protocol is None:
            raw = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
            self.otlp_protocol = raw or DEFAULT_PROTOCOL
            if raw and raw not in PROTOCOLS:
                # http/json is legal OpenTelemetry, but the Python exporters send protobuf only;
                # a collector's OTLP/HTTP endpoint accepts both.
                self.otlp_protocol = "http/protobuf" if raw == "http/json" else DEFAULT_PROTOCOL
                _bad_env("OTEL_EXPORTER_OTLP_PROTOCOL", raw, "OpenTelemetry Python sends OTLP as protobuf only" if raw == "http/json" else "expected grpc or http/protobuf", self.otlp_protocol)
        if self.otlp_protocol not in PROTOCOLS:
            raise ValueError(f"otlp_protocol must be 'grpc' or 'http/protobuf', got {self.otlp_protocol!r}")
        if self.otlp_endpoint is None:
            for name in ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
                raw = os.environ.get(name, "").strip()
                if raw:
                    why = endpoint_problem(raw)
                    self.otlp_endpoint = raw if why is None else DEFAULT_OTLP_ENDPOINTS[self.otlp_protocol]
                    if why is not None:
                        _bad_env(name, raw, why, self.otlp_endpoint)
                    break
        elif not isinstance(self.otlp_endpoint, str) or endpoint_problem(self.otlp_endpoint):
            why = endpoint_problem(self.otlp_endpoint) if isinstance(self.otlp_endpoint, str) else "not a str"
            raise ValueError(f"otlp_endpoint must be a URL, got {self.otlp_endpoint!r}: {why}")
        if self.export_interval_ms is None:
            self.export_interval_ms = _env_positive_ms("OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_EXPORT_INTERVAL_MS)
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
        p = self.prometheus
        if p is not None and not isinstance(p, bool) and (not isinstance(p, int) or not 0 <= p <= 65535):
            raise ValueError(f"prometheus must be True, False or a port from 0 to 65535, got {p!r}")
        _check_components("span_processors", self.span_processors, ("on_start", "on_end", "shutdown", "force_flush"))
        _check_components("metric_exporters", self.metric_exporters, ("export", "shutdown", "force_flush"))

    @property
    def prometheus_port(self) -> int | None:
        """The port to serve ``/metrics`` on, or ``None`` when Prometheus serving is off."""
        if self.prometheus is True:
            return _env_port("OTEL_EXPORTER_PROMETHEUS_PORT", DEFAULT_PROMETHEUS_PORT)
        if self.prometheus is False or self.prometheus is None:
            return None
        return int(self.prometheus)
