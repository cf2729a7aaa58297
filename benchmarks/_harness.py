"""Timing helpers shared by the benchmarks: interleaved rounds, medians, paired ratios.

The machine this runs on is shared and noisy, so variants are never timed one after the other in
long blocks: each round times every variant once (in an order that rotates between rounds), and a
ratio is the median over rounds of the ratio *within* a round, which cancels most slow drifts.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

_pc = time.perf_counter_ns


@dataclass
class Result:
    """Per-operation times in microseconds, one per round, for each variant."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def ratio(self, name: str, base: str) -> float:
        """Median over rounds of ``name / base`` measured in the same round."""
        pairs = zip(self.samples[name], self.samples[base])
        return statistics.median(a / b for a, b in pairs if b > 0)


def time_loop(op: Callable[[], object], n: int, after: Callable[[], object] | None = None) -> float:
    """Microseconds per call of ``op`` over ``n`` calls (``after`` runs inside the timed region).

    The cyclic garbage collector stays on: objects an implementation keeps alive for a while make
    it run more often, and that cost belongs to the implementation. Each sample starts from a
    fresh collection so that one variant does not pay for another's garbage.
    """
    gc.collect()
    t0 = _pc()
    for _ in range(n):
        op()
    if after is not None:
        after()
    return (_pc() - t0) / n / 1000.0


@dataclass
class Variant:
    op: Callable[[], object]
    after: Callable[[], object] | None = None
    setup: Callable[[], object] | None = None
    """Runs before each sample, untimed; may return a callable run after it (untimed)."""


def interleave(variants: Mapping[str, Variant], n: int, rounds: int, warmup: int = 200) -> Result:
    """Time each variant once per round (``n`` operations), rotating the order between rounds."""
    names = list(variants)
    for name in names:  # warm caches, attribute sets, lazily created SDK state
        v = variants[name]
        teardown = v.setup() if v.setup else None
        time_loop(v.op, warmup, v.after)
        if callable(teardown):
            teardown()
    result = Result({name: [] for name in names})
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            v = variants[name]
            teardown = v.setup() if v.setup else None
            result.samples[name].append(time_loop(v.op, n, v.after))
            if callable(teardown):
                teardown()
    gc.collect()
    return result


def machine() -> dict[str, str]:
    """The machine and versions, for the report."""
    from importlib.metadata import version

    def ver(dist: str) -> str:
        try:
            return version(dist)
        except Exception:
            return "-"

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "opentelemetry-sdk": ver("opentelemetry-sdk"),
        "opentelemetry-exporter-otlp": ver("opentelemetry-exporter-otlp"),
        "opentelemetry-exporter-prometheus": ver("opentelemetry-exporter-prometheus"),
        "prometheus_client": ver("prometheus_client"),
        "mcp-exec-telemetry": ver("mcp-exec-telemetry"),
    }


def fmt_us(us: float) -> str:
    return f"{us:.2f} us" if us < 100 else f"{us:.0f} us"


def write_section(path: "os.PathLike[str] | str", name: str, text: str) -> None:
    """Replace the section ``name`` of a Markdown report, or append it when the report lacks it.

    Several benchmarks share docs/PERFORMANCE.md; each owns the text between its own
    ``<!-- begin NAME -->`` and ``<!-- end NAME -->`` markers and leaves the rest untouched.
    """
    from pathlib import Path

    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    target = Path(path)
    old = target.read_text() if target.exists() else ""
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip() + ("\n\n" if old.strip() else "") + block + "\n"
    target.write_text(new)
