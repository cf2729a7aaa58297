"""Metrics history in an embedded SQLite database: one row per session, a maintained aggregate per day.

Where it lives::

    <root>/                        root: argument, else MCP_EXEC_METRICS_DIR, else .mcp_exec/metrics
    ├── history.sqlite3            the database (WAL mode; owner-only, as is the folder)
    └── spool/                     sessions that could not be written yet (rare; imported by the next writer)

Tables (schema version in ``PRAGMA user_version``, upgraded by :data:`_MIGRATIONS`):

- ``sessions``: one row per session: the design's JSON session document (``doc``) plus the
  columns reads select and order by (``day``, ``number``, ``start_time``, ``end_time``,
  ``service_name``) and a unique ``uid`` that makes every import idempotent.
- ``daily``: one row per UTC day holding the day's aggregate, updated in the same transaction as
  every session insert, so a day, a range, a quarter or the whole history is an aggregate of a
  few hundred day rows, never a scan of every session.

Aggregates are computed from counts and sums (hits / queries, total ms / executions ...), never
as averages of averages, so a day of one long and one short session weighs each query equally. A
session's date is the UTC date of its ``start_time``; its number is the next free number of its
day. Concurrent writers are serialized by SQLite (``BEGIN IMMEDIATE``); readers never wait.

Writing never blocks longer than a bound (``timeout``, default :data:`DEFAULT_TIMEOUT_S` s or
``$MCP_EXEC_HISTORY_TIMEOUT``): when the database is locked, read-only or the disk is full, the
session goes to a spool file next to the database, one warning is logged, and the next writer
imports it. Nothing is lost, nothing hangs.

Reading never stops at a bad row: a session document that does not validate is skipped with a
warning naming it (:class:`Problem`). The design's file layout (``YYYY-MM-DD/session_NNN.json``,
``daily_summary.json``, ``quarterly_report.json``) is an export (:func:`export_json_files`); a
history still in that layout is imported once, automatically, the first time the database is
created.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple

from . import _atfork  # noqa: F401  (registers the at-fork hook, which resets this module's counters)

__all__ = [
    "DB_FILE",
    "DEFAULT_ROOT",
    "DEFAULT_TIMEOUT_S",
    "ENV_VAR",
    "History",
    "HistoryError",
    "Problem",
    "SavedSession",
    "Scan",
    "SessionRecord",
    "aggregate",
    "export_json_files",
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
TIMEOUT_ENV_VAR = "MCP_EXEC_HISTORY_TIMEOUT"
DEFAULT_TIMEOUT_S = 2.0
"""How long writing a session may wait for the database before it spools the session instead."""
DB_FILE = "history.sqlite3"
SPOOL_DIR = "spool"
SCHEMA = 1
"""Version of the JSON documents (``"schema"`` in each)."""
SESSION_KIND = "mcp_exec_session"
DAILY_KIND = "mcp_exec_daily_summary"
QUARTERLY_KIND = "mcp_exec_quarterly_report"
REPORT_KIND = "mcp_exec_report"
DAILY_FILE = "daily_summary.json"
QUARTERLY_FILE = "quarterly_report.json"
TOP_SKILLS_KEPT = 50
"""Skills an aggregate lists in ``top_skills`` (each session lists at most its top 10)."""

_SESSION_RE = re.compile(r"^session_(\d+)\.json$")
_DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME_FMT = "%Y-%m-%dT%H:%M:%SZ"
_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$")

# Schema migrations: entry i upgrades the database from version i to i + 1, in one transaction.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sessions (
        id INTEGER PRIMARY KEY,
        uid TEXT NOT NULL UNIQUE,
        day TEXT NOT NULL,
        number INTEGER NOT NULL,
        start_time TEXT NOT NULL,
        end_time TEXT,
        service_name TEXT,
        doc TEXT NOT NULL,
        UNIQUE (day, number)
    );
    CREATE TABLE daily (
        day TEXT PRIMARY KEY,
        rows INTEGER NOT NULL,
        doc TEXT NOT NULL
    );
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
)
DB_VERSION = len(_MIGRATIONS)
"""The database schema version this code reads and writes."""

_warned_spool = False  # a process warns once about spooling, however many sessions it spools

# Test hook: called inside a session's write transaction, after its rows are written, before COMMIT.
_before_commit: Callable[[], None] | None = None


class HistoryError(Exception):
    """The history cannot answer: no such session, not a session file, or nothing in the range."""


@dataclass(frozen=True)
class Problem:
    """A session (a database row or a file) that was skipped, and why."""

    path: Path | str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.path}: {self.reason}"


@dataclass
class SessionRecord:
    """One session: its day, its number in the day, its JSON document and where it came from."""

    path: Path | None
    day: date
    number: int
    doc: dict[str, Any]

    @property
    def id(self) -> str:
        """``YYYY-MM-DD/NNN``, how the command line names a session."""
        return f"{self.day.isoformat()}/{self.number:03d}"


@dataclass
class Scan:
    """Sessions found (oldest first) and the rows or files skipped on the way."""

    sessions: list[SessionRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class SavedSession(NamedTuple):
    """Where :func:`write_session` put a session: its id in the database, or the spool file."""

    id: str | None
    """``YYYY-MM-DD/NNN``; None while the session waits in the spool."""
    path: Path
    """The database, or the spool file when the database could not be written."""
    spooled: bool

    def __str__(self) -> str:
        return f"{self.path} (waiting to be imported)" if self.spooled else f"{self.path} as session {self.id}"


# --- paths, dates and validation -------------------------------------------------------------


def metrics_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The history folder: ``root``, else ``$MCP_EXEC_METRICS_DIR``, else ``.mcp_exec/metrics``."""
    if root is None or root is True:
        root = os.environ.get(ENV_VAR) or DEFAULT_ROOT
    return Path(root)


def parse_time(text: str) -> datetime:
    """A summary's ``YYYY-MM-DDTHH:MM:SSZ`` time as an aware UTC datetime; ValueError otherwise."""
    m = _TIME_RE.match(text)
    if m is None:
        raise ValueError(f"time data {text!r} does not match format {_TIME_FMT!r}")
    y, mo, d, h, mi, sec = map(int, m.groups())
    return datetime(y, mo, d, h, mi, sec, tzinfo=timezone.utc)


def quarter_of(day: date) -> str:
    """``2024-Q4`` for any day of October to December 2024."""
    return f"{day.year}-Q{(day.month - 1) // 3 + 1}"


def _session_day(summary: Mapping[str, Any]) -> date:
    try:
        return parse_time(str(summary["start_time"])).date()
    except (KeyError, ValueError) as exc:
        raise ValueError(f"summary needs a start_time like 2024-11-08T10:30:00Z, got {summary.get('start_time')!r}") from exc


def default_timeout() -> float:
    """Seconds a session write may wait: ``$MCP_EXEC_HISTORY_TIMEOUT``, else :data:`DEFAULT_TIMEOUT_S`."""
    text = os.environ.get(TIMEOUT_ENV_VAR)
    if text:
        try:
            value = float(text)
            if value >= 0:
                return value
        except ValueError:
            pass
        _logger.warning("mcp-exec-telemetry: ignoring %s=%r (expected seconds >= 0); using %s", TIMEOUT_ENV_VAR, text, DEFAULT_TIMEOUT_S)
    return DEFAULT_TIMEOUT_S


def _loads(text: Any) -> Any:
    """JSON from text, raising ValueError for anything unparsable (deep nesting included)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _check_session(doc: Any) -> str | None:
    """Why ``doc`` is not a usable session document, or None when it is."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("kind") != SESSION_KIND:
        return "not an mcp-exec-telemetry session (no \"kind\": \"mcp_exec_session\")"
    try:
        _check_summary(doc)
        int(doc["session"])
    except (KeyError, TypeError, ValueError) as exc:
        return f"bad field: {exc}"
    return None


def _check_summary(doc: Mapping[str, Any]) -> None:
    """Raise TypeError/ValueError when a field the aggregation reads has the wrong type."""
    parse_time(str(doc.get("start_time")))
    for section in _SUM_FIELDS:
        if not isinstance(doc.get(section), dict):
            raise ValueError(f"missing section {section!r}")
    for section, keys in _SUM_FIELDS.items():
        for key in keys:
            _number(doc[section].get(key, 0), f"{section}.{key}")
    for section, keys in _MAP_FIELDS.items():
        for key in keys:
            value = doc[section].get(key) or {}
            if not isinstance(value, dict):
                raise TypeError(f"{section}.{key} is {value!r}, not an object")
            for label, n in value.items():
                _number(n, f"{section}.{key}[{label!r}]")
    for st in doc["skills"].get("top_skills") or []:
        if not isinstance(st, dict) or not isinstance(st.get("name"), str):
            raise TypeError(f"skills.top_skills holds {st!r}, not a skill")
        for key in ("runs", "successes", "avg_duration_ms", "total_duration_ms"):
            _number(st.get(key, 0), f"skills.top_skills[{st['name']!r}].{key}")
    _number(doc["execution"].get("memory_peak_mb", 0), "execution.memory_peak_mb")
    _number(doc.get("session_duration_ms", 0), "session_duration_ms")
    if doc.get("end_time") or doc.get("timestamp"):
        parse_time(str(doc.get("end_time") or doc.get("timestamp")))


def _check_aggregate(doc: Any) -> str | None:
    """Why ``doc`` is not a usable day aggregate (a ``daily`` row's document), or None when it is.

    A day row edited by hand or written by another version may be valid JSON with wrong types;
    it must be recomputed, never fed to :func:`aggregate`, which would fail every read and write.
    """
    if not isinstance(doc, dict):
        return "not a JSON object"
    counts = doc.get("counts")
    if not isinstance(counts, dict):
        return "no counts"
    try:
        for key in ("sessions", "discovery_hits", "memory_samples", "memory_total_mb"):
            _number(counts.get(key, 0), f"counts.{key}")
        services = doc.get("service_names") or {}
        if not isinstance(services, dict):
            raise TypeError(f"service_names is {services!r}, not an object")
        for name, n in services.items():
            _number(n, f"service_names[{name!r}]")
        _check_summary(doc)
    except (KeyError, TypeError, ValueError) as exc:
        return f"bad field: {exc}"
    return None


def _number(v: Any, what: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{what} is {v!r}, not a number")


# --- the database ----------------------------------------------------------------------------


def _make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents readable by the owner only (0700)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:
            continue
        os.chmod(d, 0o700)  # mkdir's mode is masked by the umask


# --- fork safety ------------------------------------------------------------------------------
# A process forked while another of its threads is inside SQLite (a write at exit, a read) inherits
# SQLite's mutexes and file-lock bookkeeping in whatever state that thread left them: the child's
# first sqlite3.connect can block forever, whatever the busy timeout. So connections are counted,
# and a child forked while one was open never touches SQLite: it spools its sessions (the next
# writer, in a clean process, imports them) and its reads fail in one line.
_open_connections = 0
_open_connections_lock = threading.Lock()
_sqlite_unsafe_here = False
"""True in a process forked while one of its parent's connections was open."""


def _count_connection(delta: int) -> None:
    global _open_connections
    with _open_connections_lock:
        _open_connections += delta


def _after_fork_in_child() -> None:
    """Called in a forked child by the hook in :mod:`._atfork`."""
    global _open_connections, _open_connections_lock, _sqlite_unsafe_here
    _open_connections_lock = threading.Lock()  # the parent may have held it
    if _open_connections:
        _sqlite_unsafe_here = True
    _open_connections = 0



class _CountedConnection(sqlite3.Connection):
    """A connection that is counted as open until it is closed (see fork safety above)."""

    _counted = True

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._counted:
                self._counted = False
                _count_connection(-1)


def _connect(db: Path, timeout: float, *, readonly: bool = False) -> sqlite3.Connection:
    if _sqlite_unsafe_here:
        raise HistoryError(f"cannot use {db} in this process: it was forked while another thread was using the database")
    _count_connection(+1)  # before connect: connecting takes SQLite's mutexes too
    try:
        if readonly:
            con = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout, isolation_level=None, factory=_CountedConnection)
        else:
            con = sqlite3.connect(str(db), timeout=timeout, isolation_level=None, factory=_CountedConnection)
    except BaseException:
        _count_connection(-1)
        raise
    try:
        con.execute("PRAGMA synchronous=NORMAL")
    except BaseException:
        con.close()
        raise
    return con


def _rollback(con: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already done it.

    On a full disk or an I/O error SQLite rolls the transaction back itself; a second ROLLBACK
    would raise "no transaction is active" and hide the real reason from the warning.
    """
    if con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass


class History:
    """The history of one metrics root: write sessions, read sessions, days, quarters and reports.

    Each call opens its own short-lived connection, so a ``History`` may be shared by threads and
    survives ``fork()``::

        h = History(".mcp_exec/metrics")
        h.write(tel.summary())
        print(h.report()["execution"]["success_rate"])
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, *, timeout: float | None = None) -> None:
        self.root = metrics_root(root)
        self.db_path = self.root / DB_FILE
        self.spool_path = self.root / SPOOL_DIR
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self.imported: int | None = None
        """Sessions imported from JSON files when this object created the database (else None)."""

    # --- opening -------------------------------------------------------------------------------

    def exists(self) -> bool:
        """True when the database exists, or a JSON history that would be imported on first use."""
        return self.db_path.exists() or any(_json_days(self.root))

    def _open_write(self, timeout: float) -> sqlite3.Connection:
        """A connection to a database at the current schema version (created or migrated here)."""
        _make_private_dirs(self.root)
        if not self.db_path.exists():
            try:  # create it owner-only; SQLite gives its -wal and -shm files the same mode
                os.close(os.open(self.db_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
        con = _connect(self.db_path, timeout)
        try:
            self._migrate(con)
        except BaseException:
            con.close()
            raise
        return con

    def _migrate(self, con: sqlite3.Connection) -> None:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version == DB_VERSION:
            return
        if version > DB_VERSION:
            raise HistoryError(f"{self.db_path} has schema version {version}, newer than this mcp-exec-telemetry reads ({DB_VERSION}); upgrade it")
        con.execute("BEGIN IMMEDIATE")
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated it
            if version == 0:
                con.execute("COMMIT")
                con.execute("PRAGMA journal_mode=WAL")  # persistent: set once, when the database is created
                con.execute("BEGIN IMMEDIATE")
                version = con.execute("PRAGMA user_version").fetchone()[0]
            for step in range(version, DB_VERSION):
                for statement in _MIGRATIONS[step].split(";"):
                    if statement.strip():
                        con.execute(statement)
                con.execute(f"PRAGMA user_version={step + 1}")
            if version == 0:
                self.imported = self._import_json_layout(con)
            con.execute("COMMIT")
        except BaseException:
            _rollback(con)
            raise
        if self.imported:
            _logger.warning("mcp-exec-telemetry history: imported %d session%s from the JSON files in %s into %s (the files are left as they were)",
                            self.imported, "" if self.imported == 1 else "s", self.root, self.db_path)

    def _open_read(self) -> sqlite3.Connection | None:
        """A connection for reading, or None when there is no history yet."""
        if not self.db_path.exists():
            if not any(_json_days(self.root)):
                return None
            return self._open_write(self.timeout)  # first use of a JSON history: import it
        try:
            try:
                con = _connect(self.db_path, self.timeout)
            except sqlite3.OperationalError:  # a read-only folder or file
                con = _connect(self.db_path, self.timeout, readonly=True)
        except sqlite3.DatabaseError as exc:
            raise HistoryError(f"cannot read {self.db_path}: {exc}") from None
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version != DB_VERSION:
                con.close()
                if version > DB_VERSION:
                    raise HistoryError(f"{self.db_path} has schema version {version}, newer than this mcp-exec-telemetry reads ({DB_VERSION}); upgrade it")
                return self._open_write(self.timeout)
        except sqlite3.DatabaseError as exc:
            con.close()
            raise HistoryError(f"cannot read {self.db_path}: {exc}") from None
        return con

    # --- writing -------------------------------------------------------------------------------

    def write(self, summary: Mapping[str, Any], *, timeout: float | None = None) -> SavedSession:
        """Add one session's JSON summary; never waits longer than ``timeout`` seconds.

        The session gets the next free number of its day and the day's aggregate is updated in the
        same transaction. When the database cannot be written in time (locked, read-only, disk
        full), the session is kept in a spool file that the next writer imports, and a warning is
        logged once per process. Raises ValueError for a summary that is not a session summary.
        """
        day = _session_day(summary)
        try:
            _check_summary(summary)
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"not a session summary: {exc}") from None
        clean = {key: value for key, value in summary.items() if key != "counts"}  # the document is serialized once, in _insert
        uid = uuid.uuid4().hex
        bound = self.timeout if timeout is None else float(timeout)
        try:
            number = self._write_rows(uid, day, clean, bound)
        except (sqlite3.Error, OSError, HistoryError) as exc:
            return self._spool(uid, clean, exc)
        except TypeError as exc:  # a value JSON cannot hold
            raise ValueError(f"not a session summary: {exc}") from None
        return SavedSession(f"{day.isoformat()}/{number:03d}", self.db_path, False)

    def _write_rows(self, uid: str, day: date, summary: dict[str, Any], bound: float) -> int:
        deadline = time.monotonic() + bound
        with closing(self._open_write(bound)) as con:
            left = max(0.0, deadline - time.monotonic())
            if left < bound - 0.01:  # the migration waited: what is left of the bound
                con.execute(f"PRAGMA busy_timeout={int(left * 1000)}")
            spooled = self._spooled()
            con.execute("BEGIN IMMEDIATE")
            try:
                imported = [path for path, item in spooled if self._import_spooled(con, path, item)]
                number = _insert(con, self.db_path, uid, summary, day)
                if _before_commit is not None:
                    _before_commit()
                con.execute("COMMIT")
            except BaseException:
                _rollback(con)
                raise
        for path in imported:  # committed: a crash before this only means a later, ignored re-import
            try:
                path.unlink()
            except OSError:
                pass
        if imported:
            _logger.warning("mcp-exec-telemetry history: imported %d spooled session%s from %s", len(imported), "" if len(imported) == 1 else "s", self.spool_path)
        assert number is not None
        return number

    def _spooled(self) -> list[tuple[Path, dict[str, Any] | None]]:
        """Sessions waiting in the spool; an unreadable spool file is reported and dropped (None)."""
        try:
            entries = sorted(os.scandir(self.spool_path), key=lambda e: e.name)
        except OSError:
            return []
        out: list[tuple[Path, dict[str, Any] | None]] = []
        for entry in entries:
            if entry.name.endswith(".tmp"):  # a spooler that died mid-write; a live one renames within a second
                try:
                    if time.time() - entry.stat().st_mtime > 60:
                        os.unlink(entry.path)
                except OSError:
                    pass
                continue
            if not entry.name.endswith(".json"):
                continue
            path = Path(entry.path)
            try:
                item = _loads(path.read_text(encoding="utf-8"))
                _session_day(item["summary"])
                _check_summary(item["summary"])
                str(item["uid"])
            except (OSError, ValueError, TypeError, KeyError) as exc:
                _logger.warning("mcp-exec-telemetry history: %s", Problem(path, f"not a spooled session ({exc})"))
                item = None
            out.append((path, item))
        return out

    def _spool(self, uid: str, summary: dict[str, Any], why: BaseException) -> SavedSession:
        global _warned_spool
        path = self.spool_path / f"{time.time_ns():020d}-{uid}.json"
        try:
            _make_private_dirs(self.spool_path)
            tmp = path.with_name("." + path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"uid": uid, "summary": summary}, fh)
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError as exc:
            _logger.warning("mcp-exec-telemetry history: could not write the session to %s (%s) nor spool it in %s (%s); the session is lost",
                            self.db_path, why, self.spool_path, exc)
            raise
        if not _warned_spool:
            _warned_spool = True
            _logger.warning("mcp-exec-telemetry history: could not write %s (%s); session kept in %s, the next writer imports it",
                            self.db_path, why or type(why).__name__, path)
        return SavedSession(None, path, True)

    def import_spool(self) -> int:
        """Import every spooled session now; returns how many. (Every write does this too.)"""
        spooled = self._spooled()
        if not spooled:
            return 0
        with closing(self._open_write(self.timeout)) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                imported = [path for path, item in spooled if self._import_spooled(con, path, item)]
                con.execute("COMMIT")
            except BaseException:
                _rollback(con)
                raise
        for path in imported:
            try:
                path.unlink()
            except OSError:
                pass
        return sum(1 for _p, item in spooled if item is not None)

    def _import_spooled(self, con: sqlite3.Connection, path: Path, item: dict[str, Any] | None) -> bool:
        """Insert one spooled session inside the caller's transaction; True when its file can go.

        A spooled session that cannot be inserted is renamed ``*.rejected`` (kept for a person to
        look at, never retried) so that it cannot stop every later write.
        """
        if item is None:
            return True
        con.execute("SAVEPOINT spooled")
        try:
            _insert(con, self.db_path, str(item["uid"]), item["summary"])
        except (sqlite3.IntegrityError, ValueError, TypeError, KeyError) as exc:
            con.execute("ROLLBACK TO spooled")
            con.execute("RELEASE spooled")
            _logger.warning("mcp-exec-telemetry history: %s", Problem(path, f"spooled session rejected ({exc}); renamed *.rejected"))
            try:
                path.rename(path.with_name(path.name + ".rejected"))
            except OSError:
                pass
            return False
        con.execute("RELEASE spooled")
        return True

    def _import_json_layout(self, con: sqlite3.Connection) -> int:
        """Import ``YYYY-MM-DD/session_NNN.json`` files (the old layout) keeping their numbers."""
        n = 0
        for day, folder in _json_days(self.root):
            found = _read_day_files(folder, day)
            for problem in found.problems:
                _logger.warning("mcp-exec-telemetry history: %s", problem)
            for rec in found.sessions:
                if _insert(con, self.db_path, f"json:{rec.id}", rec.doc, day, rec.number) is not None:
                    n += 1
        return n

    # --- reading -------------------------------------------------------------------------------

    def _records(self, rows: Iterable[tuple[Any, ...]], problems: list[Problem]) -> list[SessionRecord]:
        return _row_records(rows, problems, self.db_path)

    def sessions(self, start: date | None = None, end: date | None = None, *, limit: int | None = None) -> Scan:
        """Sessions from ``start`` to ``end`` (inclusive UTC days), oldest first; with ``limit``, the newest ``limit``."""
        result = Scan()
        con = self._open_read()
        if con is None:
            return result
        where, params = _day_range(start, end)
        with closing(con):
            if limit:
                rows = con.execute(f"SELECT id, day, number, doc FROM sessions {where} ORDER BY day DESC, number DESC LIMIT ?", (*params, limit)).fetchall()
                rows.reverse()
            else:
                rows = con.execute(f"SELECT id, day, number, doc FROM sessions {where} ORDER BY day, number", params).fetchall()
            result.sessions = self._records(rows, result.problems)
        return result

    def count(self, start: date | None = None, end: date | None = None) -> int:
        """How many session rows the range holds (readable or not)."""
        con = self._open_read()
        if con is None:
            return 0
        where, params = _day_range(start, end)
        with closing(con):
            return int(con.execute(f"SELECT COUNT(*) FROM sessions {where}", params).fetchone()[0])

    def session(self, day: date, number: int) -> SessionRecord | None:
        """The session ``day``/``number``, or None (a row that does not validate is reported and None)."""
        return self._one("WHERE day = ? AND number = ?", (day.isoformat(), number))

    def latest(self) -> SessionRecord | None:
        """The newest session (the highest number of the latest day)."""
        return self._one("", (), newest=True)

    def before(self, day: date, number: int) -> SessionRecord | None:
        """The session just before ``day``/``number``."""
        d = day.isoformat()
        return self._one("WHERE day < ? OR (day = ? AND number < ?)", (d, d, number), newest=True)

    def _one(self, where: str, params: tuple[Any, ...], newest: bool = False) -> SessionRecord | None:
        con = self._open_read()
        if con is None:
            return None
        order = "ORDER BY day DESC, number DESC" if newest else ""
        problems: list[Problem] = []
        with closing(con):
            # Rows stream in order: skip the ones that do not validate (each is warned about) until one does.
            for row in con.execute(f"SELECT id, day, number, doc FROM sessions {where} {order}", params):
                good = self._records([row], problems)
                if good:
                    return good[0]
            return None

    def days(self, start: date | None = None, end: date | None = None) -> list[tuple[date, dict[str, Any]]]:
        """Each day with sessions in the range, oldest first, with its aggregate.

        A day whose aggregate row disagrees with its session rows (edited by hand, written by an
        older version) is recomputed from its sessions for this answer.
        """
        con = self._open_read()
        if con is None:
            return []
        where, params = _day_range(start, end)
        out = []
        with closing(con):
            counts = dict(con.execute(f"SELECT day, COUNT(*) FROM sessions {where} GROUP BY day", params).fetchall())
            stored = {d: (rows, text) for d, rows, text in con.execute(f"SELECT day, rows, doc FROM daily {where}", params)}
            for day_text in sorted(counts):
                rows, text = stored.get(day_text, (None, None))
                doc = None
                if rows == counts[day_text]:
                    try:
                        doc = _loads(text)
                        why = _check_aggregate(doc)
                    except ValueError as exc:
                        why = f"corrupt JSON ({exc})"
                    if why:
                        _logger.warning("mcp-exec-telemetry history: %s", Problem(f"day {day_text} (daily row of {self.db_path})", f"{why}; recomputed from its sessions"))
                        doc = None
                if doc is None:
                    doc = _rebuild_day(con, day_text, self.db_path, write=False)
                if doc is not None and doc.get("sessions"):
                    out.append((date.fromisoformat(day_text), doc))
        return out

    def report(self, start: date | None = None, end: date | None = None) -> dict[str, Any]:
        """The aggregate of every session from ``start`` to ``end``; :class:`HistoryError` if there is none."""
        days = self.days(start, end)
        if not days:
            span = "" if start is None and end is None else f" from {start or 'the beginning'} to {end or 'today'}"
            raise HistoryError(f"no sessions in {self.root}{span}")
        period = {"from": (start or days[0][0]).isoformat(), "to": (end or days[-1][0]).isoformat()}
        return {"kind": REPORT_KIND, "schema": SCHEMA, "period": period, **aggregate(doc for _d, doc in days)}

    def daily_summary(self, day: date) -> dict[str, Any] | None:
        """The design's ``daily_summary.json`` of ``day``, or None when the day has no session."""
        days = self.days(day, day)
        if not days:
            return None
        con = self._open_read()
        assert con is not None
        with closing(con):
            numbers = [n for (n,) in con.execute("SELECT number FROM sessions WHERE day = ? ORDER BY number", (day.isoformat(),))]
        return {"kind": DAILY_KIND, "schema": SCHEMA, "date": day.isoformat(), "session_numbers": numbers, **days[0][1]}

    def quarterly_report(self) -> dict[str, Any]:
        """The design's ``quarterly_report.json``: every quarter, aggregated from its days."""
        by_quarter: dict[str, list[tuple[date, dict[str, Any]]]] = {}
        for day, doc in self.days():
            by_quarter.setdefault(quarter_of(day), []).append((day, doc))
        quarters = {}
        for q, days in sorted(by_quarter.items()):
            quarters[q] = {"quarter": q, "days": {d.isoformat(): int(doc["sessions"]) for d, doc in days}, **aggregate(doc for _d, doc in days)}
        return {"kind": QUARTERLY_KIND, "schema": SCHEMA, "quarters": quarters}

    def export_json_files(self, folder: str | os.PathLike[str]) -> int:
        """Write the design's layout under ``folder``: ``YYYY-MM-DD/session_NNN.json``,
        ``YYYY-MM-DD/daily_summary.json`` and ``quarterly_report.json``; returns the sessions written."""
        out = Path(folder)
        _make_private_dirs(out)
        n = 0
        found = self.sessions()
        for rec in found.sessions:
            day_dir = out / rec.day.isoformat()
            if not day_dir.exists():
                _make_private_dirs(day_dir)
            _write_json(day_dir / f"session_{rec.number:03d}.json", rec.doc)
            n += 1
        for day, _doc in self.days():
            daily = self.daily_summary(day)
            if daily is not None:
                _write_json(out / day.isoformat() / DAILY_FILE, daily)
        _write_json(out / QUARTERLY_FILE, self.quarterly_report())
        return n


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(doc, indent=2) + "\n")


def _dumps(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _day_range(start: date | None, end: date | None) -> tuple[str, tuple[str, ...]]:
    clauses, params = [], []
    if start is not None:
        clauses.append("day >= ?")
        params.append(start.isoformat())
    if end is not None:
        clauses.append("day <= ?")
        params.append(end.isoformat())
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)


def _insert(con: sqlite3.Connection, db_path: Path, uid: str, summary: Mapping[str, Any], day: date | None = None, number: int | None = None) -> int | None:
    """Insert one session and fold it into its day's aggregate (inside the caller's transaction).

    Returns its number, or None when a session with this ``uid`` is already there.
    """
    day = day or _session_day(summary)
    day_text = day.isoformat()
    if number is None:
        number = int(con.execute("SELECT COALESCE(MAX(number), 0) + 1 FROM sessions WHERE day = ?", (day_text,)).fetchone()[0])
    doc = _session_doc(summary, day, number)
    cur = con.execute(
        "INSERT OR IGNORE INTO sessions (uid, day, number, start_time, end_time, service_name, doc) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (uid, day_text, number, str(doc["start_time"]), doc.get("end_time"), str(doc.get("service_name") or ""), _dumps(doc)),
    )
    if cur.rowcount == 0:  # this uid is already there (a spooled session imported twice)
        return None
    row = con.execute("SELECT rows, doc FROM daily WHERE day = ?", (day_text,)).fetchone()
    merged = None
    if row is not None and isinstance(row[0], int):
        # The day row is this package's own: it is trusted until merging it fails (checking every
        # field first cost a tenth of each write). A damaged row never stops a write: rebuilt below.
        try:
            daily = _loads(row[1])
            merged = aggregate([daily, doc]) if isinstance(daily, dict) and isinstance(daily.get("counts"), dict) else None
        except (ValueError, TypeError, KeyError, AttributeError):
            merged = None
    if merged is not None:
        con.execute("UPDATE daily SET rows = ?, doc = ? WHERE day = ?", (row[0] + 1, _dumps(merged), day_text))
    else:  # missing or damaged: rebuild the day from its rows
        _rebuild_day(con, day_text, db_path, write=True)
    return number


def _row_records(rows: Iterable[tuple[Any, ...]], problems: list[Problem], db_path: Path) -> list[SessionRecord]:
    """Session rows as records; a row that does not validate becomes a logged :class:`Problem`."""
    out = []
    for row_id, day_text, number, text in rows:
        try:
            doc = _loads(text)
            why = _check_session(doc)
            day = date.fromisoformat(day_text)
        except (ValueError, TypeError) as exc:
            why = f"corrupt JSON ({exc})"
        if why:
            problem = Problem(f"session {day_text}/{number:03d} (row {row_id} of {db_path})", why)
            problems.append(problem)
            _logger.warning("mcp-exec-telemetry history: %s", problem)
            continue
        out.append(SessionRecord(db_path, day, int(number), doc))
    return out


def _rebuild_day(con: sqlite3.Connection, day_text: str, db_path: Path, write: bool) -> dict[str, Any] | None:
    """A day's aggregate recomputed from its session rows (stored when ``write``)."""
    rows = con.execute("SELECT id, day, number, doc FROM sessions WHERE day = ? ORDER BY number", (day_text,)).fetchall()
    records = _row_records(rows, [], db_path)
    doc = aggregate(records) if records else None
    if write:
        if doc is None:
            con.execute("DELETE FROM daily WHERE day = ?", (day_text,))
        else:
            con.execute("INSERT OR REPLACE INTO daily (day, rows, doc) VALUES (?, ?, ?)", (day_text, len(rows), _dumps(doc)))
    return doc


def _session_doc(summary: Mapping[str, Any], day: date, number: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": SESSION_KIND, "schema": SCHEMA, "date": day.isoformat(), "session": number}
    for key, value in summary.items():
        if key not in doc and key != "counts":
            doc[key] = value
    doc["end_time"] = doc.get("end_time") or doc.get("timestamp")
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


# --- JSON files (the design's layout; imported once, written by the export) ------------------


def _json_days(root: Path) -> Iterator[tuple[date, Path]]:
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if _DAY_RE.match(entry.name) and entry.is_dir():
            try:
                day = date.fromisoformat(entry.name)
            except ValueError:
                continue
            folder = Path(entry.path)
            if any(_SESSION_RE.match(p.name) for p in folder.iterdir()):
                yield day, folder


def _read_day_files(folder: Path, day: date) -> Scan:
    out = Scan()
    for p in sorted(folder.iterdir()):
        m = _SESSION_RE.match(p.name)
        if m is None:
            continue
        try:
            doc = _loads(p.read_text(encoding="utf-8"))
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


def load_session(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check one session JSON file (an export); raises :class:`HistoryError` with a one-line reason."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as fh:
            text = fh.read()
        doc = _loads(text)
    except FileNotFoundError:
        raise HistoryError(f"no such session file: {p}") from None
    except IsADirectoryError:
        raise HistoryError(f"{p} is a folder, not a session file") from None
    except OSError as exc:
        raise HistoryError(f"cannot read {p}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{p} is not valid JSON: {exc}") from None
    why = _check_session(doc)
    if why:
        raise HistoryError(f"{p}: {why}")
    return doc


# --- module-level shortcuts ------------------------------------------------------------------


def write_session(summary: Mapping[str, Any], root: str | os.PathLike[str] | None = None, *, timeout: float | None = None) -> SavedSession:
    """Add one session's JSON summary to the history of ``root``; see :meth:`History.write`."""
    return History(root).write(summary, timeout=timeout)


def scan(root: str | os.PathLike[str] | None = None, start: date | None = None, end: date | None = None) -> Scan:
    """Every readable session from ``start`` to ``end`` (inclusive, UTC days), oldest first.

    Rows that do not validate are listed in ``problems`` and logged, never raised.
    """
    return History(root).sessions(start, end)


def report(root: str | os.PathLike[str] | None = None, start: date | None = None, end: date | None = None) -> dict[str, Any]:
    """The aggregate of every session from ``start`` to ``end``; raises :class:`HistoryError` when there is none."""
    return History(root).report(start, end)


def export_json_files(folder: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> int:
    """Write the history of ``root`` in the design's JSON layout under ``folder``; see :meth:`History.export_json_files`."""
    return History(root).export_json_files(folder)


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
    "discovery": ("detail_levels", "interrupted"),
    "execution": ("languages", "duration_buckets_ms", "interrupted"),
    "sdk": ("interrupted",),
    "filtering": ("operations", "interrupted"),
    "skills": ("interrupted",),
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
    sums: dict[str, dict[str, Any]] = {s: dict.fromkeys(keys, 0) for s, keys in _SUM_FIELDS.items()}
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
            counts[key] += c.get(key, 0)
        for section, keys in _SUM_FIELDS.items():
            sec = doc.get(section, {})
            total = sums[section]
            for key in keys:
                v = sec.get(key)
                if v:
                    total[key] += v
        for section, keys in _MAP_FIELDS.items():
            sec = doc.get(section, {})
            for key in keys:
                values = sec.get(key)
                if values:
                    target = maps[section][key]
                    for label, n in values.items():
                        _add(target, str(label), n)
        peak_mb = max(peak_mb, float(doc.get("execution", {}).get("memory_peak_mb", 0.0)))
        for st in doc.get("skills", {}).get("top_skills", []):
            agg = skills.get(st["name"])
            if agg is None:
                agg = skills[st["name"]] = {"name": st["name"], "runs": 0, "successes": 0, "total_duration_ms": 0.0}
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
    # Cancelled and abandoned steps stay in each total but are neither failures nor in success rates,
    # as in a session's own summary.
    stopped = {section: dict(sorted(maps[section]["interrupted"].items())) for section in ("discovery", "execution", "sdk", "filtering", "skills")}
    finished_executions = e["total_executions"] - sum(stopped["execution"].values())
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
            "interrupted": stopped["discovery"],
        },
        "execution": {
            "total_executions": e["total_executions"],
            "successful_executions": e["successful_executions"],
            "failed_executions": e["failed_executions"],
            "success_rate": r6(_ratio(e["successful_executions"], finished_executions)),
            "avg_duration_ms": r3(_ratio(e["total_duration_ms"], e["total_executions"])),
            "total_duration_ms": r3(e["total_duration_ms"]),
            "languages": dict(sorted(maps["execution"]["languages"].items())),
            "timeouts": e["timeouts"],
            "memory_peak_mb": r3(peak_mb),
            "memory_avg_mb": r3(_ratio(counts["memory_total_mb"], counts["memory_samples"])),
            "duration_buckets_ms": buckets,
            "interrupted": stopped["execution"],
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
            "interrupted": stopped["sdk"],
        },
        "filtering": {
            "total_operations": f["total_operations"],
            "failed_operations": f["failed_operations"],
            "avg_reduction_ratio": r6(1.0 - f["total_output_bytes"] / f["total_input_bytes"] if f["total_input_bytes"] else 0.0),
            "estimated_tokens_saved": f["estimated_tokens_saved"],
            "total_input_bytes": f["total_input_bytes"],
            "total_output_bytes": f["total_output_bytes"],
            "operations": dict(sorted(maps["filtering"]["operations"].items())),
            "interrupted": stopped["filtering"],
        },
        "skills": {
            "total_skills": k["total_skills"],
            "active_skills": k["active_skills"],
            "deleted_skills": k["deleted_skills"],
            "executions": k["executions"],
            "successful_executions": k["successful_executions"],
            "reuse_ratio": r6(_ratio(k["executions"], k["active_skills"])),
            "top_skills": top,
            "interrupted": stopped["skills"],
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
