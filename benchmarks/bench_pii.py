"""Benchmark: the single-pass PII scanner against the usual sequential scan, one regex per type.

Generates ``--size-mb`` of log-like text with about 1% PII (``tests/pii_corpus.py``), then, in
the same process and over the same text, times

* **single pass** -- ``PiiDetector.detect``: one combined regex, rules run only where it hits;
* **sequential** -- one regex per PII type (its rules as named alternatives, each behind the
  start-of-word look-behind), searched over the whole text one type after another, with the
  same validators and the same overlap resolution.

Both must return exactly the same detections (checked, exit status 1 otherwise).  Prints MB/s for
each and the speed-up as the median of ``--runs`` runs, as a markdown table.

Two more measurements, side by side in this process, interleaved (``benchmarks/_harness.py``):

* **clean strings against the previous detector** -- ``contains_pii`` on unique clean attribute
  values (log lines, ids, versions, JSON fields) with the current detector and with the one at
  ``--baseline`` (a git revision, loaded from ``git show``; skipped when git or the revision is
  not available).  Goal: no slower than before (ratio at most 1.0 within noise).
* **a step that exports its span** -- a discovery step with a unique keyword, exported through
  a synchronous exporter, with scrubbing on and off.  Goal: scrubbing adds at most 15%.

    python benchmarks/bench_pii.py            # 10 MB, 5 runs
    python benchmarks/bench_pii.py --quick    # 0.2 MB, 1 run, no baseline or step (used by the tests)
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from mcp_exec_telemetry.pii import PiiDetector  # noqa: E402
from mcp_exec_telemetry.pii.detectors import _FLAGS, RULES, _checked_end, resolve_overlaps  # noqa: E402

Candidate = tuple[int, int, int, str, bool]


def _load_corpus() -> Any:
    spec = importlib.util.spec_from_file_location("pii_corpus", ROOT / "tests" / "pii_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("pii_corpus", module)
    spec.loader.exec_module(module)
    return module


class SequentialScanner:
    """The usual approach: one compiled regex per PII type, each run over the whole text in turn.

    A type with several rules (``ip_address``: IPv4 and IPv6) gets one regex with a named
    alternative per rule; where it matches, the type's other rules are tried at the same position
    too, so the candidates are exactly the single pass's.
    """

    def __init__(self) -> None:
        by_type: dict[str, list[int]] = {}
        for i, rule in enumerate(RULES):
            by_type.setdefault(rule.type, []).append(i)
        self.passes: list[tuple[re.Pattern[str], list[int]]] = []
        for indices in by_type.values():
            # each rule behind its own start-of-word guard (or none: rules found by a literal needle)
            alts = "|".join(f"(?P<r{i}>{RULES[i].regex})".replace("(?P<v>", "(?:") for i in indices)
            self.passes.append((re.compile(f"(?:{alts})", _FLAGS), indices))
        self.rules = [re.compile(r.regex, _FLAGS) for r in RULES]

    def candidates(self, text: str) -> list[Candidate]:
        out: list[Candidate] = []
        for regex, indices in self.passes:
            pos, n = 0, len(text)
            while pos <= n:
                m = regex.search(text, pos)
                if m is None:
                    break
                p = m.start()
                for i in indices:
                    rm = self.rules[i].match(text, p)
                    if rm is None:
                        continue
                    rule = RULES[i]
                    s, e = rm.span("v") if "(?P<v>" in rule.body else rm.span()
                    end = _checked_end(rule.validate, text, s, e)
                    if end is not None:
                        out.append((s, end, i, rule.type, True))
                pos = p + 1
        return out

    def detect(self, text: str) -> list[tuple[str, int, int]]:
        return [(t, s, e) for s, e, _, t, _ in resolve_overlaps(self.candidates(text))]


def _time(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def run(size_mb: float = 10.0, runs: int = 5, seed: int = 20240501) -> dict[str, Any]:
    """Time both scanners ``runs`` times over the same generated text; raise if they disagree."""
    corpus = _load_corpus()
    text, expected = corpus.mixed_text(seed, int(size_mb * 1_000_000))
    detector = PiiDetector()
    sequential = SequentialScanner()
    mb = len(text.encode()) / 1_000_000
    ours_t: list[float] = []
    seq_t: list[float] = []
    ratios: list[float] = []
    ours: list[tuple[str, int, int]] = []
    seq: list[tuple[str, int, int]] = []
    for _ in range(runs):
        t_ours, found = _time(lambda: detector.detect(text))
        t_seq, seq = _time(lambda: sequential.detect(text))
        ours = [(d.type, d.start, d.end) for d in found]
        if ours != seq:
            raise AssertionError(f"scanners disagree: {len(ours)} vs {len(seq)} detections")
        ours_t.append(t_ours)
        seq_t.append(t_seq)
        ratios.append(t_seq / t_ours)
    exact = ours == [(t, s, e) for t, s, e, _ in expected]
    return {
        "size_mb": mb,
        "detections": len(ours),
        "expected_detections": len(expected),
        "matches_corpus": exact,
        "runs": runs,
        "passes_sequential": len(sequential.passes),
        "ours_mb_s": mb / statistics.median(ours_t),
        "sequential_mb_s": mb / statistics.median(seq_t),
        "ratio": statistics.median(ratios),
        "agree": True,
    }


BASELINE = "cfe74ed"
"""The revision before the detection-breadth work (issue 10): what "no slower than today" means."""


def _baseline_detector(rev: str) -> Any | None:
    """``PiiDetector`` as it was at ``rev`` (stdlib-only module, loaded from ``git show``), or None."""
    import subprocess
    import types

    try:
        src = subprocess.run(["git", "show", f"{rev}:src/mcp_exec_telemetry/pii/detectors.py"], cwd=ROOT,
                             capture_output=True, text=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    module = types.ModuleType("baseline_detectors")
    sys.modules[module.__name__] = module  # dataclasses resolve their module by name
    exec(compile(src, f"{rev}:detectors.py", "exec"), module.__dict__)
    return module.PiiDetector()


def clean_strings(n: int, seed: int = 7) -> list[str]:
    """Unique clean attribute values: log lines, ids, versions, JSON fields (no cache can help)."""
    import random

    corpus = _load_corpus()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        line = corpus.filler_line(rng)
        out.append(line[: rng.choice([24, 60, 120, 400])] + f" #{i}")
    return out


def bench_baseline(rev: str, rounds: int = 15, n: int = 2000) -> dict[str, Any] | None:
    """Per-string ``contains_pii`` time on clean strings: current detector against ``rev``'s."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _harness import Variant, interleave

    old = _baseline_detector(rev)
    if old is None:
        return None
    new = PiiDetector()
    strings = clean_strings(n)
    assert not any(new.contains_pii(t) for t in strings), "the clean strings must be clean"

    def walker(det: Any) -> Any:
        it = iter(())

        def op() -> None:
            nonlocal it
            try:
                det.contains_pii(next(it))
            except StopIteration:
                it = iter(strings)
                det.contains_pii(next(it))
        return op

    res = interleave({"baseline": Variant(walker(old)), "current": Variant(walker(new))}, n, rounds)
    return {"rev": rev, "baseline_us": res.median("baseline"), "current_us": res.median("current"),
            "ratio": res.ratio("current", "baseline"), "strings": n, "rounds": rounds}


def bench_step(rounds: int = 15, n: int = 2000) -> dict[str, Any]:
    """A discovery step whose span is exported synchronously, scrubbing off and on (unique keywords)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _harness import Variant, interleave
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    from mcp_exec_telemetry import observe

    class Discard(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    sessions = {}
    for name, scrub in (("plain", False), ("scrubbed", True)):
        tel = observe(history=False, service_name="bench", scrub=scrub)
        tel.add_span_exporter(Discard(), batch=False)  # the scrubbing of every span is timed
        sessions[name] = tel
    lines = clean_strings(4096, seed=11)

    def step(tel: Any) -> Any:
        i = 0

        def op() -> None:
            nonlocal i
            i += 1
            with tel.discovery.search(lines[i % len(lines)][:80], "full") as q:
                q.set_results(3)
        return op

    res = interleave({name: Variant(step(tel), after=tel._session.flush) for name, tel in sessions.items()}, n, rounds)
    for tel in sessions.values():
        tel.shutdown()
    return {"plain_us": res.median("plain"), "scrubbed_us": res.median("scrubbed"),
            "overhead": res.ratio("scrubbed", "plain") - 1.0, "rounds": rounds}


def table(result: dict[str, Any]) -> str:
    """The result as a small markdown table."""
    return "\n".join([
        f"PII scan of {result['size_mb']:.1f} MB, {result['detections']} detections "
        f"(corpus expects {result['expected_detections']}, exact: {result['matches_corpus']}), "
        f"median of {result['runs']} run(s); both scanners agree: {result['agree']}",
        "",
        "| scanner | MB/s |",
        "| --- | ---: |",
        f"| single pass (combined regex) | {result['ours_mb_s']:.1f} |",
        f"| sequential ({result['passes_sequential']} regexes, one per type) | {result['sequential_mb_s']:.1f} |",
        f"| speed-up (median of per-run ratios) | {result['ratio']:.2f}x |",
    ] + _extra_lines(result))


def _extra_lines(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    base = result.get("baseline")
    if base:
        lines += ["", f"Clean strings ({base['strings']} unique, 24-400 characters), `contains_pii`, median of {base['rounds']} interleaved rounds:",
                  "", "| detector | us per string |", "| --- | ---: |",
                  f"| previous (`{base['rev']}`, 7 rules) | {base['baseline_us']:.2f} |",
                  f"| current ({len(RULES)} rules) | {base['current_us']:.2f} |",
                  f"| current / previous (median of per-round ratios) | {base['ratio']:.2f}x (goal: at most 1.0) |"]
    step = result.get("step")
    if step:
        lines += ["", f"A discovery step with a unique keyword, span exported synchronously, median of {step['rounds']} rounds: "
                  f"{step['plain_us']:.1f} us without scrubbing, {step['scrubbed_us']:.1f} us with it: "
                  f"+{step['overhead'] * 100:.1f}% (goal: at most +15%)."]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=10.0, help="text size in MB (default 10)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs; the median is reported")
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--quick", action="store_true", help="0.2 MB, 1 run: a smoke test")
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the previous detector (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds for the baseline and step timings")
    args = parser.parse_args(argv)
    size, runs = (0.2, 1) if args.quick else (args.size_mb, args.runs)
    try:
        result = run(size, runs, args.seed)
    except AssertionError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    if not args.quick:
        result["baseline"] = bench_baseline(args.baseline, args.rounds)
        result["step"] = bench_step(args.rounds)
    print(table(result))
    return 0 if result["matches_corpus"] else 1


if __name__ == "__main__":
    sys.exit(main())
