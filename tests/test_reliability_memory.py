"""Issue 5, point 2: bounded memory.

* 1,000,000 recorded operations over 10 attribute sets grow resident memory by less than 20 MB
  (measured with psutil in a fresh interpreter, after a warm-up of 10,000 operations).
* 100,000 distinct skill names stay within the cardinality limit: the overflow series is present
  and every total (summary, in-memory data, Prometheus) is still exact.

The thresholds here are the ones docs/RELIABILITY.md states; the measured figures are printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from mcp_exec_telemetry import observe

from tests.conftest import repo_root

RSS_BUDGET_MB = 20.0
OPS = 1_000_000
WARMUP = 10_000

# Run in a fresh interpreter so no other test's allocations or caches interfere with RSS.
_MEMORY_SCRIPT = textwrap.dedent(
    """
    import gc, json, sys, time
    import psutil
    from mcp_exec_telemetry import observe

    OPS, WARMUP = int(sys.argv[1]), int(sys.argv[2])
    proc = psutil.Process()
    # 5 languages x 2 outcomes (exit code 0 -> success, 1 -> failure) = 10 attribute sets.
    LANGS = ["python3", "javascript", "bash", "ruby", "deno"]
    with observe(history=False) as tel:
        run = tel.execution.run

        def batch(start, n):
            for i in range(start, start + n):
                with run(LANGS[i % 5]) as ex:
                    ex.set_result((i // 5) % 2)

        batch(0, WARMUP)
        tel.summary()  # the first collection allocates its own structures too
        gc.collect()
        rss0 = proc.memory_info().rss
        t0 = time.perf_counter()
        peak = rss0
        done = 0
        while done < OPS:
            n = min(100_000, OPS - done)
            batch(WARMUP + done, n)
            done += n
            peak = max(peak, proc.memory_info().rss)
        elapsed = time.perf_counter() - t0
        gc.collect()
        rss1 = proc.memory_info().rss
        summary = tel.summary()
        points = len([p for p in tel.metrics_data().resource_metrics[0].scope_metrics[0].metrics
                      if p.name == "mcp_exec.execution.duration"][0].data.data_points)
    ex = summary["execution"]
    print(json.dumps({
        "ops": OPS, "warmup": WARMUP, "seconds": elapsed, "us_per_op": elapsed / OPS * 1e6,
        "rss_before_mb": rss0 / 2**20, "rss_after_mb": rss1 / 2**20,
        "growth_mb": (rss1 - rss0) / 2**20, "peak_growth_mb": (peak - rss0) / 2**20,
        "total": ex["total_executions"], "successful": ex["successful_executions"],
        "languages": ex["languages"], "recent": len(tel.get_execution_metrics().recent_executions),
        "series": points,
    }))
    """
)


@pytest.mark.slow
def test_one_million_operations_over_ten_attribute_sets_grow_rss_by_less_than_20_mb():
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(OPS), str(WARMUP)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo_root(),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(
        f"\n1M ops: {result['seconds']:.1f} s ({result['us_per_op']:.1f} us/op), RSS growth "
        f"{result['growth_mb']:.2f} MB (peak {result['peak_growth_mb']:.2f} MB) from {result['rss_before_mb']:.1f} MB"
    )
    total = OPS + WARMUP
    assert result["total"] == total
    # Exit codes alternate per five operations: exactly half succeed.
    assert result["successful"] == total // 2
    assert result["languages"] == {lang: total // 5 for lang in ["bash", "deno", "javascript", "python3", "ruby"]}
    assert result["series"] == 10
    assert result["recent"] == 100  # the recent-record buffers stay bounded
    assert result["peak_growth_mb"] < RSS_BUDGET_MB, result
    assert result["growth_mb"] < RSS_BUDGET_MB, result


def _prometheus_counts(text: str, family: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple, float] = {}
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == family:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


SKILLS = 100_000
LIMIT = 200
FAILURES = len(range(0, SKILLS, 3))


def _many_skills(tel) -> None:
    for i in range(SKILLS):
        # Every third run fails: the failure count must survive the overflow exactly.
        tel.skills.record(f"skill_{i:06d}", 2.0, success=(i % 3 != 0))
    with tel.skills.run("skill_late_one") as r:  # the context-manager path too
        r.set_success(True)


def _skill_points(tel) -> list:
    return [
        p
        for rm in tel.metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "mcp_exec.skills.duration"
        for p in m.data.data_points
    ]


@pytest.mark.slow
def test_one_hundred_thousand_skill_names_fold_into_the_overflow_series_with_exact_totals():
    total = SKILLS + 1
    with observe(history=False, cardinality_limit=LIMIT) as tel:
        _many_skills(tel)
        points = _skill_points(tel)
        # Bounded: at most LIMIT skill names keep series of their own; the rest fold into the
        # overflow series, one per outcome (README: "the rest fold into otel.metric.overflow").
        names = {p.attributes["skill.name"] for p in points if "skill.name" in p.attributes}
        assert len(names) == LIMIT, len(names)
        overflow = [p for p in points if p.attributes.get("otel.metric.overflow")]
        assert overflow, "no otel.metric.overflow series"
        assert {p.attributes["outcome"] for p in overflow} == {"success", "failure"}
        assert len(points) <= LIMIT + len(overflow), len(points)
        assert sum(p.count for p in points) == total
        assert abs(sum(p.sum for p in points) - total * 0.002) < 1e-6 * total

        summary = tel.summary()
        assert summary["skills"]["executions"] == total
        assert len(summary["skills"]["top_skills"]) <= 10

        prom = _prometheus_counts(tel.export_prometheus(), "mcp_exec_skills_duration_seconds_count")
        assert len(prom) <= LIMIT + len(overflow)
        assert sum(prom.values()) == total
        assert any(dict(k).get("otel_metric_overflow") == "true" for k in prom), sorted(prom)[:3]
        # The per-session skill metadata and the attribute cache stay bounded too.
        assert len(tel._session.skills) <= 10_000
        assert len(tel.skills._duration_attributes) <= 4096
    print(f"\n100k skill names: {len(points)} series kept, {sum(p.count for p in overflow)} runs in the overflow series")


@pytest.mark.slow
def test_skill_success_totals_stay_exact_beyond_the_cardinality_limit():
    with observe(history=False, cardinality_limit=LIMIT) as tel:
        _many_skills(tel)
        skills = tel.summary()["skills"]
    assert skills["executions"] == SKILLS + 1
    assert skills["successful_executions"] == SKILLS + 1 - FAILURES


def test_reliability_doc_names_only_existing_tests():
    """docs/RELIABILITY.md stays true: every test its table names exists in tests/."""
    import re

    doc = (repo_root() / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    named = re.findall(r"`(test_reliability_\w+\.py)::(\w+)`", doc)
    named += [(f, t) for f, t in re.findall(r"`(test_reliability_\w+\.py)::\w+`(?:, `::(\w+)`)+", doc)]
    extra = re.findall(r"`::(test_\w+)`", doc)
    assert len(named) >= 10, named
    files = {f for f, _ in named}
    for f, test in named:
        source = (repo_root() / "tests" / f).read_text(encoding="utf-8")
        assert f"def {test}(" in source, f"docs/RELIABILITY.md names {f}::{test}, which does not exist"
    for test in extra:
        assert any(f"def {test}(" in (repo_root() / "tests" / f).read_text(encoding="utf-8") for f in files), test
