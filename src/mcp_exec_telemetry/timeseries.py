"""Time-series exports of session summaries: CSV, InfluxDB line protocol, and an InfluxDB 1.x writer.

Each session becomes one CSV row with a fixed, documented header (:data:`CSV_COLUMNS`), or a few
line-protocol points stamped with the session's end time in nanoseconds::

    mcp_exec_discovery,service=my-agent total_queries=12i,hit_rate=0.92,... 1731061845000000003

Tags are bounded labels only: the service name, languages, PII pattern types, filtering operation
kinds and at most ``max_skills`` skill names per session. Search keywords are never exported.
Two sessions ending in the same second would be one InfluxDB point, so a history session's number
is added to its timestamp in nanoseconds (InfluxDB's own advice for distinct points).
"""

from __future__ import annotations

import base64
import csv
import io
import math
import time
import urllib.parse
from typing import Any, Callable, Iterable, Mapping

from .history import SessionRecord, parse_time

__all__ = [
    "CSV_COLUMNS",
    "HistoryCollector",
    "InfluxWriteError",
    "InfluxWriter",
    "escape_measurement",
    "escape_tag",
    "format_field_value",
    "to_csv",
    "to_line_protocol",
]

# (section, key) of every per-session metric: the CSV columns and the line-protocol fields.
_METRICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("discovery", ("total_queries", "successful_queries", "failed_queries", "continued_queries", "hit_rate", "avg_response_time_ms", "total_time_ms", "cache_hits")),
    ("execution", ("total_executions", "successful_executions", "failed_executions", "success_rate", "avg_duration_ms", "total_duration_ms", "timeouts", "memory_peak_mb", "memory_avg_mb")),
    ("sdk", ("total_generations", "failed_generations", "avg_generation_time_ms", "total_generation_time_ms", "tools_included", "ipc_handler_size_bytes", "cache_hits", "cache_utilization")),
    ("filtering", ("total_operations", "failed_operations", "avg_reduction_ratio", "estimated_tokens_saved", "total_input_bytes", "total_output_bytes")),
    ("skills", ("total_skills", "active_skills", "deleted_skills", "executions", "successful_executions", "reuse_ratio")),
    ("security", ("pii_detected", "tokens_created", "audit_events")),
)
# Fields that are ratios or averages: always written as floats, so a series never changes type.
_FLOATS = {"hit_rate", "success_rate", "cache_utilization", "avg_reduction_ratio", "reuse_ratio", "memory_peak_mb", "memory_avg_mb"}

_ID_COLUMNS = ("date", "session", "start_time", "end_time", "service_name", "session_duration_ms")
CSV_COLUMNS: tuple[str, ...] = _ID_COLUMNS + tuple(f"{section}_{key}" for section, keys in _METRICS for key in keys)
"""The CSV header, in order. New columns are only ever appended."""


def _doc(item: Mapping[str, Any] | SessionRecord) -> Mapping[str, Any]:
    return item.doc if isinstance(item, SessionRecord) else item


def _is_float(key: str) -> bool:
    return key in _FLOATS or key.endswith("_ms")


# --- CSV -------------------------------------------------------------------------------------


def to_csv(sessions: Iterable[Mapping[str, Any] | SessionRecord]) -> str:
    """One row per session under :data:`CSV_COLUMNS`; distributions (languages ...) are not columns."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in sessions:
        doc = _doc(item)
        row: list[Any] = [
            doc.get("date", str(doc.get("start_time", ""))[:10]),
            doc.get("session", ""),
            doc.get("start_time", ""),
            doc.get("end_time") or doc.get("timestamp", ""),
            doc.get("service_name", ""),
            doc.get("session_duration_ms", 0),
        ]
        for section, keys in _METRICS:
            sec = doc.get(section, {})
            row.extend(sec.get(key, 0) for key in keys)
        writer.writerow(row)
    return out.getvalue()


# --- line protocol ---------------------------------------------------------------------------


def _no_newline(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} {text!r} contains a newline, which line protocol cannot carry")
    if text.endswith("\\"):
        raise ValueError(f"{what} {text!r} ends with a backslash, which InfluxDB 1.x cannot parse")
    return text


def escape_measurement(name: str) -> str:
    """A measurement name with commas and spaces escaped."""
    if not name:
        raise ValueError("measurement name must not be empty")
    return _no_newline(name, "measurement").replace(",", r"\,").replace(" ", r"\ ")


def escape_tag(text: str) -> str:
    """A tag key, tag value or field key with commas, equals signs and spaces escaped."""
    return _no_newline(text, "tag or field key").replace(",", r"\,").replace("=", r"\=").replace(" ", r"\ ")


def format_field_value(value: Any, as_float: bool = False) -> str | None:
    """A field value: ``12i`` for integers, ``0.5`` for floats, quoted strings, ``true``; None if unwritable."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and not as_float:
        return f"{value}i"
    if isinstance(value, (int, float)):
        f = float(value)
        return repr(f) if math.isfinite(f) else None  # NaN and infinities are not valid field values
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return None


def _line(measurement: str, tags: Mapping[str, str], fields: Mapping[str, Any], ts_ns: int) -> str | None:
    parts = []
    for key, value in fields.items():
        text = format_field_value(value, _is_float(key))
        if text is not None:
            parts.append(f"{escape_tag(key)}={text}")
    if not parts:
        return None
    tag_text = "".join(f",{escape_tag(k)}={escape_tag(v)}" for k, v in sorted(tags.items()) if v != "")
    return f"{escape_measurement(measurement)}{tag_text} {','.join(parts)} {ts_ns}"


def session_time_ns(doc: Mapping[str, Any]) -> int:
    """A session's point time: its end time in ns, plus its history number in ns to keep points distinct."""
    end = doc.get("end_time") or doc.get("timestamp")
    if not end:
        raise ValueError("a session summary needs an end time ('timestamp') to become a time-series point")
    seconds = int(parse_time(str(end)).timestamp())
    return seconds * 1_000_000_000 + int(doc.get("session", 0) or 0)


def to_line_protocol(
    sessions: Iterable[Mapping[str, Any] | SessionRecord],
    *,
    namespace: str = "mcp_exec",
    tags: Mapping[str, str] | None = None,
    max_skills: int = 20,
) -> str:
    """InfluxDB line protocol for each session: one point per step, plus per-label breakdowns.

    Measurements: ``<ns>_session``, ``<ns>_discovery``, ``<ns>_execution``, ``<ns>_sdk``,
    ``<ns>_filtering``, ``<ns>_skills``, ``<ns>_security``, and ``<ns>_execution_language``
    (tag ``language``), ``<ns>_filtering_operation`` (``operation``), ``<ns>_pii`` (``pattern``),
    ``<ns>_skill`` (``skill``, at most ``max_skills`` per session). Every point is tagged with
    ``service`` and the extra ``tags``.
    """
    lines: list[str] = []
    for item in sessions:
        doc = _doc(item)
        ts = session_time_ns(doc)
        base = {"service": str(doc.get("service_name", "") or "")}
        base.update(tags or {})

        def add(measurement: str, fields: Mapping[str, Any], extra: Mapping[str, str] | None = None) -> None:
            line = _line(f"{namespace}_{measurement}", {**base, **(extra or {})}, fields, ts)
            if line is not None:
                lines.append(line)

        add("session", {"duration_ms": float(doc.get("session_duration_ms", 0)), "number": int(doc.get("session", 0) or 0)})
        for section, keys in _METRICS:
            sec = doc.get(section, {})
            add(section, {key: sec.get(key, 0) for key in keys})
        for language, n in sorted(doc.get("execution", {}).get("languages", {}).items()):
            add("execution_language", {"executions": int(n)}, {"language": language})
        for op, n in sorted(doc.get("filtering", {}).get("operations", {}).items()):
            add("filtering_operation", {"operations": int(n)}, {"operation": op})
        for pattern, n in sorted(doc.get("security", {}).get("patterns", {}).items()):
            add("pii", {"detections": int(n)}, {"pattern": pattern})
        for st in doc.get("skills", {}).get("top_skills", [])[:max_skills]:
            add("skill", {"runs": int(st.get("runs", 0)), "successes": int(st.get("successes", 0)), "avg_duration_ms": float(st.get("avg_duration_ms", 0.0))}, {"skill": str(st["name"])})
    return "".join(line + "\n" for line in lines)


# --- InfluxDB 1.x writer ---------------------------------------------------------------------


class InfluxWriteError(RuntimeError):
    """InfluxDB rejected a write, or could not be reached after every retry."""

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class InfluxWriter:
    """Sends line protocol to an InfluxDB 1.x ``/write`` endpoint, retrying what may pass later.

    Connection errors, HTTP 429 and 5xx are retried ``retries`` times with exponential backoff;
    any other error status (400 unparsable line, 404 unknown database, 401 ...) is a rejection
    and raises :class:`InfluxWriteError` at once with InfluxDB's own message::

        InfluxWriter("http://127.0.0.1:8086", "agents").write(to_line_protocol(sessions))
    """

    def __init__(
        self,
        url: str,
        database: str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        batch_size: int = 5000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"InfluxDB URL must look like http://host:8086, got {url!r}")
        if not database:
            raise ValueError("database must not be empty")
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.batch_size = max(1, int(batch_size))
        self._sleep = sleep
        self._auth = None
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            self._auth = f"Basic {token}"
        self.attempts = 0
        """HTTP requests made so far (for diagnostics and tests)."""

    def _endpoint(self) -> str:
        params = {"db": self.database, "precision": "ns"}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        return f"{self.url}/write?{urllib.parse.urlencode(params)}"

    def write(self, lines: str | Iterable[str]) -> int:
        """Write every line (a line-protocol text or an iterable of lines); returns how many."""
        items = [ln for ln in (lines.splitlines() if isinstance(lines, str) else lines) if ln.strip()]
        for i in range(0, len(items), self.batch_size):
            self._post("\n".join(items[i : i + self.batch_size]).encode("utf-8"))
        return len(items)

    def _post(self, body: bytes) -> None:
        import urllib.error  # here, not at module level: the CLI's other commands need no HTTP client
        import urllib.request

        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._auth:
            headers["Authorization"] = self._auth
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            self.attempts += 1
            request = urllib.request.Request(self._endpoint(), data=body, method="POST", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    resp.read()
                    return
            except urllib.error.HTTPError as err:
                text = _error_text(err)
                if err.code == 429 or err.code >= 500:
                    last = f"HTTP {err.code}: {text}"
                    continue
                raise InfluxWriteError(f"InfluxDB rejected the write to {self.database!r} (HTTP {err.code}): {text}", err.code, text) from None
            except (urllib.error.URLError, OSError) as err:
                reason = getattr(err, "reason", err)
                last = f"{reason}"
                continue
        raise InfluxWriteError(f"InfluxDB at {self.url} did not accept the write after {self.retries + 1} attempts: {last}")


def _error_text(err: Any) -> str:
    """InfluxDB's ``{"error": "..."}`` message, or the raw body, on one line."""
    import json

    try:
        raw = err.read().decode("utf-8", "replace")
    except Exception:
        raw = ""
    try:
        msg = json.loads(raw).get("error", raw)
    except (ValueError, AttributeError):
        msg = raw
    return " ".join(str(msg).split())[:500] or (err.reason or "")


# --- Prometheus over the history -------------------------------------------------------------


class HistoryCollector:
    """A ``prometheus_client`` collector of the whole history, read at every scrape.

    Series follow the SDK's names: ``<ns>_discovery_queries_total``, ``<ns>_discovery_hit_rate``,
    ``<ns>_execution_duration_seconds`` (a histogram from the sessions' buckets),
    ``<ns>_execution_success_rate``, ``<ns>_context_tokens_saved_total``,
    ``<ns>_skill_reuse_ratio``, ``<ns>_pii_detections_total{pattern}`` ... plus
    ``<ns>_history_sessions_total``. Counters only grow, since the history only grows; a rate
    is only exposed once its denominator is above zero. A scrape reads the days' aggregates that
    every write maintains (one row per day), never the sessions themselves, and reuses its last
    answer while no day changed. Register it in a private registry::

        registry = CollectorRegistry(auto_describe=False)
        registry.register(HistoryCollector(".mcp_exec/metrics"))
    """

    def __init__(self, root: Any = None, namespace: str = "mcp_exec") -> None:
        from . import history

        self.store = history.History(root)
        self.root = self.store.root
        self.namespace = namespace
        self._key: Any = None
        self._agg: dict[str, Any] | None = None

    def _aggregate(self) -> dict[str, Any]:
        """The whole history's aggregate, recomputed only when a day gained sessions."""
        from . import history

        days = self.store.days()
        key = tuple((d, doc.get("sessions"), doc.get("end_time")) for d, doc in days)
        if self._agg is None or key != self._key:
            self._agg = history.aggregate(doc for _d, doc in days)
            self._key = key
        return self._agg

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        from .advisor import pii_protection_rate

        agg = self._aggregate()
        ns = self.namespace
        d, e, g, f, k, s = (agg[x] for x in ("discovery", "execution", "sdk", "filtering", "skills", "security"))

        def counter(name: str, doc: str, value: float, unit: str = "") -> Any:
            return CounterMetricFamily(f"{ns}_{name}", doc, value=value, unit=unit)

        def gauge(name: str, doc: str, value: float) -> Any:
            return GaugeMetricFamily(f"{ns}_{name}", doc, value=value)

        yield counter("history_sessions", "Sessions in the metrics history", agg["sessions"])
        if agg["end_time"]:
            yield gauge("history_last_session_timestamp_seconds", "End time of the newest session in the history", parse_time(agg["end_time"]).timestamp())
        queries = CounterMetricFamily(f"{ns}_discovery_queries", "Tool discovery queries", labels=["outcome"])
        queries.add_metric(["success"], d["successful_queries"])
        queries.add_metric(["failure"], d["failed_queries"])
        yield queries
        yield counter("discovery_continued_queries", "Queries after which the agent searched again", d["continued_queries"])
        yield counter("discovery_cache_hits", "Discovery queries answered from a cache", d["cache_hits"])
        if d["total_queries"]:
            yield gauge("discovery_hit_rate", "Queries that found tools and were not followed by another search / all queries", d["hit_rate"])

        cumulative, buckets = 0, []
        for key, n in e["duration_buckets_ms"].items():
            cumulative += int(n)
            buckets.append(("+Inf" if key == "+Inf" else repr(float(key) / 1000.0), cumulative))
        if not buckets or buckets[-1][0] != "+Inf":
            buckets.append(("+Inf", e["total_executions"]))
        yield HistogramMetricFamily(f"{ns}_execution_duration_seconds", "Duration of code executions", buckets=buckets, sum_value=e["total_duration_ms"] / 1000.0, unit="seconds")
        yield counter("execution_timeouts", "Executions killed by their timeout", e["timeouts"])
        runs = CounterMetricFamily(f"{ns}_execution_runs", "Code executions by language", labels=["language"])
        for language, n in e["languages"].items():
            runs.add_metric([language], n)
        yield runs
        if e["total_executions"]:
            yield gauge("execution_success_rate", "Successful executions / all executions", e["success_rate"])

        yield counter("sdk_generations", "SDK generations", g["total_generations"])
        yield counter("sdk_tools_included", "Tools included in generated SDKs", g["tools_included"])

        yield counter("filtering_input_size_bytes", "Bytes that entered filtering operations", f["total_input_bytes"], unit="bytes")
        yield counter("filtering_output_size_bytes", "Bytes that filtering operations handed on", f["total_output_bytes"], unit="bytes")
        if f["total_input_bytes"]:
            yield gauge("filtering_reduction_ratio", "1 - output bytes / input bytes over all filtering operations", f["avg_reduction_ratio"])
        yield counter("context_tokens_saved", "Estimated context tokens saved by filtering", f["estimated_tokens_saved"])

        yield counter("skills_created", "Skills saved", k["total_skills"])
        yield counter("skills_deleted", "Skills deleted", k["deleted_skills"])
        yield gauge("skills_active", "Skills saved and not deleted, summed over sessions", k["active_skills"])
        if k["active_skills"]:
            yield gauge("skill_reuse_ratio", "Skill executions / active skills", k["reuse_ratio"])

        pii = CounterMetricFamily(f"{ns}_pii_detections", "PII values detected, by pattern type", labels=["pattern"])
        for pattern, n in s["patterns"].items():
            pii.add_metric([pattern], n)
        yield pii
        yield counter("security_tokens_created", "Tokens that replaced PII values", s["tokens_created"])
        yield counter("security_audit_events", "Security audit events", s["audit_events"])
        rate = pii_protection_rate(agg)
        if rate is not None:
            yield gauge("pii_protection_rate", "Detections replaced by tokens / PII values detected", rate)
