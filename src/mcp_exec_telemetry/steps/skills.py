"""Skills: which saved skills the agent reuses, how often they succeed and how long they take.

One span and one duration-histogram record per skill run, split by ``skill.name`` (kept within the
cardinality limit; the rest fold into the overflow series, so totals stay exact) and ``outcome``.
Saves and deletes are counters; active skills and the reuse ratio are derived from them.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.metrics import Counter, Histogram

from .._session import MAX_TRACKED_SKILLS, Session, SkillInfo
from ..records import SkillUsageRecord, utc
from ..views import OVERFLOW, SKILL_NAME, SKILLS, SKILLS_CREATED, SKILLS_DELETED, SKILLS_DURATION
from ._base import ERROR_TYPE, NOOP, AttributeSets, NoopOperation, Operation, Step, error_outcome, outcome_attributes


class SkillRunOperation(Operation):
    """Handle of one skill run: it succeeds unless the block raises or :meth:`set_success` says not."""

    __slots__ = ("skill_name", "success")
    SPAN_NAME = "skills.run"
    _step: SkillsStep  # the slot of Operation, narrowed: a run belongs to a skills step

    def __init__(self, step: "SkillsStep", name: str) -> None:
        super().__init__(step)
        self.skill_name = name
        self.success = True

    def _span_attributes(self) -> dict[str, Any]:
        return {"mcp_exec.skill.name": self.skill_name}

    def _begin(self) -> None:
        self._step._s.begin("skills")

    def set_success(self, success: bool) -> None:
        """Report a skill run that failed without raising."""
        g = self._step._s.guard
        try:
            self.success = g.flag(success, "success")
        except Exception as exc:
            g.contain(exc, "skills.set_success")

    def _finish(self, duration_s: float, error_type: str | None) -> None:
        self._step._record(self.skill_name, duration_s, self.success and error_type is None, error_type, self._wall0)


class SkillsStep(Step):
    """Skill lifecycle: ``tel.skills.save(name, "python3")``, ``with tel.skills.run(name): ...``."""

    name = "skills"
    SPECS = SKILLS
    _duration: Histogram
    _created: Counter
    _deleted: Counter

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._names: set[str] = set()
        """Skill names with series of their own; bounded by the session's cardinality limit."""
        self._duration_attributes: AttributeSets[tuple[str, str, str | None]] = AttributeSets(lambda key: outcome_attributes(SKILL_NAME, key))
        """The duration histogram's attributes for a kept skill name: ``skill.name``, ``outcome``, ``error.type`` when set."""
        self._overflow_attributes: AttributeSets[tuple[str, str | None]] = AttributeSets(lambda key: outcome_attributes(OVERFLOW, (True, *key)))
        """The duration histogram's attributes past the limit of skill names: the overflow series,
        keeping ``outcome`` and ``error.type``."""
        self._language_attributes: AttributeSets[str] = AttributeSets(lambda language: {"language": language})
        """The attributes of ``created``: the saved skill's ``language`` alone."""

    def _create_instruments(self) -> None:
        self._duration = self._histogram(SKILLS_DURATION)
        self._created = self._counter(SKILLS_CREATED)
        self._deleted = self._counter(SKILLS_DELETED)

    def run(self, name: str) -> SkillRunOperation | NoopOperation:
        """Time one run of the saved skill ``name``."""
        if not self._on:
            return NOOP
        g = self._s.guard
        try:
            return SkillRunOperation(self, g.name(name, "skill_name"))
        except Exception as exc:
            g.contain(exc, "skills.run")
            return NOOP

    def save(self, name: str, language: str) -> None:
        """Count a skill saved in this session; saving an active name again is an update, not a new skill."""
        if not self._on:
            return
        s = self._s
        g = s.guard
        try:
            name = g.name(name, "skill_name")
            language = g.label(language, "language")
            s.begin("skills")
            with s.lock:
                info = s.skills.get(name)
                if info is not None:
                    info.language = language
                    return
                if len(s.skills) < MAX_TRACKED_SKILLS:
                    s.skills[name] = SkillInfo(language, utc(s.clock()))
            self._buf.add(self._created, 1, self._language_attributes[language])
        except Exception as exc:
            g.contain(exc, "skills.save")

    def delete(self, name: str) -> None:
        """Count a skill deleted; it no longer counts as active."""
        if not self._on:
            return
        s = self._s
        g = s.guard
        try:
            name = g.name(name, "skill_name")
            s.begin("skills")
            with s.lock:
                s.skills.pop(name, None)
            self._buf.add(self._deleted, 1)
        except Exception as exc:
            g.contain(exc, "skills.delete")

    def _record(self, name: str, duration_s: float, success: bool, error_type: str | None, wall_ns: int) -> None:
        outcome = error_outcome(error_type) if error_type is not None else ("success" if success else "failure")
        names = self._names
        if name not in names and len(names) < self._s.config.cardinality_limit:
            names.add(name)
        if name in names:
            attrs = self._duration_attributes[name, outcome, error_type]
        else:
            # Past the limit of skill names: fold into the overflow series, keeping the outcome,
            # so success counts stay exact (the SDK's own overflow would drop every attribute).
            attrs = self._overflow_attributes[outcome, error_type]
        self._buf.record(self._duration, duration_s, attrs)
        s = self._s
        when = utc(wall_ns)
        info = s.skills.get(name)
        if info is not None:
            info.last_used = when
        s.recent_skill_usage.append(SkillUsageRecord(name, success, duration_s * 1000.0, when))

    def record(self, skill_name: str, duration_ms: float, success: bool = True) -> None:
        """Record a skill run that already happened (the design's ``record_skill_execution``)."""
        if not self._on:
            return
        g = self._s.guard
        try:
            name = g.name(skill_name, "skill_name")
            duration_s = g.duration_ms(duration_ms, "duration_ms") / 1000.0
            success = g.flag(success, "success")
            self._s.begin("skills")
            self._record(name, duration_s, success, None, self._s.clock())
            self._past_span("skills.run", duration_s, {"mcp_exec.skill.name": name}, None if success else "failure")
        except Exception as exc:
            g.contain(exc, "skills.record")
