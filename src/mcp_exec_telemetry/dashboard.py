"""The design's KPI dashboard, rendered as text for a terminal.

:func:`render` takes a JSON summary (of a live :class:`~mcp_exec_telemetry.Telemetry`, a session
file or a history aggregate) and draws the headline figures: discovery hit rate with a trend arrow
against a previous summary, execution success rate, average execution time, estimated token
savings, skill reuse ratio, PII detections, top skills by runs and the execution-duration
distribution. On a TTY it uses box drawing, block bars and colour (unless ``NO_COLOR`` is set);
elsewhere plain ASCII. Every line fits the given width.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from .telemetry import Telemetry

__all__ = ["render", "duration_distribution"]

TITLE = "MCP Execution Metrics Dashboard"
MIN_WIDTH, MAX_WIDTH = 40, 80
MAX_BAR = 30

_GREEN, _YELLOW, _RED, _BOLD, _DIM, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[31m", "\x1b[1m", "\x1b[2m", "\x1b[0m"


class _Style:
    def __init__(self, fancy: bool, color: bool) -> None:
        self.fancy = fancy
        self.color = color
        if fancy:
            self.tl, self.tr, self.bl, self.br, self.h, self.v, self.ml, self.mr = "┌┐└┘─│├┤"
            self.bar, self.up, self.down, self.flat, self.ok, self.bad, self.ell = "█", "↑", "↓", "→", "✓", "✗", "…"
        else:
            self.tl = self.tr = self.bl = self.br = self.ml = self.mr = "+"
            self.h, self.v = "-", "|"
            self.bar, self.up, self.down, self.flat, self.ok, self.bad, self.ell = "#", "^", "v", "=", "ok", "!!", "..."

    def paint(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.color and code else text


def _pct(x: float) -> str:
    text = f"{x * 100:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def _runs(n: int) -> str:
    return f"{n:,} run" if n == 1 else f"{n:,} runs"


def _ms(x: float) -> str:
    return f"{x:,.0f}ms" if x >= 10 else f"{x:.1f}ms"


def duration_distribution(buckets_ms: Mapping[str, int]) -> list[tuple[str, int]]:
    """The design's four execution-duration ranges from the histogram's buckets (upper bounds in ms).

    OpenTelemetry buckets include their upper bound, so the first range is "at most 100 ms".
    """
    ranges = [0, 0, 0, 0]
    for key, n in buckets_ms.items():
        bound = float("inf") if key == "+Inf" else float(key)
        idx = 0 if bound <= 100 else 1 if bound <= 500 else 2 if bound <= 1000 else 3
        ranges[idx] += int(n)
    return list(zip(("<=100ms", "100-500ms", "500-1000ms", ">1000ms"), ranges))


def _summary_of(source: "Telemetry | Mapping[str, Any]") -> Mapping[str, Any]:
    return source if isinstance(source, Mapping) else source.summary()


def render(
    source: "Telemetry | Mapping[str, Any]",
    previous: "Telemetry | Mapping[str, Any] | None" = None,
    *,
    width: int | None = None,
    fancy: bool | None = None,
    color: bool | None = None,
    subtitle: str | None = None,
    top: int = 5,
) -> str:
    """The dashboard of ``source`` as text; ``previous`` (a session or day before) gives the trend arrow.

    ``fancy`` (box drawing, blocks) and ``color`` default to whether stdout is a terminal;
    ``width`` defaults to the terminal's, clamped to 40..80 columns.
    """
    s = _summary_of(source)
    prev = _summary_of(previous) if previous is not None else None
    tty = sys.stdout.isatty()
    fancy = tty if fancy is None else fancy
    color = (fancy and tty and not os.environ.get("NO_COLOR")) if color is None else color
    st = _Style(fancy, color)
    total = width if width is not None else shutil.get_terminal_size((MAX_WIDTH, 24)).columns
    box = max(MIN_WIDTH, min(MAX_WIDTH, total))
    inner = box - 4  # "│ " + content + " │"

    d, e, f, k, sec = (s.get(x, {}) for x in ("discovery", "execution", "filtering", "skills", "security"))
    rows: list[tuple[str, str]] = []  # (plain text, painted text)

    def row(plain: str, painted: str | None = None) -> None:
        rows.append((plain, painted if painted is not None else plain))

    label_w = 27 if inner >= 56 else 24

    def kpi(label: str, value: str, code: str = "", note: str = "") -> None:
        head = f"{label + ':':<{label_w}}"
        tail = f" {note}" if note else ""
        row(head + value + tail, head + st.paint(value, code) + (f" {st.paint(note, _DIM)}" if note else ""))

    def rule() -> None:
        rows.append(("\0rule", ""))

    # KPIs
    queries = int(d.get("total_queries", 0))
    if queries:
        hit = float(d.get("hit_rate", 0.0))
        arrow = ""
        if prev is not None and int(prev.get("discovery", {}).get("total_queries", 0)):
            before = float(prev["discovery"].get("hit_rate", 0.0))
            diff = round((hit - before) * 100, 1)
            arrow = f"{st.up} +{diff:g} pts" if diff > 0 else f"{st.down} {diff:g} pts" if diff < 0 else st.flat
        kpi("Discovery Hit Rate", _pct(hit), _GREEN if hit >= 0.8 else _YELLOW if hit >= 0.5 else _RED, arrow)
    else:
        kpi("Discovery Hit Rate", "n/a", _DIM, "(no queries)")
    runs = int(e.get("total_executions", 0))
    if runs:
        # Cancelled and abandoned executions are neither successes nor failures: out of the rate, shown beside it.
        stopped = sum(int(n) for n in (e.get("interrupted") or {}).values())
        finished = runs - stopped
        rate = int(e.get("successful_executions", 0)) / finished if stopped and finished > 0 else float(e.get("success_rate", 0.0))
        good = rate >= 0.8 or finished <= 0
        note = ", ".join(f"{int(n):,} {o}" for o, n in sorted((e.get("interrupted") or {}).items()) if int(n))
        value = f"{_pct(rate)} {st.ok if good else st.bad}" if finished > 0 else "n/a"
        kpi("Execution Success Rate", value, _GREEN if good else _RED, f"({note})" if note else "")
        avg = float(e.get("avg_duration_ms", 0.0))
        kpi("Avg Code Execution", _ms(avg), _GREEN if avg <= 2000 else _YELLOW, f"({_runs(runs)})")
    else:
        kpi("Execution Success Rate", "n/a", _DIM, "(no executions)")
        kpi("Avg Code Execution", "n/a", _DIM)
    kpi("Token Savings (est)", f"{int(f.get('estimated_tokens_saved', 0)):,} tokens")
    if int(k.get("active_skills", 0)):
        kpi("Skill Reuse Ratio", _pct(float(k.get("reuse_ratio", 0.0))))
    else:
        kpi("Skill Reuse Ratio", "n/a", _DIM, "(no skills saved)")
    detected = int(sec.get("pii_detected", 0))
    tokens = int(sec.get("tokenized_detections", sec.get("tokens_created", 0)))
    protected = detected == 0 or tokens >= 0.95 * detected
    kpi("PII Detection", f"{detected:,} found, {tokens:,} tokenized", "" if protected else _RED)
    rule()

    # Top skills
    skills = [x for x in k.get("top_skills", []) if int(x.get("runs", 0))][:top]
    row("Top Skills (by usage):", st.paint("Top Skills (by usage):", _BOLD))
    if skills:
        most = max(int(x["runs"]) for x in skills)
        name_w = min(max(len(str(x["name"])) for x in skills), max(8, inner // 3))
        count_w = max(len(_runs(int(x["runs"]))) for x in skills)
        bar_w = max(1, min(MAX_BAR, inner - (4 + name_w + 1 + 2 + 1 + count_w)))
        for i, x in enumerate(skills, 1):
            name = _cut(str(x["name"]), name_w, st.ell)
            n = int(x["runs"])
            bar = st.bar * max(1, round(bar_w * n / most))
            label = _runs(n)
            plain = f"{i:>2}. {name:<{name_w}} [{bar:<{bar_w}}] {label}"
            painted = f"{i:>2}. {name:<{name_w}} [{st.paint(bar, _GREEN)}{' ' * (bar_w - len(bar))}] {label}"
            row(plain, painted)
    else:
        row("  (no skill runs)")
    row("")

    # Execution duration distribution
    row("Execution Duration Distribution:", st.paint("Execution Duration Distribution:", _BOLD))
    dist = duration_distribution(e.get("duration_buckets_ms", {}))
    if any(n for _, n in dist):
        most = max(n for _, n in dist)
        label_w = max(len(lbl) for lbl, _ in dist)
        count_w = max(len(f"({n:,})") for _, n in dist)
        bar_w = max(1, min(MAX_BAR, inner - (2 + label_w + 1 + 1 + count_w)))
        for lbl, n in dist:
            bar = st.bar * (round(bar_w * n / most) if n else 0)
            if n and not bar:
                bar = st.bar
            row(f"  {lbl:<{label_w}} {bar} ({n:,})", f"  {lbl:<{label_w}} {st.paint(bar, _GREEN) if bar else ''} ({n:,})")
    else:
        row("  (no executions)")

    # Box
    head = [TITLE] + ([subtitle] if subtitle else [])
    out = [st.tl + st.h * (box - 2) + st.tr]
    for i, text in enumerate(head):
        text = _cut(text, inner, st.ell)
        pad = inner - len(text)
        centered = " " * (pad // 2) + text + " " * (pad - pad // 2)
        out.append(f"{st.v} {st.paint(centered, _BOLD) if i == 0 else centered} {st.v}")
    out.append(st.ml + st.h * (box - 2) + st.mr)
    for plain, painted in rows:
        if plain == "\0rule":
            out.append(st.ml + st.h * (box - 2) + st.mr)
            continue
        if len(plain) > inner:
            plain = painted = _cut(plain, inner, st.ell)
        out.append(f"{st.v} {painted}{' ' * (inner - len(plain))} {st.v}")
    out.append(st.bl + st.h * (box - 2) + st.br)
    return "\n".join(out) + "\n"


def _cut(text: str, width: int, ellipsis: str) -> str:
    if len(text) <= width:
        return text
    return text[: max(0, width - len(ellipsis))] + ellipsis
