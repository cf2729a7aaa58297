"""The fleet view: the history's summary computed with PromQL from a Prometheus server.

When agents run on many hosts, their metrics live in Prometheus (scraped from each agent's
``/metrics``, or pushed through the collector). :class:`PrometheusSource` asks Prometheus's HTTP
API for the totals of a time window and returns them in the shape of a history aggregate, so the
dashboard, the report and the advisor work on a fleet exactly as on the local history::

    summary = PrometheusSource("http://prometheus:9090").summary("24h")
    print(dashboard.render(summary))

What a window holds, per series (one agent process's counter or histogram count): its last value
in the window minus its value at the window's start, or its whole last value when the series began
inside the window (an agent process started then: its counters started at zero). When a counter
reset inside the window (one process per task on a fixed port: each new process restarts the same
series), the gain is summed step by step instead, counting a value that went down as a new run
from zero: exact while ``step`` is at most the scrape interval. The window ends at the first
multiple of the step at or after ``end`` (subqueries evaluate on those). For a counter ``X``,
window ``R`` and step ``S``::

    ((last_over_time(X[R]) - X offset R) or last_over_time(X[R])) unless resets(X[R]) > 0
      or sum_over_time(((X - X offset S) >= 0 or X * 1)[R:S])

Sessions are the distinct ``service_instance_id`` values of ``target_info`` seen in the window
(each session has its own). Not available from Prometheus: the largest memory sample (a histogram
keeps no maximum; reported as 0) and per-session start and end times (the window's are used).
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timezone
from typing import Any

__all__ = ["FleetError", "PrometheusSource", "parse_duration"]

_DURATION_RE = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_TIME_FMT = "%Y-%m-%dT%H:%M:%SZ"


class FleetError(Exception):
    """Prometheus could not be reached or refused a query."""


def parse_duration(text: str) -> float:
    """Seconds of a Prometheus duration such as ``24h``, ``30m`` or ``7d``; ValueError otherwise."""
    m = _DURATION_RE.match(text.strip())
    if not m or int(m.group(1)) <= 0:
        raise ValueError(f"bad duration {text!r}: expected a number and a unit, like 30m, 24h or 7d")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def _window(metric: str, r: str, step: str) -> str:
    """PromQL for what each series of counter ``metric`` gained in the window ``r`` (see module doc)."""
    last = f"last_over_time({metric}[{r}])"
    exact = f"(({last} - {metric} offset {r}) or {last})"
    # "* 1" drops the metric name, so both sides of "or" are the same series in the subquery's steps.
    stepwise = f"sum_over_time((({metric} - {metric} offset {step}) >= 0 or {metric} * 1)[{r}:{step}])"
    return f"({exact} unless resets({metric}[{r}]) > 0 or {stepwise})"


class PrometheusSource:
    """Fleet totals from a Prometheus server, in the shape of :func:`history.aggregate`.

    ``namespace`` is the metric prefix the agents use (``mcp_exec``); ``matchers`` narrows every
    selector (``'job="agents"'``); ``timeout`` bounds each HTTP request in seconds.
    """

    def __init__(self, url: str, *, namespace: str = "mcp_exec", matchers: str = "", timeout: float = 10.0) -> None:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"Prometheus URL must look like http://host:9090, got {url!r}")
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.matchers = matchers
        self.timeout = timeout
        self.queries = 0
        """PromQL queries sent so far (for diagnostics and tests)."""

    # --- the HTTP API --------------------------------------------------------------------------

    def query(self, promql: str, at: float | None = None) -> list[tuple[dict[str, str], float]]:
        """An instant query: ``(labels, value)`` per series of the result."""
        import urllib.error
        import urllib.parse
        import urllib.request

        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(f"{self.url}/api/v1/query", data=data, method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.queries += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                body = resp.read()
        except urllib.error.HTTPError as err:
            try:
                doc = json.loads(err.read())
                why = f"{doc.get('errorType')}: {doc.get('error')}"
            except Exception:
                why = err.reason
            raise FleetError(f"Prometheus at {self.url} refused the query (HTTP {err.code}): {why}") from None
        except OSError as err:
            raise FleetError(f"cannot reach Prometheus at {self.url}: {getattr(err, 'reason', err)}") from None
        try:
            doc = json.loads(body)
            result = doc["data"]["result"]
            if doc["data"]["resultType"] != "vector":
                raise ValueError(f"expected a vector, got {doc['data']['resultType']}")
            return [(dict(r["metric"]), float(r["value"][1])) for r in result]
        except (ValueError, KeyError, TypeError) as exc:
            raise FleetError(f"unexpected answer from Prometheus at {self.url}: {exc}") from None

    def _sel(self, name: str, extra: str = "") -> str:
        matchers = ",".join(m for m in (self.matchers, extra) if m)
        return f"{self.namespace}_{name}{{{matchers}}}" if matchers else f"{self.namespace}_{name}"

    def _totals(self, name: str, by: tuple[str, ...], r: str, step: str, at: float) -> list[tuple[dict[str, str], float]]:
        grouping = f" by ({', '.join(by)})" if by else ""
        return self.query(f"sum{grouping} ({_window(self._sel(name), r, step)})", at)

    # --- the summary ---------------------------------------------------------------------------

    def summary(self, since: str = "24h", *, end: float | None = None, step: str = "15s") -> dict[str, Any]:
        """Totals of the window ``since`` (a Prometheus duration) ending at ``end`` (Unix seconds, default now).

        The result has the keys and meaning of a history aggregate: counts add up over every
        agent process, and every rate is recomputed from them. ``step`` is the resolution used for
        series whose counter reset inside the window; keep it at most the scrape interval.
        """
        seconds = parse_duration(since)
        step = since.strip() if parse_duration(step) > seconds else step.strip()  # no coarser than the window
        r = since.strip()
        at = time.time() if end is None else float(end)
        step_s = parse_duration(step)
        at = math.ceil(at / step_s) * step_s  # a subquery's steps are aligned to multiples of the step: end on one

        def split(name: str, *by: str) -> list[tuple[dict[str, str], float]]:
            return self._totals(name, by, r, step, at)

        def total(rows: list[tuple[dict[str, str], float]], **where: str) -> float:
            return sum(v for labels, v in rows if all(labels.get(k, "") == want for k, want in where.items()))

        def by(rows: list[tuple[dict[str, str], float]], key: str) -> dict[str, int]:
            out: dict[str, int] = {}
            for labels, v in rows:
                label = labels.get(key)
                if label is not None and _int(v):
                    out[label] = out.get(label, 0) + _int(v)
            return dict(sorted(out.items()))

        q = split("discovery_duration_seconds_count", "outcome", "detail_level")
        q_sum = total(split("discovery_duration_seconds_sum"))
        cont = split("discovery_continued_queries_total", "outcome")
        ex = split("execution_duration_seconds_count", "outcome", "language")
        ex_sum = total(split("execution_duration_seconds_sum"))
        ex_buckets = split("execution_duration_seconds_bucket", "le")
        mem_n = total(split("execution_memory_mebibytes_count"))
        mem_sum = total(split("execution_memory_mebibytes_sum"))
        sdk = split("sdk_duration_seconds_count", "outcome", "cache_hit")
        sdk_sum = total(split("sdk_duration_seconds_sum"))
        flt = split("filtering_duration_seconds_count", "outcome", "operation")
        skills_n = split("skills_duration_seconds_count", "outcome", "skill_name")
        skills_sum = split("skills_duration_seconds_sum", "skill_name")
        pii = split("pii_detections_total", "pattern")
        info = f"target_info{{{self.matchers}}}" if self.matchers else "target_info"
        sessions = self.query(f"count by (service_name) (count by (service_name, service_instance_id) (last_over_time({info}[{r}])))", at)

        def one(name: str) -> float:
            return total(split(name))

        def stopped(rows: list[tuple[dict[str, str], float]]) -> dict[str, int]:
            """Cancelled and abandoned steps: in each total, never failures nor in success rates."""
            return {o: n for o in _INTERRUPTED if (n := _int(total(rows, outcome=o)))}

        q_stopped, ex_stopped = stopped(q), stopped(ex)
        finished = _int(total(ex)) - sum(ex_stopped.values())

        queries = _int(total(q))
        ok = _int(total(q, outcome="success"))
        hits = ok - _int(total(cont, outcome="success"))
        runs = _int(total(ex))
        runs_ok = _int(total(ex, outcome="success"))
        gens = _int(total(sdk))
        gen_hits = _int(total(sdk, cache_hit="true"))
        inp = _int(one("filtering_input_size_bytes_total"))
        out = _int(one("filtering_output_size_bytes_total"))
        created = _int(one("skills_created_total"))
        deleted = _int(one("skills_deleted_total"))
        skill_runs = _int(total(skills_n))
        detected = _int(total(pii))
        tokenized = _int(one("security_tokenized_total"))
        services = {labels.get("service_name", ""): _int(v) for labels, v in sessions}

        top: dict[str, dict[str, Any]] = {}
        for labels, v in skills_n:
            name = labels.get("skill_name")
            if name is None or not _int(v):
                continue
            st = top.setdefault(name, {"name": name, "runs": 0, "successes": 0, "total_duration_ms": 0.0})
            st["runs"] += _int(v)
            if labels.get("outcome") == "success":
                st["successes"] += _int(v)
        for labels, v in skills_sum:
            summed = top.get(labels.get("skill_name", ""))
            if summed is not None:
                summed["total_duration_ms"] += v * 1000.0
        top_list = sorted(top.values(), key=lambda st: (-st["runs"], st["name"]))[:50]
        for st in top_list:
            st["total_duration_ms"] = round(st["total_duration_ms"], 3)
            st["avg_duration_ms"] = round(st["total_duration_ms"] / st["runs"], 3) if st["runs"] else 0.0

        stamp = datetime.fromtimestamp(at, timezone.utc).strftime(_TIME_FMT)
        r6 = lambda x: round(x, 6)  # noqa: E731
        r3 = lambda x: round(x, 3)  # noqa: E731
        return {
            "kind": "mcp_exec_fleet_report",
            "source": self.url,
            "period": {"since": r, "from": datetime.fromtimestamp(at - seconds, timezone.utc).strftime(_TIME_FMT), "to": stamp},
            "timestamp": stamp,
            "start_time": datetime.fromtimestamp(at - seconds, timezone.utc).strftime(_TIME_FMT),
            "end_time": stamp,
            "sessions": sum(services.values()),
            "service_name": next(iter(services)) if len(services) == 1 else "",
            "service_names": dict(sorted(services.items())),
            "discovery": {
                "total_queries": queries,
                "successful_queries": ok,
                "failed_queries": queries - ok - sum(q_stopped.values()),
                "continued_queries": _int(total(cont)),
                "hit_rate": r6(hits / queries if queries else 0.0),
                "avg_response_time_ms": r3(q_sum * 1000.0 / queries if queries else 0.0),
                "total_time_ms": r3(q_sum * 1000.0),
                "cache_hits": _int(one("discovery_cache_hits_total")),
                "detail_levels": by(q, "detail_level"),
                "interrupted": q_stopped,
            },
            "execution": {
                "total_executions": runs,
                "successful_executions": runs_ok,
                "failed_executions": finished - runs_ok,
                "success_rate": r6(runs_ok / finished if finished else 0.0),
                "avg_duration_ms": r3(ex_sum * 1000.0 / runs if runs else 0.0),
                "total_duration_ms": r3(ex_sum * 1000.0),
                "languages": by(ex, "language"),
                "timeouts": _int(total(ex, outcome="timeout")),
                "memory_peak_mb": 0.0,
                "memory_avg_mb": r3(mem_sum / mem_n if mem_n else 0.0),
                "duration_buckets_ms": _buckets(ex_buckets),
                "interrupted": ex_stopped,
            },
            "sdk": {
                "total_generations": gens,
                "failed_generations": _int(total(sdk, outcome="error")),
                "avg_generation_time_ms": r3(sdk_sum * 1000.0 / gens if gens else 0.0),
                "total_generation_time_ms": r3(sdk_sum * 1000.0),
                "tools_included": _int(one("sdk_tools_included_total")),
                "ipc_handler_size_bytes": _int(one("sdk_ipc_handler_size_bytes_total")),
                "cache_hits": gen_hits,
                "cache_utilization": r6(gen_hits / gens if gens else 0.0),
                "interrupted": stopped(sdk),
            },
            "filtering": {
                "total_operations": _int(total(flt)),
                "failed_operations": _int(total(flt, outcome="error")),
                "avg_reduction_ratio": r6(1.0 - out / inp if inp else 0.0),
                "estimated_tokens_saved": _int(one("context_tokens_saved_total")),
                "total_input_bytes": inp,
                "total_output_bytes": out,
                "operations": by(flt, "operation"),
                "interrupted": stopped(flt),
            },
            "skills": {
                "total_skills": created,
                "active_skills": max(0, created - deleted),
                "deleted_skills": deleted,
                "executions": skill_runs,
                "successful_executions": _int(total(skills_n, outcome="success")),
                "reuse_ratio": r6(skill_runs / (created - deleted) if created > deleted else 0.0),
                "top_skills": top_list,
                "interrupted": stopped(skills_n),
            },
            "security": {
                "pii_detected": detected,
                "patterns": by(pii, "pattern"),
                "tokens_created": _int(one("security_tokens_created_total")),
                "tokenized_detections": tokenized,
                "protection_rate": r6(tokenized / detected if detected else 0.0),
                "audit_events": _int(one("security_audit_events_total")),
            },
        }

    def previous(self, since: str = "24h", *, end: float | None = None, step: str = "15s") -> dict[str, Any]:
        """The summary of the window of the same length just before (the dashboard's trend arrow)."""
        at = time.time() if end is None else float(end)
        return self.summary(since, end=at - parse_duration(since), step=step)


_INTERRUPTED = ("cancelled", "abandoned")  # the outcomes summary.INTERRUPTED names (kept free of the SDK import)


def _int(v: float) -> int:
    """A count from Prometheus (a float) as an int."""
    return int(round(v))


def _buckets(rows: list[tuple[dict[str, str], float]]) -> dict[str, int]:
    """Cumulative ``le`` buckets in seconds as the summary's per-bucket counts keyed in ms."""
    bounds = []
    for labels, v in rows:
        le = labels.get("le")
        if le is None:
            continue
        bounds.append((float("inf") if le == "+Inf" else float(le), _int(v)))
    bounds.sort()
    out: dict[str, int] = {}
    before = 0
    for bound, cumulative in bounds:
        key = "+Inf" if bound == float("inf") else f"{bound * 1000:g}"
        out[key] = max(0, cumulative - before)
        before = cumulative
    return out
