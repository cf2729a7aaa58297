"""Tool discovery over an MCP tool list: three detail levels and relevance ranking.

``ToolDiscovery(tools, telemetry).search(keyword, detail_level)`` answers with the matching tools,
best first, each shaped by the detail level the agent asked for:

* ``name-only``: ``{"name"}``
* ``name-and-description``: ``{"name", "description"}``
* ``full``: ``{"name", "description", "input_schema"}``

Ranking: the keyword is split into lowercase terms (on anything but letters and digits, and on
``_``); a tool scores 100 when its name equals the whole keyword, 20 per term that is a whole word
of its name, 10 per term found elsewhere in its name, 3 per term in its description, and 1 per term
among its parameter names. Tools scoring 0 are left out; ties go by name. Each query reports
through ``tel.discovery.search`` with the result count; an identical query (keyword and level) on
an unchanged tool list is answered from a cache and reported as a cache hit.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from ..records import DetailLevel

__all__ = ["ToolDiscovery", "ToolInfo", "tool_info"]

_TERM_RE = re.compile(r"[a-z0-9]+")


class ToolInfo:
    """Name, description and input schema of one tool, from an ``mcp.types.Tool`` or a dict."""

    __slots__ = ("name", "description", "input_schema")

    def __init__(self, name: str, description: str = "", input_schema: dict[str, Any] | None = None) -> None:
        self.name = name
        self.description = description or ""
        self.input_schema = input_schema or {"type": "object", "properties": {}}

    def shaped(self, level: str) -> dict[str, Any]:
        if level == DetailLevel.NAME_ONLY.value:
            return {"name": self.name}
        if level == DetailLevel.NAME_AND_DESCRIPTION.value:
            return {"name": self.name, "description": self.description}
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


def tool_info(tool: Any) -> ToolInfo:
    if isinstance(tool, ToolInfo):
        return tool
    if isinstance(tool, dict):
        return ToolInfo(tool["name"], tool.get("description") or "", tool.get("input_schema") or tool.get("inputSchema"))
    return ToolInfo(tool.name, getattr(tool, "description", None) or "", getattr(tool, "input_schema", None) or getattr(tool, "inputSchema", None))


def _terms(text: str) -> list[str]:
    return _TERM_RE.findall(text.lower())


class ToolDiscovery:
    """Searches a fixed tool list; see the module docstring for the ranking."""

    def __init__(self, tools: Iterable[Any], telemetry: Any = None) -> None:
        self.tools = [tool_info(t) for t in tools]
        self.telemetry = telemetry
        self._cache: dict[tuple[str, str, int | None], list[dict[str, Any]]] = {}

    @classmethod
    async def from_session(cls, session: Any, telemetry: Any = None) -> "ToolDiscovery":
        """The tools an MCP ``ClientSession`` lists (one ``tools/list`` request)."""
        result = await session.list_tools()
        return cls(result.tools, telemetry)

    def score(self, tool: ToolInfo, keyword: str) -> int:
        terms = _terms(keyword)
        name = tool.name.lower()
        name_words = set(_terms(name.replace("_", " ")))
        desc_words = set(_terms(tool.description))
        params = set()
        for p in (tool.input_schema.get("properties") or {}):
            params.update(_terms(str(p).replace("_", " ")))
        score = 100 if name == keyword.strip().lower() else 0
        for term in terms:
            if term in name_words:
                score += 20
            elif term in name:
                score += 10
            if term in desc_words:
                score += 3
            if term in params:
                score += 1
        return score

    def search(self, keyword: str, detail_level: DetailLevel | str = DetailLevel.NAME_AND_DESCRIPTION, limit: int | None = None) -> list[dict[str, Any]]:
        """The tools matching ``keyword``, best first, at ``detail_level``; at most ``limit``."""
        level = detail_level.value if isinstance(detail_level, DetailLevel) else str(detail_level)
        if level not in {d.value for d in DetailLevel}:
            raise ValueError(f"detail_level must be one of {[d.value for d in DetailLevel]}")
        if self.telemetry is None:
            return self._search(keyword, level, limit)[0]
        with self.telemetry.discovery.search(keyword, level) as query:
            results, cache_hit = self._search(keyword, level, limit)
            query.set_results(len(results), cache_hit=cache_hit)
        return results

    def _search(self, keyword: str, level: str, limit: int | None) -> tuple[list[dict[str, Any]], bool]:
        key = (keyword, level, limit)
        cached = self._cache.get(key)
        if cached is not None:
            return [dict(r) for r in cached], True
        scored = [(self.score(t, keyword), t) for t in self.tools]
        ranked = sorted(((s, t) for s, t in scored if s > 0), key=lambda st: (-st[0], st[1].name))
        if limit is not None:
            ranked = ranked[:limit]
        results = [t.shaped(level) for _, t in ranked]
        self._cache[key] = results
        return [dict(r) for r in results], False

    def get(self, name: str) -> ToolInfo | None:
        return next((t for t in self.tools if t.name == name), None)
