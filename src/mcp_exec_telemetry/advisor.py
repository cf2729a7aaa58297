"""The design's four use cases as checks: is the agent finding tools, running fast, reusing skills, protecting PII?

:func:`advise` reads a JSON summary (a live session's, a session file's or a history aggregate's)
and returns one :class:`Finding` per problem, each with the metric, its value, the threshold it
crossed, a severity and what to do about it. Every finding is also logged as a structured record
on the ``mcp_exec_telemetry.advisor`` logger, its fields as record attributes.

Checks and their default thresholds (:class:`Thresholds`):

- ``low_discovery_hit_rate``: ``discovery.hit_rate`` < 0.8
- ``slow_execution``: ``execution.avg_duration_ms`` > 2000 (critical beyond twice that)
- ``underutilized_skill``: a skill's share of all skill executions < 0.1
- ``low_pii_protection``: ``security.pii_protection_rate`` < 0.95, where the protection rate is
  detections replaced by a token / PII values detected (``security.tokenized_detections``, which
  the tokenizer reports per detection). Summaries written before that count existed fall back to
  tokens created / detections, capped at 1.
- ``high_timeout_rate``: ``execution.timeout_rate`` (timeouts / executions) > 0.05
- ``filtering_grows_data``: ``filtering.avg_reduction_ratio`` < 0 (output larger than input)

A check only runs when its denominator is at least ``min_samples`` (default 1): no queries, no
discovery finding.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Mapping

__all__ = ["Finding", "Thresholds", "advise", "pii_protection_rate"]

_logger = logging.getLogger("mcp_exec_telemetry.advisor")
_logger.addHandler(logging.NullHandler())  # a library does not print; configure logging to see these

INFO, WARNING, CRITICAL = "info", "warning", "critical"
_LEVELS = {INFO: logging.INFO, WARNING: logging.WARNING, CRITICAL: logging.ERROR}


@dataclass(frozen=True)
class Thresholds:
    """Limits of the checks; pass your own to :func:`advise` to tighten or relax them."""

    min_discovery_hit_rate: float = 0.8
    max_avg_execution_ms: float = 2000.0
    min_skill_utilization: float = 0.1
    min_pii_protection_rate: float = 0.95
    max_timeout_rate: float = 0.05
    min_reduction_ratio: float = 0.0
    min_samples: int = 1
    """Smallest denominator (queries, executions ...) a check needs before it judges."""


@dataclass(frozen=True)
class Finding:
    """One problem the advisor found: which metric, its value, the limit and what to do."""

    check: str
    metric: str
    value: float
    threshold: float
    severity: str
    recommendation: str
    subject: str | None = None
    """What the finding is about when it is not the whole session (a skill's name)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        about = f" [{self.subject}]" if self.subject else ""
        return f"{self.severity.upper()} {self.check}{about}: {self.metric}={_fmt(self.value)} (threshold {_fmt(self.threshold)}). {self.recommendation}"


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def pii_protection_rate(summary: Mapping[str, Any]) -> float | None:
    """Tokenized detections / PII detections; None when nothing was detected."""
    sec = summary.get("security", {})
    detected = int(sec.get("pii_detected", 0))
    if not detected:
        return None
    if "tokenized_detections" in sec:
        return min(1.0, int(sec["tokenized_detections"]) / detected)
    return min(1.0, int(sec.get("tokens_created", 0)) / detected)


def advise(summary: Mapping[str, Any], thresholds: Thresholds | None = None, *, logger: logging.Logger | None = None) -> list[Finding]:
    """Run every check on ``summary``; log and return the findings, most severe first."""
    t = thresholds or Thresholds()
    d = summary.get("discovery", {})
    e = summary.get("execution", {})
    f = summary.get("filtering", {})
    k = summary.get("skills", {})
    out: list[Finding] = []

    queries = int(d.get("total_queries", 0))
    if queries >= t.min_samples and float(d.get("hit_rate", 0.0)) < t.min_discovery_hit_rate:
        out.append(Finding(
            "low_discovery_hit_rate", "discovery.hit_rate", float(d["hit_rate"]), t.min_discovery_hit_rate, WARNING,
            "The agent often misses the tools it searches for or searches again: improve tool names and descriptions, or add aliases.",
        ))

    runs = int(e.get("total_executions", 0))
    avg_ms = float(e.get("avg_duration_ms", 0.0))
    if runs >= t.min_samples and avg_ms > t.max_avg_execution_ms:
        out.append(Finding(
            "slow_execution", "execution.avg_duration_ms", avg_ms, t.max_avg_execution_ms,
            CRITICAL if avg_ms > 2 * t.max_avg_execution_ms else WARNING,
            "Code execution is slow: cache generated SDKs, trim the tools each SDK includes, and move heavy work into saved skills.",
        ))
    if runs >= t.min_samples:
        timeout_rate = int(e.get("timeouts", 0)) / runs
        if timeout_rate > t.max_timeout_rate:
            out.append(Finding(
                "high_timeout_rate", "execution.timeout_rate", round(timeout_rate, 6), t.max_timeout_rate, WARNING,
                "Executions hit their timeout: look for unbounded loops or slow tool calls, page large results, or raise the timeout for long jobs.",
            ))

    if int(f.get("total_input_bytes", 0)) >= t.min_samples:
        ratio = float(f.get("avg_reduction_ratio", 0.0))
        if ratio < t.min_reduction_ratio:
            out.append(Finding(
                "filtering_grows_data", "filtering.avg_reduction_ratio", ratio, t.min_reduction_ratio, WARNING,
                "Filtering hands on more bytes than it receives: return selected fields or aggregates instead of re-serialized or annotated records.",
            ))

    skill_runs = int(k.get("executions", 0))
    if skill_runs >= t.min_samples:
        for st in k.get("top_skills", []):
            share = int(st.get("runs", 0)) / skill_runs
            if share < t.min_skill_utilization:
                out.append(Finding(
                    "underutilized_skill", "skills.utilization", round(share, 6), t.min_skill_utilization, INFO,
                    "This skill is rarely run: improve its name and documentation so the agent finds it, or remove it.",
                    subject=str(st.get("name")),
                ))

    protection = pii_protection_rate(summary)
    if protection is not None and int(summary["security"]["pii_detected"]) >= t.min_samples and protection < t.min_pii_protection_rate:
        out.append(Finding(
            "low_pii_protection", "security.pii_protection_rate", round(protection, 6), t.min_pii_protection_rate, CRITICAL,
            "Some detected PII values were not replaced by tokens: make sure every detection is tokenized before results reach the model.",
        ))

    order = {CRITICAL: 0, WARNING: 1, INFO: 2}
    out.sort(key=lambda x: order[x.severity])
    log = logger or _logger
    for finding in out:
        log.log(_LEVELS[finding.severity], "%s", finding, extra={f"finding_{key}": value for key, value in finding.to_dict().items() if value is not None})
    return out
