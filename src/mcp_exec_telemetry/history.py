"""Metrics history on disk: one JSON file per session, a summary per day and per quarter.

Layout (the design's "Metrics History")::

    <root>/                        root: argument, else MCP_EXEC_METRICS_DIR, else .mcp_exec/metrics
    ├── 2024-11-08/
    │   ├── session_001.json       a session's JSON summary, plus its number, end time and counts
    │   ├── session_002.json
    │   └── daily_summary.json     every session of the day, aggregated
    └── quarterly_report.json      every day of each quarter, aggregated

Aggregates are computed from counts and sums (hits / queries, total ms / executions ...), never as
averages of averages, so a day of one long and one short session weighs each query equally. Every
file is written to a temporary file and renamed into place, under an exclusive ``fcntl.flock`` on
``<root>/.lock``: concurrent agent processes get distinct session numbers, and a writer killed at
any point leaves either the complete file or none (its temporary file is removed by the next
writer). A session's date is the UTC date of its ``start_time``.

Reading never stops at a bad file: :func:`scan` reports a corrupt or foreign file as a
:class:`Problem` (and logs it) and goes on with the rest.
"""

from __future__ import annotations

import json
import logging
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

__all__ = [
    "DEFAULT_ROOT",
    "ENV_VAR",
    "HistoryError",
    "Problem",
    "Scan",
    "SessionRecord",
    "aggregate",
    "load_session",
    "metrics_root",
    "quarter_of",
    "report",
    "scan",
    "write_session",
]

_logger = logging.getLogger("mcp_exec_telemetry.history")
_logger.addHandler(logging.NullHandler())  # a library does not print; configure logging to see these

DEFAULT_ROOT = ".mcp_exec/metrics"
ENV_VAR = "MCP_EXEC_METRICS_DIR"
SCHEMA = 1
SESSION_KIND = "mcp_exec_session"
DAILY_KIND = "mcp_exec_daily_summary"
QUARTERLY_KIND = "mcp_exec_quarterly_report"
REPORT_KIND = "mcp_exec_report"
DAILY_FILE = "daily_summary.json"
QUARTERLY_FILE = "quarterly_report.json"
LOCK_FILE = ".lock"
TOP_SKILLS_KEPT = 50
"""Skills an aggregate lists in ``top_skills`` (each session lists at most its top 10)."""

_SESSION_RE = re.compile(r"^session_(\d+)\.json$")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_FMT = "%Y-%m-%dT%H:%M:%SZ"

# Test hook: called with the temporary file's path after it is written and before it is renamed.
_after_temp_write: Callable[[Path], None] | None = None


class HistoryError(Exception):
    """The history cannot answer: no such file, not a session file, or nothing in the range."""


@dataclass(frozen=True)
class Problem:
    """A file of the history that was skipped, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


@dataclass
class SessionRecord:
    """One session file: where it is, its day and number, and its content."""

    path: Path
    day: date
    number: int
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        """``YYYY-MM-DD/NNN``, how the command line names a session."""
        return f"{self.day.isoformat()}/{self.number:03d}"


@dataclass
class Scan:
    """Sessions found in a date range (oldest first) and the files skipped on the way."""

    sessions: list[SessionRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


# --- paths and dates -------------------------------------------------------------------------


def metrics_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The history folder: ``root``, else ``$MCP_EXEC_METRICS_DIR``, else ``.mcp_exec/metrics``."""
    if root is None or root is True:
        root = os.environ.get(ENV_VAR) or DEFAULT_ROOT
    return Path(root)


def parse_time(text: str) -> datetime:
    """A summary's ``YYYY-MM-DDTHH:MM:SSZ`` time as an aware UTC datetime."""
    return datetime.strptime(text, _TIME_FMT).replace(tzinfo=timezone.utc)


def quarter_of(day: date) -> str:
    """``2024-Q4`` for any day of October to December 2024."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _session_day(summary: Mapping[str, Any]) -> date:
    try:
        return parse_time(str(summary["start_time"])).date()
    except (KeyError, ValueError) as exc:
        raise ValueError(f"summary needs a start_time like 2024-11-08T10:30:00Z, got {summary.get('start_time')!r}") from exc


# --- writing ---------------------------------------------------------------------------------


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the history's exclusive lock; the kernel releases it if the process dies."""
    import fcntl

    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _atomic_write(path: Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as JSON next to ``path``, fsync it, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if _after_temp_write is not None:
        _after_temp_write(tmp)
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_stale_temps(folder: Path) -> None:
    """Remove temporary files left by killed writers (only called with the lock held)."""
    for p in folder.glob(".*.tmp"):
        try:
            p.unlink()
        except OSError:
            pass


def _session_numbers(day_dir: Path) -> list[int]:
    nums = []
    for p in day_dir.iterdir():
        m = _SESSION_RE.match(p.name)
        if m:
            nums.append(int(m.group(1)))
    return sorted(nums)


def _session_name(number: int) -> str:
    return f"session_{number:03d}.json"


def write_session(summary: Mapping[str, Any], root: str | os.PathLike[str] | None = None) -> Path:
    """Add one session's JSON summary to the history; returns the new ``session_NNN.json``.

    The session gets the next free number of its day; then the day's ``daily_summary.json`` and
    the root's ``quarterly_report.json`` are brought up to date. Safe across processes.
    """
    day = _session_day(summary)
    base = metrics_root(root)
    base.mkdir(parents=True, exist_ok=True)
    day_dir = base / day.isoformat()
    with _locked(base):
        day_dir.mkdir(exist_ok=True)
        _remove_stale_temps(day_dir)
        _remove_stale_temps(base)
        existing = _session_numbers(day_dir)
        number = (existing[-1] if existing else 0) + 1
        doc = _session_doc(summary, day, number)
        path = day_dir / _session_name(number)
        _atomic_write(path, doc)
        _fsync_dir(day_dir)
        daily = _update_daily(day_dir, day, doc, existing)
        _update_quarterly(base, day, daily)
    return path


def _session_doc(summary: Mapping[str, Any], day: date, number: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": SESSION_KIND, "schema": SCHEMA, "date": day.isoformat(), "session": number}
    for key, value in json.loads(json.dumps(summary)).items():  # a deep, JSON-clean copy
        if key not in doc and key != "counts":
            doc[key] = value
    doc["end_time"] = doc.get("timestamp")
    doc["counts"] = _counts(doc)
    return doc


def _counts(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The counts a session summary implies but does not list, needed to aggregate it exactly.

    ``discovery_hits`` (queries that found tools and were not followed by another search) comes
    from the summary's ``hits`` (older files: ``hit_rate * total_queries``). Memory samples come
    from ``memory_samples`` (older files: each execution counts as one).
    """
    d = summary.get("discovery", {})
    e = summary.get("execution", {})
    hits = int(d["hits"]) if "hits" in d else int(round(float(d.get("hit_rate", 0.0)) * int(d.get("total_queries", 0))))
    avg_mem = float(e.get("memory_avg_mb", 0.0))
    samples = int(e["memory_samples"]) if "memory_samples" in e else (int(e.get("total_executions", 0)) if avg_mem else 0)
    return {"sessions": 1, "discovery_hits": hits, "memory_samples": samples, "memory_total_mb": round(avg_mem * samples, 3)}


def _update_daily(day_dir: Path, day: date, new: dict[str, Any], before: list[int]) -> dict[str, Any]:
    """Merge the new session into the day's summary, or rebuild it when it is stale or unreadable."""
    path = day_dir / DAILY_FILE
    daily = _read_kind(path, DAILY_KIND)
    if daily is not None and daily.get("session_numbers") == before:
        agg = aggregate([daily, new])
        numbers = before + [new["session"]]
    else:
        sessions = _read_day_sessions(day_dir).sessions
        agg = aggregate(sessions)
        numbers = [r.number for r in sessions]
    doc = {"kind": DAILY_KIND, "schema": SCHEMA, "date": day.isoformat(), "session_numbers": numbers, **agg}
    _atomic_write(path, doc)
    return doc


def _update_quarterly(base: Path, day: date, daily: dict[str, Any]) -> None:
    path = base / QUARTERLY_FILE
    current = _read_kind(path, QUARTERLY_KIND)
    quarters: dict[str, Any] = dict(current["quarters"]) if current and isinstance(current.get("quarters"), dict) else {}
    wanted = {quarter_of(day)}
    if current is None:  # missing or unreadable: rebuild every quarter present on disk
        wanted |= {quarter_of(d) for d in _days(base)}
    for q in sorted(wanted):
        quarters[q] = _quarter(base, q, day, daily)
    _atomic_write(path, {"kind": QUARTERLY_KIND, "schema": SCHEMA, "quarters": dict(sorted(quarters.items()))})


def _quarter(base: Path, q: str, day: date, daily: dict[str, Any]) -> dict[str, Any]:
    """A quarter's aggregate from its days' summaries (rebuilt from sessions where unreadable)."""
    parts: list[Mapping[str, Any]] = []
    days: dict[str, int] = {}
    for d in _days(base):
        if quarter_of(d) != q:
            continue
        if d == day:
            doc: Mapping[str, Any] | None = daily
        else:
            doc = _read_kind(base / d.isoformat() / DAILY_FILE, DAILY_KIND)
            if doc is None:
                sessions = _read_day_sessions(base / d.isoformat()).sessions
                doc = aggregate(sessions) if sessions else None
        if doc is not None and doc.get("counts", {}).get("sessions"):
            parts.append(doc)
            days[d.isoformat()] = int(doc["counts"]["sessions"])
    return {"quarter": q, "days": days, **aggregate(parts)}


# --- reading ---------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _read_kind(path: Path, kind: str) -> dict[str, Any] | None:
    try:
        doc = _read_json(path)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == kind else None


def _days(base: Path) -> list[date]:
    out = []
    if not base.is_dir():
        return out
    for p in base.iterdir():
        if p.is_dir() and _DAY_RE.match(p.name):
            try:
                out.append(date.fromisoformat(p.name))
            except ValueError:
                continue
    return sorted(out)


def _check_session(doc: Any) -> str | None:
    """Why ``doc`` is not a usable session file, or None when it is."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("kind") != SESSION_KIND:
        return "not an mcp-exec-telemetry session file (no \"kind\": \"mcp_exec_session\")"
    for section in ("discovery", "execution", "sdk", "filtering", "skills", "security"):
        if not isinstance(doc.get(section), dict):
            return f"missing section {section!r}"
    try:
        parse_time(str(doc.get("start_time")))
        int(doc["session"])
        _numbers(doc)
    except (KeyError, TypeError, ValueError) as exc:
        return f"bad field: {exc}"
    return None


def _numbers(doc: Mapping[str, Any]) -> None:
    """Raise TypeError/ValueError when a count the aggregation reads is not a number."""
    for section, keys in _SUM_FIELDS.items():
        for key in keys:
            v = doc[section].get(key, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{section}.{key} is {v!r}, not a number")


def load_session(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check one session file; raises :class:`HistoryError` with a one-line reason."""
    p = Path(path)
    try:
        doc = _read_json(p)
    except FileNotFoundError:
        raise HistoryError(f"no such session file: {p}") from None
    except IsADirectoryError:
        raise HistoryError(f"{p} is a folder, not a session file") from None
    except OSError as exc:
        raise HistoryError(f"cannot read {p}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise HistoryError(f"{p} is not valid JSON: {exc}") from None
    why = _check_session(doc)
    if why:
        raise HistoryError(f"{p}: {why}")
    return doc


def _read_day_sessions(day_dir: Path, problems: list[Problem] | None = None) -> Scan:
    out = Scan(problems=problems if problems is not None else [])
    try:
        day = date.fromisoformat(day_dir.name)
        entries = sorted(day_dir.iterdir())
    except (ValueError, OSError):
        return out
    for p in entries:
        name = p.name
        m = _SESSION_RE.match(name)
        if m is None:
            if name == DAILY_FILE or name.startswith("."):
                continue
            out.problems.append(Problem(p, "foreign file (not session_NNN.json)"))
            continue
        try:
            doc = _read_json(p)
        except (OSError, ValueError) as exc:
            out.problems.append(Problem(p, f"corrupt JSON ({exc})"))
            continue
        why = _check_session(doc)
        if why:
            out.problems.append(Problem(p, why))
            continue
        out.sessions.append(SessionRecord(p, day, int(m.group(1)), doc))
    out.sessions.sort(key=lambda r: r.number)
    return out


def scan(root: str | os.PathLike[str] | None = None, start: date | None = None, end: date | None = None) -> Scan:
    """Every readable session from ``start`` to ``end`` (inclusive, UTC days), oldest first.

    Unreadable, corrupt and foreign files are listed in ``problems`` and logged, never raised.
    """
    base = metrics_root(root)
    result = Scan()
    if not base.is_dir():
        return result
    for p in sorted(base.iterdir()):
        if p.name.startswith(".") or p.name == QUARTERLY_FILE or (p.is_dir() and _DAY_RE.match(p.name)):
            continue
        result.problems.append(Problem(p, "foreign entry (not a YYYY-MM-DD folder)"))
    for d in _days(base):
        if (start is not None and d < start) or (end is not None and d > end):
            continue
        part = _read_day_sessions(base / d.isoformat(), result.problems)
        result.sessions.extend(part.sessions)
    for problem in result.problems:
        _logger.warning("mcp-exec-telemetry history: %s", problem)
    return result


def report(root: str | os.PathLike[str] | None = None, start: date | None = None, end: date | None = None) -> dict[str, Any]:
    """The aggregate of every session from ``start`` to ``end``, computed from the session files.

    Raises :class:`HistoryError` when the range holds no readable session.
    """
    found = scan(root, start, end)
    if not found.sessions:
        where = metrics_root(root)
        span = "" if start is None and end is None else f" from {start or 'the beginning'} to {end or 'today'}"
        raise HistoryError(f"no sessions in {where}{span}")
    first, last = found.sessions[0].day, found.sessions[-1].day
    period = {"from": (start or first).isoformat(), "to": (end or last).isoformat()}
    return {"kind": REPORT_KIND, "schema": SCHEMA, "period": period, **aggregate(r.doc for r in found.sessions)}


# --- aggregation -----------------------------------------------------------------------------

_SUM_FIELDS: dict[str, tuple[str, ...]] = {
    "discovery": ("total_queries", "successful_queries", "failed_queries", "continued_queries", "total_time_ms", "cache_hits"),
    "execution": ("total_executions", "successful_executions", "failed_executions", "total_duration_ms", "timeouts"),
    "sdk": ("total_generations", "failed_generations", "total_generation_time_ms", "tools_included", "ipc_handler_size_bytes", "cache_hits"),
    "filtering": ("total_operations", "failed_operations", "estimated_tokens_saved", "total_input_bytes", "total_output_bytes"),
    "skills": ("total_skills", "active_skills", "deleted_skills", "executions", "successful_executions"),
    "security": ("pii_detected", "tokens_created", "tokenized_detections", "audit_events"),
}
_MAP_FIELDS: dict[str, tuple[str, ...]] = {
    "discovery": ("detail_levels",),
    "execution": ("languages", "duration_buckets_ms"),
    "filtering": ("operations",),
    "security": ("patterns",),
}


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _bucket_key(k: str) -> float:
    try:
        return float(k)
    except ValueError:
        return float("inf")


def _add(total: dict[str, Any], key: str, value: Any) -> None:
    total[key] = total.get(key, 0) + value


def aggregate(docs: Iterable[Mapping[str, Any] | SessionRecord]) -> dict[str, Any]:
    """Sessions (or aggregates of sessions) combined into one summary of the same shape.

    Counts and sums add up; every rate and average is recomputed from them, weighted by its
    own denominator: ``hit_rate = hits / queries``, ``avg_duration_ms = total ms / executions``.
    """
    sums: dict[str, dict[str, Any]] = {s: {} for s in _SUM_FIELDS}
    maps: dict[str, dict[str, dict[str, int]]] = {s: {k: {} for k in keys} for s, keys in _MAP_FIELDS.items()}
    counts: dict[str, Any] = {"sessions": 0, "discovery_hits": 0, "memory_samples": 0, "memory_total_mb": 0.0}
    skills: dict[str, dict[str, Any]] = {}
    services: dict[str, int] = {}
    starts: list[str] = []
    ends: list[str] = []
    duration_ms = 0
    peak_mb = 0.0
    for item in docs:
        doc = item.doc if isinstance(item, SessionRecord) else item
        c = doc.get("counts") or _counts(doc)
        for key in counts:
            _add(counts, key, c.get(key, 0))
        for section, keys in _SUM_FIELDS.items():
            sec = doc.get(section, {})
            for key in keys:
                _add(sums[section], key, sec.get(key, 0))
        for section, keys in _MAP_FIELDS.items():
            for key in keys:
                for label, n in (doc.get(section, {}).get(key) or {}).items():
                    _add(maps[section][key], str(label), n)
        peak_mb = max(peak_mb, float(doc.get("execution", {}).get("memory_peak_mb", 0.0)))
        for st in doc.get("skills", {}).get("top_skills", []):
            agg = skills.setdefault(st["name"], {"name": st["name"], "runs": 0, "successes": 0, "total_duration_ms": 0.0})
            agg["runs"] += int(st.get("runs", 0))
            agg["successes"] += int(st.get("successes", 0))
            agg["total_duration_ms"] += float(st.get("total_duration_ms", float(st.get("avg_duration_ms", 0.0)) * int(st.get("runs", 0))))
        duration_ms += int(doc.get("session_duration_ms", 0))
        if doc.get("service_names"):
            for name, n in doc["service_names"].items():
                _add(services, name, n)
        elif doc.get("service_name") is not None:
            _add(services, str(doc["service_name"]), 1)
        if doc.get("start_time"):
            starts.append(str(doc["start_time"]))
        end = doc.get("end_time") or doc.get("timestamp")
        if end:
            ends.append(str(end))

    d, e, g, f, k, s = (sums[x] for x in ("discovery", "execution", "sdk", "filtering", "skills", "security"))
    r3 = lambda x: round(x, 3)  # noqa: E731
    r6 = lambda x: round(x, 6)  # noqa: E731
    buckets = dict(sorted(maps["execution"]["duration_buckets_ms"].items(), key=lambda kv: _bucket_key(kv[0])))
    top = sorted(skills.values(), key=lambda st: (-st["runs"], st["name"]))[:TOP_SKILLS_KEPT]
    for st in top:
        st["total_duration_ms"] = r3(st["total_duration_ms"])
        st["avg_duration_ms"] = r3(_ratio(st["total_duration_ms"], st["runs"]))
    counts["memory_total_mb"] = r3(counts["memory_total_mb"])
    return {
        "timestamp": max(ends) if ends else None,
        "start_time": min(starts) if starts else None,
        "end_time": max(ends) if ends else None,
        "sessions": counts["sessions"],
        "session_duration_ms": duration_ms,
        "service_name": next(iter(services)) if len(services) == 1 else "",
        "service_names": dict(sorted(services.items())),
        "discovery": {
            "total_queries": d["total_queries"],
            "successful_queries": d["successful_queries"],
            "failed_queries": d["failed_queries"],
            "continued_queries": d["continued_queries"],
            "hit_rate": r6(_ratio(counts["discovery_hits"], d["total_queries"])),
            "avg_response_time_ms": r3(_ratio(d["total_time_ms"], d["total_queries"])),
            "total_time_ms": r3(d["total_time_ms"]),
            "cache_hits": d["cache_hits"],
            "detail_levels": dict(sorted(maps["discovery"]["detail_levels"].items())),
        },
        "execution": {
            "total_executions": e["total_executions"],
            "successful_executions": e["successful_executions"],
            "failed_executions": e["failed_executions"],
            "success_rate": r6(_ratio(e["successful_executions"], e["total_executions"])),
            "avg_duration_ms": r3(_ratio(e["total_duration_ms"], e["total_executions"])),
            "total_duration_ms": r3(e["total_duration_ms"]),
            "languages": dict(sorted(maps["execution"]["languages"].items())),
            "timeouts": e["timeouts"],
            "memory_peak_mb": r3(peak_mb),
            "memory_avg_mb": r3(_ratio(counts["memory_total_mb"], counts["memory_samples"])),
            "duration_buckets_ms": buckets,
        },
        "sdk": {
            "total_generations": g["total_generations"],
            "failed_generations": g["failed_generations"],
            "avg_generation_time_ms": r3(_ratio(g["total_generation_time_ms"], g["total_generations"])),
            "total_generation_time_ms": r3(g["total_generation_time_ms"]),
            "tools_included": g["tools_included"],
            "ipc_handler_size_bytes": g["ipc_handler_size_bytes"],
            "cache_hits": g["cache_hits"],
            "cache_utilization": r6(_ratio(g["cache_hits"], g["total_generations"])),
        },
        "filtering": {
            "total_operations": f["total_operations"],
            "failed_operations": f["failed_operations"],
            "avg_reduction_ratio": r6(1.0 - f["total_output_bytes"] / f["total_input_bytes"] if f["total_input_bytes"] else 0.0),
            "estimated_tokens_saved": f["estimated_tokens_saved"],
            "total_input_bytes": f["total_input_bytes"],
            "total_output_bytes": f["total_output_bytes"],
            "operations": dict(sorted(maps["filtering"]["operations"].items())),
        },
        "skills": {
            "total_skills": k["total_skills"],
            "active_skills": k["active_skills"],
            "deleted_skills": k["deleted_skills"],
            "executions": k["executions"],
            "successful_executions": k["successful_executions"],
            "reuse_ratio": r6(_ratio(k["executions"], k["active_skills"])),
            "top_skills": top,
        },
        "security": {
            "pii_detected": s["pii_detected"],
            "patterns": dict(sorted(maps["security"]["patterns"].items())),
            "tokens_created": s["tokens_created"],
            "tokenized_detections": s["tokenized_detections"],
            "protection_rate": r6(_ratio(s["tokenized_detections"], s["pii_detected"])),
            "audit_events": s["audit_events"],
        },
        "counts": counts,
    }
