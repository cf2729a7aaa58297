"""The scrubbing stage: no detected PII value leaves the process in telemetry.

Every export path passes through it: spans (attributes, events, exception messages and stack
traces, status descriptions, links) on their way to a span exporter; log records to the log
exporter; metric attributes in every collection, so the summary, Prometheus, OTLP and the
history files all see the scrubbed values. Resource attributes are scrubbed once, when the
session is built, before any provider holds them. It matches PII *values*
(see :mod:`mcp_exec_telemetry.pii`) wherever they sit -- strings, bytes, sequences and mappings
nested to any depth, keys included -- and replaces each with ``[REDACTED:<type>]``; a string under
a key that names a secret (``password``, ``api_key``, ``authorization`` ...) is replaced whole.
Values without PII come back as the very same objects, and short strings are remembered, so the
common case costs a dictionary lookup.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, Iterable, Mapping

from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, Status

from .pii.scrub import Scrubber, redaction_marker

__all__ = ["TelemetryScrubber"]

_CACHE_LIMIT = 8192
_CACHE_MAX_LEN = 256
_SCALARS = frozenset({int, float, bool, type(None)})
"""Attribute value types that cannot hold text: anything else (str, bytes, sequences, mappings,
other types) is looked at."""


class TelemetryScrubber:
    """Scrubs OpenTelemetry data structures; ``redactions`` counts what it replaced, by type."""

    def __init__(self, allow: Iterable[str] = (), extra_patterns: Mapping[str, str] | None = None) -> None:
        self._scrubber = Scrubber(allow=allow, extra_patterns=extra_patterns)
        self._clean: set[str] = set()
        """Short strings already found clean: the common case is one set lookup."""
        self._clean_keys: set[str] = set()
        """Attribute keys already found clean that name no secret."""
        self._keys: dict[str, bool] = {}
        """Whether a key names a secret, by key."""
        self._resource_in: Resource | None = None
        self._resource_out: Resource | None = None

    @property
    def redactions(self) -> dict[str, int]:
        return self._scrubber.redactions

    # --- values -------------------------------------------------------------------------------

    def text(self, value: str) -> str:
        """``value`` with every PII value replaced; the same object when there is none."""
        if value in self._clean:
            return value
        out = self._scrubber.scrub(value)
        if out is value and len(value) <= _CACHE_MAX_LEN and len(self._clean) < _CACHE_LIMIT:
            # Only clean strings are remembered, so every redaction is still counted.
            self._clean.add(value)
        return out

    def value(self, value: Any) -> Any:
        """A scrubbed value of any shape OpenTelemetry carries: str, bytes, and sequences and mappings
        of them, however deeply nested; anything else as is.  The same object when nothing changed.
        """
        cls = value.__class__
        if cls is str:
            return self.text(value)
        if cls is bytes or isinstance(value, (bytes, bytearray)):
            return self._bytes(value)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, (tuple, list)):
            out = [self.value(v) for v in value]
            if all(a is b for a, b in zip(out, value)):
                return value
            return out if isinstance(value, list) else tuple(out)
        if isinstance(value, Mapping):
            return self._mapping(value)
        return value

    def _bytes(self, value: bytes | bytearray) -> Any:
        # Not every byte string is UTF-8: surrogateescape keeps the other bytes exactly.
        text = bytes(value).decode("utf-8", "surrogateescape")
        out = self.text(text)
        return value if out is text else out.encode("utf-8", "surrogateescape")

    def _mapping(self, value: Mapping[Any, Any]) -> Mapping[Any, Any]:
        changed = False
        out = {}
        for key, val in value.items():
            new_key = self.text(key) if isinstance(key, str) else key
            new_val = self._under_key(key, val)
            changed |= new_key is not key or new_val is not val
            out[new_key] = new_val
        return out if changed else value

    def _under_key(self, key: Any, val: Any) -> Any:
        """``val`` scrubbed; whole when ``key`` names a secret (``password``, ``api_key`` ...)."""
        if isinstance(key, str) and self._secret_key(key):
            if isinstance(val, (bytes, bytearray)):
                text = bytes(val).decode("utf-8", "surrogateescape")
                whole = self._scrubber.detector.secret_under_key(key, text)
                if whole is not None:
                    self._scrubber.count(whole.type)
                    return redaction_marker(whole.type).encode()
            elif isinstance(val, str):
                whole = self._scrubber.detector.secret_under_key(key, val)
                if whole is not None:
                    self._scrubber.count(whole.type)
                    return redaction_marker(whole.type)
        return self.value(val)

    def _secret_key(self, key: str) -> bool:
        known = self._keys.get(key)
        if known is None:
            known = self._scrubber.detector.names_a_secret(key)
            if len(self._keys) < _CACHE_LIMIT:
                self._keys[key] = known
        return known

    def attributes(self, attrs: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """Scrubbed attributes (keys and values, nested values too); the same mapping when nothing changed.

        A string under a key that names a secret (``db.password``, ``x-api-key`` ...) is redacted
        whole whatever its shape; every other value by what it holds.
        """
        if not attrs:
            return attrs
        clean = self._clean
        clean_keys = self._clean_keys
        # BoundedAttributes keeps a plain dict in _dict: iterating it skips the mapping protocol.
        for key, val in getattr(attrs, "_dict", attrs).items():
            cls = val.__class__
            if key not in clean_keys or (val not in clean if cls is str else cls not in _SCALARS):
                break
        else:
            return attrs  # every key and string value already known clean
        changed = None
        for key, val in attrs.items():
            if isinstance(key, str):
                new_key = self.text(key)
                if new_key is key and not self._secret_key(key) and len(clean_keys) < _CACHE_LIMIT:
                    clean_keys.add(key)
            else:
                new_key = key
            new_val = self._under_key(key, val)
            if new_val is not val or new_key is not key:
                if changed is None:
                    changed = {}
                changed[new_key] = new_val
        if changed is None:
            return attrs
        out = {}
        for key, val in attrs.items():
            new_key = self.text(key) if isinstance(key, str) else key
            out[new_key] = changed.get(new_key, val)
        return out

    def record(self, obj: Any) -> Any:
        """A scrubbed copy of an in-process record (``get_*_metrics()`` results: dataclasses, lists,
        dicts, strings, nested), or ``obj`` itself when it holds nothing to redact."""
        if isinstance(obj, str):
            return self.text(obj)
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            changes = {}
            for f in dataclasses.fields(obj):
                old = getattr(obj, f.name)
                new = self.record(old)
                if new is not old:
                    changes[f.name] = new
            return dataclasses.replace(obj, **changes) if changes else obj
        if isinstance(obj, Mapping):
            items = [(self.record(k), self.record(v)) for k, v in obj.items()]
            if all(a is k and b is v for (a, b), (k, v) in zip(items, obj.items())):
                return obj
            return dict(items)
        if isinstance(obj, (list, tuple)):
            out = [self.record(v) for v in obj]
            if all(a is b for a, b in zip(out, obj)):
                return obj
            return out if isinstance(obj, list) else tuple(out)
        return obj

    # --- OpenTelemetry structures -------------------------------------------------------------

    def resource(self, resource: Resource) -> Resource:
        if resource is self._resource_in:  # a session has one resource: scrub it once
            return self._resource_out  # type: ignore[return-value]
        attrs = self.attributes(resource.attributes)
        out = resource if attrs is resource.attributes else Resource(dict(attrs or {}), resource.schema_url)
        self._resource_in, self._resource_out = resource, out
        return out

    def span(self, span: ReadableSpan) -> ReadableSpan:
        """A scrubbed copy of ``span``, or ``span`` itself when it holds no PII."""
        # ReadableSpan's properties build new proxies and tuples on each access: read each once.
        # The resource is not scrubbed here: the session scrubbed it once, before its providers.
        # The SDK's ReadableSpan keeps them in _attributes, _events and _links; read those when
        # present (no proxy or tuple per access), the public properties otherwise.
        orig_name, orig_status = span.name, span.status
        orig_attrs = getattr(span, "_attributes", None)
        if orig_attrs is None:
            orig_attrs = span.attributes
        orig_events = getattr(span, "_events", None)
        if orig_events is None:
            orig_events = span.events
        orig_links = getattr(span, "_links", None)
        if orig_links is None:
            orig_links = span.links
        name = self.text(orig_name)
        attrs = self.attributes(orig_attrs)
        changed = name is not orig_name or attrs is not orig_attrs
        events = list(orig_events) if orig_events else []
        for i, ev in enumerate(events):
            ev_name = self.text(ev.name)
            ev_attrs = self.attributes(ev.attributes)
            if ev_name is not ev.name or ev_attrs is not ev.attributes:
                changed = True
                events[i] = Event(ev_name, ev_attrs, ev.timestamp)
        links = list(orig_links) if orig_links else []
        for i, link in enumerate(links):
            link_attrs = self.attributes(link.attributes)
            if link_attrs is not link.attributes:
                changed = True
                links[i] = Link(link.context, link_attrs)
        status = orig_status
        if status.description:
            desc = self.text(status.description)
            if desc is not status.description:
                changed = True
                status = Status(status.status_code, desc)
        if not changed:
            return span
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attrs,
            events=events,
            links=links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def log(self, record: Any) -> Any:
        """A scrubbed copy of a ``ReadableLogRecord`` (body and attributes; the resource is already clean)."""
        lr = record.log_record
        body = lr.body
        new_body = self.value(body)
        attrs = self.attributes(lr.attributes)
        if new_body is body and attrs is lr.attributes:
            return record
        new_lr = copy.copy(lr)
        new_lr.body = new_body
        new_lr.attributes = attrs
        return dataclasses.replace(record, log_record=new_lr)

    def metrics(self, data: MetricsData | None) -> MetricsData | None:
        """Metrics with scrubbed data-point and resource attributes; ``data`` itself when clean."""
        if data is None:
            return None
        changed = False
        resource_metrics = []
        for rm in data.resource_metrics:
            resource = self.resource(rm.resource)
            scopes = []
            rm_changed = resource is not rm.resource
            for sm in rm.scope_metrics:
                metrics = []
                sm_changed = False
                for metric in sm.metrics:
                    new_metric = self._metric(metric)
                    sm_changed |= new_metric is not metric
                    metrics.append(new_metric)
                if sm_changed:
                    rm_changed = True
                    scopes.append(ScopeMetrics(scope=sm.scope, metrics=metrics, schema_url=sm.schema_url))
                else:
                    scopes.append(sm)
            if rm_changed:
                changed = True
                resource_metrics.append(ResourceMetrics(resource=resource, scope_metrics=scopes, schema_url=rm.schema_url))
            else:
                resource_metrics.append(rm)
        return MetricsData(resource_metrics=resource_metrics) if changed else data

    def _metric(self, metric: Metric) -> Metric:
        points: list[Any] = []  # the data's own point type (number, histogram, exponential histogram)
        changed = False
        for p in metric.data.data_points:
            attrs = self.attributes(p.attributes)
            if attrs is not p.attributes:
                changed = True
                points.append(dataclasses.replace(p, attributes=attrs))
            else:
                points.append(p)
        if not changed:
            return metric
        data = metric.data
        if isinstance(data, Sum):
            new_data: Any = Sum(data_points=points, aggregation_temporality=data.aggregation_temporality, is_monotonic=data.is_monotonic)
        elif isinstance(data, Histogram):
            new_data = Histogram(data_points=points, aggregation_temporality=data.aggregation_temporality)
        elif isinstance(data, Gauge):
            new_data = Gauge(data_points=points)
        else:
            new_data = dataclasses.replace(data, data_points=points)
        return Metric(name=metric.name, description=metric.description, unit=metric.unit, data=new_data)
