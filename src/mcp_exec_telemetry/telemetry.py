"""The session: providers, readers and the six steps, wired together by :func:`observe`.

``observe()`` builds a private ``MeterProvider`` and ``TracerProvider`` (the host's global ones stay
as they are unless ``set_global=True``), one in-memory reader that every export reads from, and the
step facades. It opens a ``session`` span that parents every step's span, and on exit flushes and
shuts everything down within the configured export timeout, also when the block raised.

The session's end is never lost: ``with tel:`` nested in ``with tel:`` is one session (it ends at
the outer exit); steps still open at the end are recorded as ``abandoned`` (one warning); records
made after the end are dropped and counted; SIGTERM and SIGHUP close, save and flush the session
before the process ends with the signal; a forked ``multiprocessing`` worker saves its own session
when it exits.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
import uuid
import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import INVALID_SPAN, Span

from . import _atfork  # noqa: F401  (registers the at-fork hook)
from ._session import DroppedAfterClose, Session, propagate_context_to_thread_pools, restore_context
from ._version import __version__
from .config import TelemetryConfig, batch_span_options_from_env, grpc_compression_from_env, span_limits_from_env
from ._exporters import CollectorGate, ExportStats, GuardedMetricExporter, SpanEndCounter, guarded_log_exporter, stop_http_server
from ._exporters import serve_prometheus as _serve_prometheus
from .scrubbing import TelemetryScrubber
from .readers import PushReader, prometheus_bridge
from .steps import STEP_CLASSES, step_class
from .views import STEP_INSTRUMENTS, InstrumentSpec, build_views

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import LogRecordExporter

    from . import summary as _summary
    from .records import DiscoveryMetrics, ExecutionMetrics, FilteringMetrics, SdkMetrics, SecurityMetrics, SkillMetrics
    from .steps import DiscoveryStep, ExecutionStep, FilteringStep, SdkStep, SecurityStep, SkillsStep

__all__ = ["Telemetry", "observe"]

_logger = logging.getLogger("mcp_exec_telemetry")
SCOPE = "mcp_exec_telemetry"
DEFAULT_SERVICE_NAME = "mcp-exec-agent"
SESSION_SPAN_NAME = "session"

DROPPED_SPEC = InstrumentSpec("sdk", "dropped_inputs", "counter", "{input}", "Inputs the telemetry SDK dropped as invalid", ("field", "reason"))
REDACTIONS_SPEC = InstrumentSpec("sdk", "redactions", "counter", "{value}", "PII values the scrubbing stage replaced before export", ("type",))


def _redactions_callback(scrubber: "TelemetryScrubber") -> Any:
    from opentelemetry.metrics import Observation

    def observe_redactions(options: Any) -> list[Any]:
        return [Observation(n, {"type": t}) for t, n in sorted(scrubber.redactions.items())]

    return observe_redactions


_RESOURCE_ENV = ("OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME", "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS")
_resources: dict[tuple[Any, ...], Resource] = {}


def _resource(cfg: TelemetryConfig) -> Resource:
    """The session's resource; the same object for the process's later sessions with the same inputs.

    ``Resource.create`` runs its detectors on a thread pool of its own at every call (two threads
    started and joined), which would otherwise be the largest part of an empty session's cost.
    """
    attrs: dict[str, Any] = {"telemetry.distro.name": "mcp-exec-telemetry", "telemetry.distro.version": __version__}
    attrs.update(cfg.resource_attributes)
    if cfg.service_name:
        attrs["service.name"] = cfg.service_name
    key = (os.getpid(), repr(sorted(attrs.items())), *(os.environ.get(name) for name in _RESOURCE_ENV))
    cached = _resources.get(key)
    if cached is not None:
        return cached
    resource = Resource.create(attrs)
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": DEFAULT_SERVICE_NAME}))
    if len(_resources) >= 16:
        _resources.clear()
    _resources[key] = resource
    return resource


class Telemetry:
    """One observed agent session: the step facades, the summary and the exports.

    Use it through :func:`observe`, or construct it and call :meth:`shutdown` yourself. The steps
    are attributes: ``discovery``, ``execution``, ``sdk``, ``filtering``, ``skills``, ``security``;
    each is built, and its code loaded, the first time it is used (see :meth:`__getattr__`).
    """

    discovery: DiscoveryStep
    execution: ExecutionStep
    sdk: SdkStep
    filtering: FilteringStep
    skills: SkillsStep
    security: SecurityStep
    resource: Resource
    """Set by ``_build``; a forked child's rebuild starts from the parent's."""

    def __init__(self, config: TelemetryConfig | None = None, **options: Any) -> None:
        if config is None:
            config = TelemetryConfig.from_kwargs(**options)
        elif options:
            raise TypeError("pass either a TelemetryConfig or keyword options, not both")
        self.config = config
        self.enabled = not config.disabled
        self._lock = threading.Lock()
        self._signal_previous: dict[int, Any] = {}
        """Dispositions our handler replaced, by signal (kept across fork: the child inherits the handler)."""
        self._build(in_forked_child=False)
        _LIVE.add(self)
        if self.enabled and config.thread_pool_context:
            try:
                propagate_context_to_thread_pools()
            except Exception as exc:  # pragma: no cover - never break the host over context propagation
                _logger.warning("mcp-exec-telemetry could not propagate context to thread pools: %r", exc)

    def _build(self, in_forked_child: bool) -> None:
        """Create providers, the reader, the steps and the exports (again, in a forked child)."""
        config = self.config
        self._closed = False
        self._closing = False
        self._depth = 0
        self._closed_event = threading.Event()
        self._shutdown_thread: int | None = None
        self._pending_signal: int | None = None
        self._forked_child = in_forked_child
        self._session_span: Span = INVALID_SPAN
        self._session_token: object | None = None
        self._session_ctx: Any = None
        self._push_readers: list[PushReader] = []
        self._prom_registry: Any = None
        self._prom_server: Any = None
        self._reader: InMemoryMetricReader | None = None
        self._final_data: MetricsData | None = None
        self._export_stats = ExportStats()
        self._batch_options: dict[str, int] | None = None
        """``BatchSpanProcessor`` sizes from ``OTEL_BSP_*``, read (and warned about) at the first batch exporter."""
        self._env_warned: set[str] = set()
        """``OTEL_*`` variables the session's exporters share and already warned about."""
        self.logger_provider: Any = None
        self.saved_path: Any = None
        self.meter_provider: MeterProvider | None = None
        self.tracer_provider: TracerProvider | None = None
        self.start_time_ns = config.clock()
        self.end_time_ns: int | None = None
        self._scrubber = TelemetryScrubber(config.scrub_allow, config.scrub_patterns) if config.scrub else None
        if in_forked_child:
            # Resource.create runs detectors on a thread pool, which must not be used right after fork.
            self.resource = self.resource.merge(Resource({"service.instance.id": str(uuid.uuid4()), "process.pid": os.getpid()}))
        else:
            self.resource = _resource(config)
        if self._scrubber is not None:
            self.resource = self._scrubber.resource(self.resource)

        meter = tracer = None
        if self.enabled:
            specs = [spec for specs in STEP_INSTRUMENTS.values() for spec in specs] + [DROPPED_SPEC]
            self._reader = InMemoryMetricReader()
            mp_kwargs: dict[str, Any] = {}
            if not config.exemplars:
                from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

                mp_kwargs["exemplar_filter"] = AlwaysOffExemplarFilter()
            self.meter_provider = MeterProvider(
                metric_readers=[self._reader],
                resource=self.resource,
                views=build_views(config.namespace, specs, config.cardinality_limit),
                **mp_kwargs,
            )
            self.tracer_provider = TracerProvider(resource=self.resource, span_limits=span_limits_from_env())
            for processor in config.span_processors:
                self.tracer_provider.add_span_processor(processor)
            meter = self.meter_provider.get_meter(SCOPE, __version__)
            tracer = self.tracer_provider.get_tracer(SCOPE, __version__)

        self._session = Session(config, meter, tracer, self.enabled)
        if self.enabled:
            dropped = meter.create_counter(DROPPED_SPEC.name(config.namespace), unit=DROPPED_SPEC.unit, description=DROPPED_SPEC.description)  # type: ignore[union-attr]
            self._session.guard.bind(lambda field, reason: dropped.add(1, {"field": field, "reason": reason}))
            if self._scrubber is not None:
                meter.create_observable_counter(  # type: ignore[union-attr]
                    REDACTIONS_SPEC.name(config.namespace),
                    callbacks=[_redactions_callback(self._scrubber)],
                    unit=REDACTIONS_SPEC.unit,
                    description=REDACTIONS_SPEC.description,
                )
        self._steps_lock = threading.RLock()
        for name in STEP_CLASSES:  # a forked child builds its own steps on first use
            self.__dict__.pop(name, None)

        if self.enabled:
            try:
                self._setup_exports(serve_prometheus=not in_forked_child)
            except Exception:
                self._teardown_exports(timeout_ms=config.export_timeout_ms)
                raise
            if config.set_global and not in_forked_child:
                self._install_global()

    def _after_fork_in_child(self) -> None:
        """In a forked child: fresh providers and steps, so nothing the parent recorded is counted twice.

        Locks held by the parent's threads at fork time are not reused; the child's spans still
        continue the parent's trace through the inherited context, under a session span of its own.
        Prometheus serving stays with the parent, which owns the port.
        """
        if self._closing or not self.enabled:
            return
        inherited_session = self._session_span is not INVALID_SPAN
        self._lock = threading.Lock()
        self._build(in_forked_child=True)
        if inherited_session:
            self.__enter__()
        # A multiprocessing worker (Process, Pool, ProcessPoolExecutor with "fork") ends in os._exit
        # after running multiprocessing's finalizers: close and save the child's session there, so
        # its records reach the history and the collector instead of vanishing with the process.
        # The worker clears the finalizers it inherited before it runs the after-fork callbacks,
        # so the finalizer is registered again from one of those.
        mp_util = sys.modules.get("multiprocessing.util")
        if mp_util is not None:
            _close_at_worker_exit(self)
            mp_util.register_after_fork(self, _close_at_worker_exit)

    # --- wiring ---------------------------------------------------------------------------

    def _setup_exports(self, serve_prometheus: bool = True) -> None:
        cfg = self.config
        stats = self._export_stats
        if cfg.otlp_endpoint:
            metric_exporter, span_exporter = _otlp_exporters(cfg, self._env_warned)
            # At shutdown the gate fails these exports at once if the collector refuses connections.
            gate = stats.gate = CollectorGate(str(cfg.otlp_endpoint))
            self._push_readers.append(PushReader(GuardedMetricExporter(metric_exporter, stats, gate), self.metrics_data, cfg.export_interval_ms, cfg.export_timeout_ms))  # type: ignore[arg-type]
            # The shutdown warning compares spans ended with spans this exporter delivered.
            self.tracer_provider.add_span_processor(SpanEndCounter(stats))  # type: ignore[union-attr]
            self._add_span_exporter(span_exporter, batch=True, stats=stats, gate=gate)
            # The OTLP log pipeline (provider, batch thread, exporter) is built by the first log_handler() call.
        for exporter in cfg.metric_exporters:
            self._push_readers.append(PushReader(GuardedMetricExporter(exporter, stats), self.metrics_data, cfg.export_interval_ms, cfg.export_timeout_ms))  # type: ignore[arg-type]
        port = cfg.prometheus_port
        if port is not None and serve_prometheus:
            self._prometheus_registry()
            self._prom_server = _serve_prometheus(port, cfg.prometheus_host, self._prom_registry)

    def add_span_exporter(self, exporter: Any, batch: bool = True) -> None:
        """Send this session's spans to ``exporter``, after the scrubbing stage.

        ``batch=True`` exports from a background thread with a bounded queue (what production
        wants); ``batch=False`` exports synchronously as each span ends (what tests want).
        """
        self._add_span_exporter(exporter, batch, stats=ExportStats())

    def _add_span_exporter(self, exporter: Any, batch: bool, stats: ExportStats, gate: CollectorGate | None = None) -> None:
        if not self.enabled or self.tracer_provider is None:
            return
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        from ._span_exporter import GuardedSpanExporter

        scrub = self._scrubber.span if self._scrubber is not None else None
        guarded = GuardedSpanExporter(exporter, stats, scrub, gate)
        if batch:
            if self._batch_options is None:
                self._batch_options = batch_span_options_from_env()
            sizes = self._batch_options
            processor: Any = BatchSpanProcessor(
                guarded,
                max_queue_size=sizes["max_queue_size"],
                schedule_delay_millis=sizes["schedule_delay_millis"],
                max_export_batch_size=sizes["max_export_batch_size"],
                export_timeout_millis=self.config.export_timeout_ms,
            )
        else:
            processor = SimpleSpanProcessor(guarded)
        self.tracer_provider.add_span_processor(processor)

    def _prometheus_registry(self) -> Any:
        if self._prom_registry is None:
            try:
                from prometheus_client import CollectorRegistry
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise RuntimeError("Prometheus export needs the 'prometheus' extra: pip install '.[prometheus]' from a checkout") from exc
            self._prom_registry = CollectorRegistry(auto_describe=True)
            self._prom_bridge = prometheus_bridge(self.metrics_data, self._prom_registry)
        return self._prom_registry

    def _install_global(self) -> None:
        if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            trace.set_tracer_provider(self.tracer_provider)  # type: ignore[arg-type]
        else:
            _logger.warning("set_global=True: a global tracer provider is already set; leaving it in place")
        if isinstance(otel_metrics.get_meter_provider(), otel_metrics._internal._ProxyMeterProvider):  # type: ignore[attr-defined]
            otel_metrics.set_meter_provider(self.meter_provider)  # type: ignore[arg-type]
        else:
            _logger.warning("set_global=True: a global meter provider is already set; leaving it in place")

    @property
    def prometheus_port(self) -> int | None:
        """The port ``/metrics`` is served on, when Prometheus serving is on."""
        return self._prom_server.server_address[1] if self._prom_server is not None else None

    @property
    def tracer(self) -> trace.Tracer:
        """This session's tracer, for spans of the host's own (they nest under the session span)."""
        return self._session.tracer if self._session.tracer is not None else trace.NoOpTracer()

    @property
    def meter(self) -> otel_metrics.Meter:
        return self._session.meter if self._session.meter is not None else otel_metrics.NoOpMeter(SCOPE)

    @property
    def session_span(self) -> Span:
        return self._session_span

    # --- session span -----------------------------------------------------------------------

    def __enter__(self) -> "Telemetry":
        """Open the session span (once: a nested ``with tel:`` joins the session already open)."""
        with self._lock:
            self._depth += 1
            if self._depth > 1 or self._closing:
                return self
        if self.enabled and self._session_span is INVALID_SPAN:
            try:
                self._session_span = self._session.tracer.start_span(SESSION_SPAN_NAME, attributes={"mcp_exec.namespace": self.config.namespace})
                self._session_ctx = trace.set_span_in_context(self._session_span)
                self._session_token = otel_context.attach(self._session_ctx)
            except Exception as exc:
                self._session.guard.contain(exc, "session span")
            self._install_signal_handlers()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        """End the session at the outermost ``with`` (an inner one only leaves it)."""
        with self._lock:
            self._depth = max(0, self._depth - 1)
            if self._depth > 0:
                return
        if exc is not None and self._session_span.is_recording():
            self._session_span.set_attribute("error.type", exc_type.__qualname__ if exc_type else type(exc).__qualname__)
            self._session_span.set_status(trace.Status(trace.StatusCode.ERROR))
        self.shutdown()

    # --- SIGTERM and SIGHUP -----------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        """Handle SIGTERM and SIGHUP where the default disposition is in place (or another session's handler).

        A handler of the host's own, or an ignored signal, is left exactly as it is. Only the main
        thread can install handlers; a session opened on another thread leaves signals alone.
        """
        if not self.config.handle_signals or threading.current_thread() is not threading.main_thread():
            return
        for name in ("SIGTERM", "SIGHUP"):
            sig = getattr(signal, name, None)
            if sig is None:
                continue
            try:
                current = _skip_ended_sessions(signal.getsignal(sig), sig)
                if current == self._on_signal:
                    continue
                if current is signal.SIG_DFL or isinstance(getattr(current, "__self__", None), Telemetry):
                    signal.signal(sig, self._on_signal)
                    self._signal_previous[sig] = current
            except (ValueError, OSError, TypeError) as exc:  # pragma: no cover - embedded interpreters
                _logger.debug("mcp-exec-telemetry left %s alone: %r", name, exc)

    def _uninstall_signal_handlers(self) -> None:
        """Put back what our handler replaced, unless the host has installed a handler since."""
        if not self._signal_previous or threading.current_thread() is not threading.main_thread():
            return
        for sig, previous in list(self._signal_previous.items()):
            try:
                if signal.getsignal(sig) == self._on_signal:
                    signal.signal(sig, _skip_ended_sessions(previous, sig))
                    del self._signal_previous[sig]
            except (ValueError, OSError, TypeError):  # pragma: no cover
                pass

    def _on_signal(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGHUP: close, save and flush the session, then let the signal end the process.

        The handler runs on the main thread between two bytecodes of the host, which may hold a lock
        the shutdown needs; so the shutdown runs on a thread of its own, and the wait for it is
        bounded (export timeout plus 2 s for the history). A signal that interrupts this thread's
        own shutdown is delivered again once that shutdown is done.
        """
        if self._shutdown_thread == threading.get_ident() and not self._closed_event.is_set():
            self._pending_signal = signum
            return
        if not self._closing:
            threading.Thread(target=self.shutdown, name="mcp-exec-telemetry-signal", daemon=True).start()
        self._closed_event.wait(self.config.export_timeout_ms / 1000.0 + 2.0)
        self._forward_signal(signum, frame)

    def _forward_signal(self, signum: int, frame: Any) -> None:
        """Hand ``signum`` to what our handler replaced: another session's handler, or the default action."""
        previous = self._signal_previous.pop(signum, signal.SIG_DFL)
        if previous is None:
            previous = signal.SIG_DFL
        try:
            signal.signal(signum, previous)
        except (ValueError, OSError, TypeError):  # pragma: no cover - not the main thread
            pass
        if callable(previous):
            previous(signum, frame)
            return
        if previous == signal.SIG_IGN:  # pragma: no cover - we never replace SIG_IGN
            return
        os.kill(os.getpid(), signum)  # the default action: the process ends with this signal's status
        time.sleep(1.0)
        os._exit(128 + signum)  # pragma: no cover - the signal is blocked in this thread

    # --- reading ----------------------------------------------------------------------------

    def _collect(self) -> MetricsData | None:
        """The in-memory reader's cumulative data; after shutdown, the final snapshot."""
        if self._closed or self._reader is None:
            return self._final_data
        self._session.flush()
        data = self._reader.get_metrics_data()
        return self._scrubber.metrics(data) if self._scrubber is not None else data

    def metrics_data(self) -> MetricsData | None:
        """A cumulative snapshot of every metric, with the derived series appended."""
        from .derived import with_derived

        return with_derived(self._collect(), self.config.namespace, self.config.bytes_per_token)

    def _points(self) -> _summary.Points:
        # The summaries' code loads with the first summary (at the session's end when it writes
        # the history): a process that never asks for one does not load it.
        from . import summary as _summary

        return _summary.Points(self._collect(), self.config.namespace)

    def _scrubbed(self, record: Any) -> Any:
        """In-process records follow the rule of everything exported: no detected value in them."""
        return self._scrubber.record(record) if self._scrubber is not None else record

    def get_discovery_metrics(self) -> DiscoveryMetrics:
        from . import summary as _summary

        return self._scrubbed(_summary.discovery(self._points(), self._session))

    def get_execution_metrics(self) -> ExecutionMetrics:
        from . import summary as _summary

        return self._scrubbed(_summary.execution(self._points(), self._session))

    def get_sdk_metrics(self) -> SdkMetrics:
        from . import summary as _summary

        return self._scrubbed(_summary.sdk(self._points(), self._session))

    def get_filtering_metrics(self) -> FilteringMetrics:
        from . import summary as _summary

        return self._scrubbed(_summary.filtering(self._points(), self._session, self.config.bytes_per_token))

    def get_skill_metrics(self) -> SkillMetrics:
        from . import summary as _summary

        return self._scrubbed(_summary.skills(self._points(), self._session))

    def get_security_metrics(self) -> SecurityMetrics:
        from . import summary as _summary

        return self._scrubbed(_summary.security(self._points(), self._session))

    def summary(self) -> dict[str, Any]:
        """The design's JSON summary of this session so far, as a JSON-ready dict."""
        from . import summary as _summary

        end = self.end_time_ns if self.end_time_ns is not None else self.config.clock()
        return _summary.summary_json(
            self._points(),
            self._session,
            bytes_per_token=self.config.bytes_per_token,
            start_ns=self.start_time_ns,
            end_ns=end,
            service_name=str(self.resource.attributes.get("service.name", "")),
        )

    export_json = summary

    def export_json_text(self, indent: int | None = 2) -> str:
        return json.dumps(self.summary(), indent=indent, sort_keys=False)

    def export_prometheus(self) -> str:
        """The Prometheus text exposition of this session, rendered by the official exporter."""
        from prometheus_client import generate_latest

        if not self.enabled:
            return ""
        return generate_latest(self._prometheus_registry()).decode("utf-8")

    def log_handler(self, level: int = logging.NOTSET) -> logging.Handler | None:
        """A ``logging`` handler that sends records to OTLP logs with trace and span ids, when OTLP is on.

        The OTLP log pipeline is built on the first call, so a session that never logs through
        OpenTelemetry does not start its thread or load its modules.
        """
        if self.logger_provider is None and self.enabled and self.config.otlp_endpoint:
            with self._lock:
                if self.logger_provider is None and not self._closing:
                    stats = self._export_stats
                    try:
                        self.logger_provider = _otlp_logger_provider(self.config, self.resource, stats, self._scrubber, stats.gate, self._env_warned)
                    except Exception as exc:  # never into the host: no handler, one warning
                        self._session.guard.contain(exc, "log_handler")
        if self.logger_provider is None:
            return None
        try:  # the maintained handler (the otlp extra installs it)
            from opentelemetry.instrumentation.logging.handler import LoggingHandler
        except ImportError:  # pragma: no cover - older installs: the SDK's deprecated one
            from opentelemetry.sdk._logs import LoggingHandler as SdkLoggingHandler

            return SdkLoggingHandler(level=level, logger_provider=self.logger_provider)
        return LoggingHandler(level=level, logger_provider=self.logger_provider)

    def save(self, root: Any = None) -> Any:
        """Write this session's summary to the metrics history now; returns where it went (a ``history.SavedSession``).

        ``root`` defaults to the ``history`` option, then ``MCP_EXEC_METRICS_DIR``, then ``.mcp_exec/metrics``.
        """
        from .history import write_session

        if root is None and not isinstance(self.config.history, bool):
            root = self.config.history
        summary = self.summary()
        path = write_session(summary, root)
        self.saved_path = path
        return path

    # --- lifecycle --------------------------------------------------------------------------

    def force_flush(self, timeout_ms: float | None = None) -> bool:
        """Push metrics and spans now; returns False when something did not finish in time."""
        if not self.enabled or self._closed:
            return True
        timeout = self.config.export_timeout_ms if timeout_ms is None else timeout_ms
        ok = True
        try:
            for reader in self._push_readers:
                ok = reader.force_flush(timeout_millis=timeout) and ok
            ok = self.tracer_provider.force_flush(int(timeout)) and ok  # type: ignore[union-attr]
        except Exception as exc:
            _logger.warning("mcp-exec-telemetry flush failed: %r", exc)
            return False
        return ok

    @property
    def dropped_after_close(self) -> DroppedAfterClose:
        """Records made after the session ended, and dropped: spans and metric measurements."""
        dropper = self._session.after_close
        return dropper.dropped if dropper is not None else DroppedAfterClose(0, 0)

    def __getattr__(self, name: str) -> Any:
        """Build a step the first time the session is asked for it; later lookups find it set.

        A process loads and sets up only the steps its agent uses (their instruments' views exist
        from the start, see :mod:`~mcp_exec_telemetry.views`). A step first used after the session
        ended drops and counts its records, like the others.
        """
        if name not in STEP_CLASSES:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        with self._steps_lock:  # reentrant: a signal handler on this thread may ask for a step too
            step = self.__dict__.get(name)
            if step is None:
                step = self.__dict__[name] = step_class(name)(self._session)
                # The session may have ended on another thread while the step was built, after
                # reading the steps built so far (Session.close): then this one drops its records too.
                self._session.drop_records_of(step)
        return step

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(STEP_CLASSES))  # the steps, built or not

    def _steps(self) -> list[Any]:
        """The steps built so far."""
        return [step for name in STEP_CLASSES if (step := self.__dict__.get(name)) is not None]

    def shutdown(self) -> None:
        """End the session: close its span, flush and stop every exporter. Never raises, never hangs.

        Steps still open are recorded with outcome ``abandoned`` (one warning names them); records
        made afterwards are dropped and counted in :attr:`dropped_after_close`.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
            self._shutdown_thread = threading.get_ident()
        try:
            self._shutdown()
        finally:
            self._closed_event.set()
            self._uninstall_signal_handlers()
            pending, self._pending_signal = self._pending_signal, None
            if pending is not None:
                self._forward_signal(pending, None)

    def _shutdown(self) -> None:
        self.end_time_ns = self.config.clock()
        if not self.enabled:
            self._closed = True
            return
        session = self._session
        try:
            abandoned = session.abandon_open()
            if abandoned:
                names = ", ".join(sorted(set(abandoned)))
                _logger.warning(
                    "mcp-exec-telemetry: %d step(s) still open when the session ended (%s); recorded with outcome 'abandoned'",
                    len(abandoned), names,
                )
        except Exception as exc:
            session.guard.contain(exc, "session end")
        try:
            if self._session_span is not INVALID_SPAN:
                self._session_span.end()
        except Exception as exc:
            session.guard.contain(exc, "session end")
        if self._session_token is not None:
            token, self._session_token = self._session_token, None
            try:  # sessions may end in any order, and on another thread (a signal, a host's worker)
                restore_context(token, self._session_ctx, self._session_span)
            except Exception as exc:  # pragma: no cover
                session.guard.contain(exc, "session end")
        try:
            session.close(self._steps)  # from here on, records are dropped and counted
        except Exception as exc:  # pragma: no cover
            session.guard.contain(exc, "session end")
        try:
            self._final_data = self._collect()
        except Exception:
            self._final_data = None
        self._closed = True
        # A forked worker that recorded nothing (an idle pool worker) adds no empty session to the history.
        idle_child = self._forked_child and not self._recorded_anything()
        if self.config.history is not False and self.saved_path is None and not idle_child:
            try:
                self.save()
            except Exception as exc:
                _logger.warning("mcp-exec-telemetry could not write the session history: %r", exc)
        self._teardown_exports(timeout_ms=self.config.export_timeout_ms)

    def _recorded_anything(self) -> bool:
        """Whether any of this session's instruments holds a measurement."""
        from . import summary as _summary

        for points in _summary.Points(self._final_data, self.config.namespace).by_name.values():
            for p in points:
                if getattr(p, "count", None) or getattr(p, "value", None):
                    return True
        return False

    def _teardown_exports(self, timeout_ms: float) -> None:
        """Flush and stop every exporter, waiting at most ``timeout_ms``; then say what was dropped, once."""
        done = threading.Event()
        stats = self._export_stats
        stats.last_metric_export_ok = None  # only the export made at shutdown counts now

        def work() -> None:
            try:
                self._stop_exports(timeout_ms)
            finally:
                done.set()

        worker = threading.Thread(target=work, name="mcp-exec-telemetry-shutdown", daemon=True)
        worker.start()
        finished = done.wait(timeout_ms / 1000.0)
        dropped = stats.describe(expect_metrics=bool(self._push_readers))
        if not finished or dropped:
            where = self.config.otlp_endpoint or "the configured exporters"
            what = dropped or "the final export"
            why = f"did not finish within {timeout_ms:.0f} ms" if not finished else "failed"
            if stats.gate is not None and stats.gate.refused:
                why = "failed: the collector refused the connection"
            _logger.warning("mcp-exec-telemetry: export to %s %s; dropped: %s", where, why, what)

    def _stop_exports(self, timeout_ms: float) -> None:
        deadline = time.monotonic() + timeout_ms / 1000.0

        def left() -> float:
            return max(1.0, (deadline - time.monotonic()) * 1000.0)

        gate = self._export_stats.gate
        if gate is not None:
            try:  # a collector that refuses connections: fail what is left at once, do not retry
                gate.check(timeout_s=min(0.1, left() / 1000.0))
            except Exception as exc:
                _logger.warning("mcp-exec-telemetry could not check the collector: %r", exc)
        for reader in self._push_readers:
            try:
                reader.shutdown(timeout_millis=left())
            except Exception as exc:
                _logger.warning("mcp-exec-telemetry metric export shutdown failed: %r", exc)
        try:
            if self.tracer_provider is not None:
                self.tracer_provider.shutdown()
        except Exception as exc:
            _logger.warning("mcp-exec-telemetry span export shutdown failed: %r", exc)
        if self._prom_server is not None:
            try:
                stop_http_server(self._prom_server, timeout_s=left() / 1000.0)
            except Exception:
                pass
            self._prom_server = None
        try:
            if self.logger_provider is not None:
                self.logger_provider.shutdown()
        except Exception as exc:
            _logger.warning("mcp-exec-telemetry log export shutdown failed: %r", exc)
        try:
            if self.meter_provider is not None:
                self.meter_provider.shutdown(timeout_millis=left())
        except Exception as exc:
            _logger.warning("mcp-exec-telemetry meter provider shutdown failed: %r", exc)

    @property
    def closed(self) -> bool:
        return self._closed


def _otlp_exporters(cfg: TelemetryConfig, warned: set[str] | None = None) -> tuple[Any, Any]:
    """The OTLP metric and span exporters for the configured endpoint and protocol.

    ``warned`` holds the variables already warned about in this session (shared with the log exporter).
    """
    endpoint = str(cfg.otlp_endpoint)
    headers = dict(cfg.otlp_headers) if cfg.otlp_headers else None
    timeout_s = cfg.export_timeout_ms / 1000.0
    warned = set() if warned is None else warned
    try:
        if cfg.otlp_protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            insecure = endpoint.startswith("http://")
            metrics_compression = grpc_compression_from_env("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", warned)
            traces_compression = grpc_compression_from_env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", warned)
            return (
                OTLPMetricExporter(endpoint=endpoint, insecure=insecure, headers=headers, timeout=timeout_s, compression=metrics_compression),
                OTLPSpanExporter(endpoint=endpoint, insecure=insecure, headers=headers, timeout=timeout_s, compression=traces_compression),
            )
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        base = endpoint.rstrip("/")
        return (
            HttpMetricExporter(endpoint=f"{base}/v1/metrics", headers=headers, timeout=timeout_s),
            HttpSpanExporter(endpoint=f"{base}/v1/traces", headers=headers, timeout=timeout_s),
        )
    except ImportError as exc:
        raise RuntimeError("OTLP export needs the 'otlp' extra: pip install '.[otlp]' from a checkout") from exc


def _otlp_logger_provider(cfg: TelemetryConfig, resource: Resource, stats: ExportStats, scrubber: "TelemetryScrubber | None", gate: CollectorGate | None = None, warned: set[str] | None = None) -> Any:
    """A logger provider exporting log records over OTLP, beside metrics and spans."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    endpoint = str(cfg.otlp_endpoint)
    headers = dict(cfg.otlp_headers) if cfg.otlp_headers else None
    timeout_s = cfg.export_timeout_ms / 1000.0
    exporter: LogRecordExporter
    if cfg.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter

        compression = grpc_compression_from_env("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", warned if warned is not None else set())
        exporter = OTLPLogExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"), headers=headers, timeout=timeout_s, compression=compression)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter

        exporter = HttpLogExporter(endpoint=endpoint.rstrip("/") + "/v1/logs", headers=headers, timeout=timeout_s)
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(guarded_log_exporter(exporter, stats, scrubber.log if scrubber is not None else None, gate), export_timeout_millis=cfg.export_timeout_ms))
    return provider


_LIVE: "weakref.WeakSet[Telemetry]" = weakref.WeakSet()


def _skip_ended_sessions(handler: Any, sig: int) -> Any:
    """``handler``, or, when it is the handler of a session that has ended, what that one replaced.

    A session that ends while another session's handler is installed over its own cannot put the
    old disposition back; whoever finds its handler later steps over it, so no chain of ended
    sessions builds up.
    """
    seen = 0
    while isinstance(getattr(handler, "__self__", None), Telemetry) and seen < 100:
        owner: Telemetry = handler.__self__
        if not owner._closed_event.is_set():
            break
        handler = owner._signal_previous.get(sig, signal.SIG_DFL)
        seen += 1
    return handler


def _close_at_worker_exit(tel: Telemetry) -> None:
    """Have multiprocessing's exit (a worker's end, or atexit) close, save and flush ``tel``."""
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is not None:
        mp_util.Finalize(None, tel.shutdown, exitpriority=0)


def _reset_sessions_in_child() -> None:
    """Called in a forked child by the hook in :mod:`._atfork`."""
    for tel in list(_LIVE):
        try:
            tel._after_fork_in_child()
        except Exception as exc:  # a forked child must keep running even if telemetry cannot
            _logger.warning("mcp-exec-telemetry could not reset a session after fork: %r", exc)


def observe(**options: Any) -> Telemetry:
    """Observe one agent session: ``with observe(service_name="my-agent") as tel: ...``.

    Returns a :class:`Telemetry` that is its own context manager: entering opens the session span,
    leaving flushes and shuts down. Options are those of :class:`TelemetryConfig`.
    """
    return Telemetry(**options)

