"""Skills: code the agent saved to reuse, kept on disk with metadata, run through the executor.

Layout under ``root``: one folder per skill, ``<name>/skill.py`` or ``<name>/skill.js`` and
``<name>/skill.json`` (name, language, description, tags, created_at, updated_at, run_count,
success_count). ``save`` reports ``tel.skills.save``, ``delete`` ``tel.skills.delete`` and ``run``
one ``tel.skills.run(name)`` around the execution (the execution span nests under the skill span),
successful when the code exits 0 within its timeout.

Safe under concurrency and faults: every file is written atomically (a temporary file in the same
folder, fsync, rename), so a reader never sees partial JSON, partial code or a missing file; every
read-modify-write (a save, a run's counts) holds a lock shared by the threads of the process and,
through ``flock`` on the root folder, by other processes, so counts are exact. A save that fails (disk full)
leaves the previous version of the skill intact. A corrupt ``skill.json`` is skipped by
:meth:`SkillManager.list` and :meth:`SkillManager.search` with one warning.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .executor import LANGUAGES, ExecutionResult

try:  # POSIX: lock across processes too
    import fcntl
except ImportError:  # pragma: no cover - Windows: threads of this process only
    fcntl = None  # type: ignore[assignment]

__all__ = ["Skill", "SkillManager"]

_logger = logging.getLogger("mcp_exec_telemetry")
_LOCKS: dict[str, tuple[Any, threading.local]] = {}  # root -> (its lock, which thread holds the file lock)
_LOCKS_GUARD = threading.Lock()

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_SUFFIX = {"python3": "py", "javascript": "js"}


@dataclass
class Skill:
    name: str
    language: str
    code: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    run_count: int = 0
    success_count: int = 0

    def metadata(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("code")
        return data


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_temp(folder: Path, name: str, text: str) -> Path:
    """Write ``text`` to a new temporary file beside ``folder/name`` and fsync it; removed on failure."""
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _fsync_dir(folder: Path) -> None:
    """Make the renames in ``folder`` durable (where the platform allows opening a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace_all(folder: Path, files: dict[str, str]) -> None:
    """Write every ``name: text`` into ``folder`` atomically: all temporary files first, then the renames.

    When a write fails (disk full), the temporary files are removed and nothing was renamed: the
    previous files are untouched.
    """
    temps: list[tuple[Path, Path]] = []
    try:
        for name, text in files.items():
            temps.append((_write_temp(folder, name, text), folder / name))
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    for tmp, final in temps:
        os.replace(tmp, final)
    _fsync_dir(folder)


class SkillManager:
    """Save, load, list, search, delete and run skills kept under ``root``."""

    def __init__(self, root: str | Path, telemetry: Any = None, executor: Any = None) -> None:
        self.root = Path(root)
        self.telemetry = telemetry
        self.executor = executor
        key = os.path.abspath(self.root)
        with _LOCKS_GUARD:
            self._thread_lock, self._holder = _LOCKS.setdefault(key, (threading.RLock(), threading.local()))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the skill store's lock: shared by every manager of this root in this process, and
        (through ``flock`` on the ``root`` folder) by other processes."""
        with self._thread_lock:
            if fcntl is None or getattr(self._holder, "held", False):  # re-entered on this thread
                yield
                return
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root, os.O_RDONLY)  # the folder itself is the lock: no extra file in it
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._holder.held = True
                try:
                    yield
                finally:
                    self._holder.held = False
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def _dir(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in {".", ".."}:
            raise ValueError(f"invalid skill name {name!r}")
        return self.root / name

    def save(self, name: str, code: str, language: str = "python3", description: str = "", tags: list[str] | tuple[str, ...] = ()) -> Skill:
        """Save (or update) a skill; an update keeps its creation time and run counts."""
        lang = LANGUAGES.get(language)
        if lang is None:
            raise ValueError(f"unsupported language {language!r}")
        folder = self._dir(name)
        with self._locked():
            try:
                previous = self._read_meta(folder)
            except ValueError:  # a corrupt skill.json: this save replaces it
                previous = None
            now = _now()
            skill = Skill(name, lang, code, description, list(tags), previous.get("created_at", now) if previous else now, now,
                          previous.get("run_count", 0) if previous else 0, previous.get("success_count", 0) if previous else 0)
            folder.mkdir(parents=True, exist_ok=True)
            code_name = f"skill.{_SUFFIX[lang]}"
            _replace_all(folder, {code_name: code, "skill.json": json.dumps(skill.metadata(), indent=2)})
            for old in folder.glob("skill.*"):  # the code file of a previous language
                if old.suffix in (".py", ".js") and old.name != code_name:
                    old.unlink()
        if self.telemetry is not None:
            self.telemetry.skills.save(name, lang)
        return skill

    def load(self, name: str) -> Skill:
        """The saved skill ``name``; ``KeyError`` when there is none, ``ValueError`` when its files are corrupt."""
        folder = self._dir(name)
        with self._locked():
            meta = self._read_meta(folder)
            if meta is None:
                raise KeyError(name)
            try:
                code = (folder / f"skill.{_SUFFIX[meta['language']]}").read_text(encoding="utf-8")
                return Skill(code=code, **meta)
            except (KeyError, TypeError, FileNotFoundError) as exc:
                raise ValueError(f"skill {name!r} is corrupt: {exc!r}") from None

    def list(self) -> list[Skill]:
        """Every saved skill (metadata and code), by name; a corrupt one is skipped with a warning."""
        if not self.root.is_dir():
            return []
        skills = []
        for p in sorted(self.root.iterdir()):
            if not (p / "skill.json").is_file():
                continue
            try:
                skills.append(self.load(p.name))
            except (ValueError, OSError) as exc:
                _logger.warning("mcp-exec-telemetry: skipping skill %r: %s", p.name, exc)
        return skills

    def search(self, query: str) -> builtins.list[Skill]:  # in this class, `list` is the method above
        """Skills whose name, description or tags contain any query term; most matching terms first."""
        terms = [t for t in re.findall(r"[a-z0-9]+", query.lower())]
        scored = []
        for skill in self.list():
            hay = " ".join([skill.name.replace("_", " "), skill.description, " ".join(skill.tags)]).lower()
            score = sum(1 for t in terms if t in hay)
            if score:
                scored.append((-score, skill.name, skill))
        return [s for _, _, s in sorted(scored, key=lambda x: (x[0], x[1]))]

    def delete(self, name: str) -> bool:
        folder = self._dir(name)
        with self._locked():
            if not folder.is_dir():
                return False
            shutil.rmtree(folder)
        if self.telemetry is not None:
            self.telemetry.skills.delete(name)
        return True

    def run(self, name: str, **execute_kwargs: Any) -> ExecutionResult:
        """Run a saved skill through the executor; updates its run and success counts."""
        if self.executor is None:
            raise RuntimeError("SkillManager needs an executor to run skills")
        skill = self.load(name)
        if self.telemetry is None:
            result = self.executor.execute(skill.code, skill.language, **execute_kwargs)
        else:
            with self.telemetry.skills.run(name) as op:
                result = self.executor.execute(skill.code, skill.language, **execute_kwargs)
                op.set_success(result.success)
        folder = self._dir(name)
        with self._locked():  # read, count, write: under the lock, from the file as it is now
            meta = self._read_meta(folder)
            if meta is not None:  # deleted while it ran: nothing to count into
                meta["run_count"] = int(meta.get("run_count", 0)) + 1
                meta["success_count"] = int(meta.get("success_count", 0)) + int(result.success)
                _replace_all(folder, {"skill.json": json.dumps(meta, indent=2)})
        return result

    async def run_async(self, name: str, **execute_kwargs: Any) -> ExecutionResult:
        """:meth:`run` on a worker thread, leaving the event loop free for the child's tool calls."""
        import asyncio
        import functools

        return await asyncio.to_thread(functools.partial(self.run, name, **execute_kwargs))

    @staticmethod
    def _read_meta(folder: Path) -> dict[str, Any] | None:
        """The skill's metadata; None when it has none; ``ValueError`` when it is not a JSON object."""
        path = folder / "skill.json"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text") from exc
        try:
            meta = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(meta, dict):
            raise ValueError(f"{path} does not hold a JSON object")
        return meta
