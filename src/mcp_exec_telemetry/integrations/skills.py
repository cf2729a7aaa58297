"""Skills: code the agent saved to reuse, kept on disk with metadata, run through the executor.

Layout under ``root``: one folder per skill, ``<name>/skill.py`` or ``<name>/skill.js`` and
``<name>/skill.json`` (name, language, description, tags, created_at, updated_at, run_count,
success_count). ``save`` reports ``tel.skills.save``, ``delete`` ``tel.skills.delete`` and ``run``
one ``tel.skills.run(name)`` around the execution (the execution span nests under the skill span),
successful when the code exits 0 within its timeout.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .executor import LANGUAGES, ExecutionResult

__all__ = ["Skill", "SkillManager"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
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


class SkillManager:
    """Save, load, list, search, delete and run skills kept under ``root``."""

    def __init__(self, root: str | Path, telemetry: Any = None, executor: Any = None) -> None:
        self.root = Path(root)
        self.telemetry = telemetry
        self.executor = executor

    def _dir(self, name: str) -> Path:
        if not _NAME_RE.match(name) or name in {".", ".."}:
            raise ValueError(f"invalid skill name {name!r}")
        return self.root / name

    def save(self, name: str, code: str, language: str = "python3", description: str = "", tags: list[str] | tuple[str, ...] = ()) -> Skill:
        """Save (or update) a skill; an update keeps its creation time and run counts."""
        lang = LANGUAGES.get(language)
        if lang is None:
            raise ValueError(f"unsupported language {language!r}")
        folder = self._dir(name)
        previous = self._read_meta(folder)
        now = _now()
        skill = Skill(name, lang, code, description, list(tags), previous.get("created_at", now) if previous else now, now,
                      previous.get("run_count", 0) if previous else 0, previous.get("success_count", 0) if previous else 0)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("skill.*"):
            if old.suffix in (".py", ".js"):
                old.unlink()
        (folder / f"skill.{_SUFFIX[lang]}").write_text(code, encoding="utf-8")
        self._write_meta(folder, skill)
        if self.telemetry is not None:
            self.telemetry.skills.save(name, lang)
        return skill

    def load(self, name: str) -> Skill:
        folder = self._dir(name)
        meta = self._read_meta(folder)
        if meta is None:
            raise KeyError(name)
        code = (folder / f"skill.{_SUFFIX[meta['language']]}").read_text(encoding="utf-8")
        return Skill(code=code, **meta)

    def list(self) -> list[Skill]:
        """Every saved skill (metadata and code), by name."""
        if not self.root.is_dir():
            return []
        return [self.load(p.name) for p in sorted(self.root.iterdir()) if (p / "skill.json").is_file()]

    def search(self, query: str) -> list[Skill]:
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
        skill.run_count += 1
        skill.success_count += int(result.success)
        self._write_meta(self._dir(name), skill)
        return result

    async def run_async(self, name: str, **execute_kwargs: Any) -> ExecutionResult:
        """:meth:`run` on a worker thread, leaving the event loop free for the child's tool calls."""
        import asyncio
        import functools

        return await asyncio.to_thread(functools.partial(self.run, name, **execute_kwargs))

    @staticmethod
    def _read_meta(folder: Path) -> dict[str, Any] | None:
        path = folder / "skill.json"
        if not path.is_file():
            return None
        return json.loads(path.read_text(encoding="utf-8"))

    @staticmethod
    def _write_meta(folder: Path, skill: Skill) -> None:
        (folder / "skill.json").write_text(json.dumps(skill.metadata(), indent=2), encoding="utf-8")
