"""Tool discovery: did the agent find the tools it searched for, and how fast?

One span and one histogram record per query. Query counts, successes and the hit rate are derived
from the duration histogram's counts split by ``outcome``; the only other record is made when the
agent searches again straight after a query (``continued_queries``), which is what turns a
successful query into a miss for the hit rate.

A query is continued only when the next thing the agent does is another query. Every step that
acts on what was found ends the search: the other steps do so when they start (``Session.begin``),
and work that is not a step of ours, an MCP tool call above all, calls :meth:`DiscoveryStep.end_search`
(the MCP integration does it for every ``call_tool``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import Counter, Histogram

from ..records import DetailLevel, QueryRecord, utc
from ..views import DISCOVERY, DISCOVERY_CACHE_HITS, DISCOVERY_CONTINUED_QUERIES, DISCOVERY_DURATION
from ._base import ERROR_TYPE, NOOP, AttributeSets, NoopOperation, Operation, Step, error_outcome, outcome_attributes

if TYPE_CHECKING:  # pragma: no cover
    from .._session import Session

_LEVELS = {level.value: level.value for level in DetailLevel}


class SearchOperation(Operation):
    """Handle of one discovery query: call :meth:`set_results` before the block ends."""

    __slots__ = ("keyword", "detail_level", "result_count", "cache_hit")
    SPAN_NAME = "discovery.search"
    _step: DiscoveryStep  # the slot of Operation, narrowed: a query belongs to a discovery step

    def __init__(self, step: "DiscoveryStep", keyword: str, detail_level: str) -> None:
        super().__init__(step)
        self.keyword = keyword
        self.detail_level = detail_level
        self.result_count = 0
        self.cache_hit = False

    def _span_attributes(self) -> dict[str, Any]:
        return {"mcp_exec.discovery.keyword": self.keyword, "mcp_exec.discovery.detail_level": self.detail_level}

    def _begin(self) -> None:
        self._step._query_starts()

    def set_results(self, count: int, cache_hit: bool = False) -> None:
        """Report how many tools the query returned and whether it was answered from a cache."""
        g = self._step._s.guard
        try:
            self.result_count = g.count(count, "result_count")
            self.cache_hit = g.flag(cache_hit, "cache_hit")
        except Exception as exc:
            g.contain(exc, "set_results")

    def _finish(self, duration_s: float, error_type: str | None) -> None:
        span = self.span
        span.set_attribute("mcp_exec.discovery.result_count", self.result_count)
        if self.cache_hit:
            span.set_attribute("mcp_exec.discovery.cache_hit", True)
        self._step._record(self.keyword, self.detail_level, duration_s, self.result_count, self.cache_hit, error_type, self._wall0)


class DiscoveryStep(Step):
    """Tool discovery queries: ``with tel.discovery.search("files") as q: q.set_results(3)``."""

    name = "discovery"
    SPECS = DISCOVERY
    _duration: Histogram
    _continued_queries: Counter
    _cache_hits: Counter

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        self._duration_attributes: AttributeSets[tuple[str, str, str | None]] = AttributeSets(lambda key: outcome_attributes("detail_level", key))
        """The duration histogram's attributes: ``detail_level``, ``outcome`` and ``error.type`` when set."""
        self._outcome_attributes: AttributeSets[str] = AttributeSets(lambda outcome: {"outcome": outcome})
        """The attributes of ``continued_queries``: the continued query's ``outcome`` alone."""
        self._level_attributes: AttributeSets[str] = AttributeSets(lambda level: {"detail_level": level})
        """The attributes of ``cache_hits``: the query's ``detail_level`` alone."""

    def _create_instruments(self) -> None:
        self._duration = self._histogram(DISCOVERY_DURATION)
        self._continued_queries = self._counter(DISCOVERY_CONTINUED_QUERIES)
        self._cache_hits = self._counter(DISCOVERY_CACHE_HITS)

    def search(self, keyword: str, detail_level: DetailLevel | str = DetailLevel.NAME_AND_DESCRIPTION) -> SearchOperation | NoopOperation:
        """Time one discovery query; the keyword goes on the span only, never on a metric."""
        if not self._on:
            return NOOP
        g = self._s.guard
        try:
            return SearchOperation(self, g.text(keyword, "keyword"), self._level(detail_level))
        except Exception as exc:
            g.contain(exc, "discovery.search")
            return NOOP

    def _level(self, detail_level: Any) -> str:
        level = _LEVELS.get(detail_level) if isinstance(detail_level, str) else None
        if level is None:
            raise self._s.guard.reject("detail_level", "must be one of name-only, name-and-description, full")
        return level

    def end_search(self) -> None:
        """The agent acted on what it found (a tool call, or any work of your own): the last query is not continued.

        Cheap enough for every tool call: one attribute store.
        """
        if self._on:
            self._s.begin("action")

    def _query_starts(self) -> None:
        s = self._s
        prev_step = s.begin("discovery")
        prev = s.last_query
        if prev_step == "discovery" and prev is not None and not prev.agent_continued_search:
            prev.agent_continued_search = True
            self._buf.add(self._continued_queries, 1, self._outcome_attributes["success" if prev.success else "failure"])

    def _record(self, keyword: str, level: str, duration_s: float, result_count: int, cache_hit: bool, error_type: str | None, wall_ns: int) -> None:
        if error_type is not None:
            outcome = error_outcome(error_type)
        elif result_count > 0:
            outcome = "success"
        else:
            outcome = "empty"
        self._buf.record(self._duration, duration_s, self._duration_attributes[level, outcome, error_type])
        if cache_hit:
            self._buf.add(self._cache_hits, 1, self._level_attributes[level])
        s = self._s
        rec = QueryRecord(keyword, level, result_count, duration_s * 1000.0, utc(wall_ns), outcome == "success", cache_hit)
        s.recent_queries.append(rec)
        s.last_query = rec

    def record_cache_hit(self) -> None:
        """Count a cache hit for the last completed query (reported separately from the query)."""
        if not self._on:
            return
        last = self._s.last_query
        level = last.detail_level if last is not None else DetailLevel.NAME_AND_DESCRIPTION.value
        self._buf.add(self._cache_hits, 1, self._level_attributes[level])
        if last is not None:
            last.cache_hit = True

    def record(self, keyword: str, detail_level: DetailLevel | str, duration_ms: float, result_count: int, cache_hit: bool = False, error_type: str | None = None) -> None:
        """Record a query that already happened (the design's ``record_discovery_*`` calls)."""
        if not self._on:
            return
        g = self._s.guard
        try:
            keyword = g.text(keyword, "keyword")
            level = self._level(detail_level)
            duration_s = g.duration_ms(duration_ms, "duration_ms") / 1000.0
            result_count = g.count(result_count, "result_count")
            cache_hit = g.flag(cache_hit, "cache_hit")
            self._query_starts()
            self._record(keyword, level, duration_s, result_count, cache_hit, error_type, self._s.clock())
            self._past_span("discovery.search", duration_s, {"mcp_exec.discovery.keyword": keyword, "mcp_exec.discovery.detail_level": level, "mcp_exec.discovery.result_count": result_count}, error_type)
        except Exception as exc:
            g.contain(exc, "discovery.record")
