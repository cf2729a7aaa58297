"""Skills: which saved skills the agent reuses, how often they succeed and how long they take.

One span and one duration-histogram record per skill run, split by ``skill.name`` (kept within the
cardinality limit; the rest fold into the overflow series, so totals stay exact) and ``outcome``.
Saves and deletes are counters; active skills and the reuse ratio are derived from them.
"""

from __future__ import annotations

from typing import Any

from .._session import MAX_TRACKED_SKILLS, SkillInfo
from ..records import SkillUsageRecord, utc
from ..views import EXECUTION_BUCKETS_S, InstrumentSpec
from ._base import ERROR_TYPE, NOOP, NoopOperation, Operation, Step, error_outcome

SKILL_NAME = "skill.name"
OVERFLOW = "otel.metric.overflow"


class SkillRunOperation(Operation):
    """Handle of one skill run: it succeeds unless the block raises or :meth:`set_success` says not."""

    __slots__ = ("skill_name", "success")
    SPAN_NAME = "skills.run"

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
        self._step._record(self.skill_name, duration_s, self.success and error_type is None, error_type, self._wall0)  # type: ignore[attr-defined]


class SkillsStep(Step):
    """Skill lifecycle: ``tel.skills.save(name, "python3")``, ``with tel.skills.run(name): ...``."""

    name = "skills"
    SPECS = (
        InstrumentSpec("skills", "duration", "histogram", "s", "Duration of skill runs; its count per skill and outcome is the run count", (SKILL_NAME, "outcome", ERROR_TYPE, OVERFLOW), EXECUTION_BUCKETS_S, open_attributes=True),
        InstrumentSpec("skills", "created", "counter", "{skill}", "Skills saved", ("language",)),
        InstrumentSpec("skills", "deleted", "counter", "{skill}", "Skills deleted"),
    )

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self._names: set[str] = set()
        """Skill names with series of their own; bounded by the session's cardinality limit."""

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
            self._buf.add(self._created, 1, self._attrs("c", language))  # type: ignore[attr-defined]
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
            self._buf.add(self._deleted, 1)  # type: ignore[attr-defined]
        except Exception as exc:
            g.contain(exc, "skills.delete")

    def _build_attrs(self, *key: Any) -> dict[str, Any]:
        if key[0] in ("d", "o"):
            _, name, outcome, error_type = key
            attrs: dict[str, Any] = {SKILL_NAME: name, "outcome": outcome} if key[0] == "d" else {OVERFLOW: True, "outcome": outcome}
            if error_type is not None:
                attrs[ERROR_TYPE] = error_type
            return attrs
        return {"language": key[1]}

    def _record(self, name: str, duration_s: float, success: bool, error_type: str | None, wall_ns: int) -> None:
        outcome = error_outcome(error_type) if error_type is not None else ("success" if success else "failure")
        names = self._names
        if name not in names and len(names) < self._s.config.cardinality_limit:
            names.add(name)
        if name in names:
            attrs = self._attrs("d", name, outcome, error_type)
        else:
            # Past the limit of skill names: fold into the overflow series, keeping the outcome,
            # so success counts stay exact (the SDK's own overflow would drop every attribute).
            attrs = self._attrs("o", None, outcome, error_type)
        self._buf.record(self._duration, duration_s, attrs)  # type: ignore[attr-defined]
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
