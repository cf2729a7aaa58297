"""Performance guards (issue 6): loose bounds that a slow change breaks, on a loaded 2-core CI machine.

The figures and the goals themselves are in docs/PERFORMANCE.md (``benchmarks/bench_steps.py``).
Here the bounds are deliberately loose (ours <= raw naive OpenTelemetry, not <= 0.8x of it), each
timing check is retried, and the whole file runs in well under 20 s. The per-thread measurement
buffer's exactness is checked here too, since the hot path depends on it.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from mcp_exec_telemetry import observe
from mcp_exec_telemetry._buffer import BOUND, HARD_BOUND, MetricBuffer

ROOT = Path(__file__).resolve().parent.parent


def _bench() -> Any:
    name = "bench_steps_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "bench_steps.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _retry(check: Callable[[], tuple[bool, str]], attempts: int = 3) -> None:
    messages = []
    for _ in range(attempts):
        ok, message = check()
        if ok:
            return
        messages.append(message)
    pytest.fail("; ".join(messages))


@pytest.mark.parametrize("step", ["discovery", "execution", "filtering"])
def test_a_step_costs_no_more_than_the_same_telemetry_written_by_hand(step: str) -> None:
    bench = _bench()

    def check() -> tuple[bool, str]:
        r = bench.bench_steps(n=300, rounds=7, steps=(step,))[step]
        ok = r["ratio_naive"] <= 1.0 and r["ratio_floor"] <= 1.6
        return ok, f"{step}: ours {r['ours_us']:.1f} us, naive {r['naive_us']:.1f} us ({r['ratio_naive']:.2f}), floor {r['floor_us']:.1f} us ({r['ratio_floor']:.2f})"

    _retry(check)


def test_disabled_steps_cost_under_two_microseconds() -> None:
    bench = _bench()

    def check() -> tuple[bool, str]:
        r = bench.bench_disabled(n=5000, rounds=5)
        worst = max(r[s] for s in bench.STEPS)
        return worst < 2.0 and r["ratio_to_noop"] < 1.0, f"slowest disabled step {worst:.2f} us, {r['ratio_to_noop']:.2f}x the no-op tracer"

    _retry(check)


def test_two_threads_do_not_convoy() -> None:
    bench = _bench()

    def check() -> tuple[bool, str]:
        r = bench.bench_threads(per_thread=1500, rounds=3)
        ours = next(v for k, v in r.items() if k.startswith("ours"))
        return ours["ratio"] >= 0.6, f"two threads reach {ours['ratio']:.2f}x of one"

    _retry(check)


# --- the measurement buffer: exact, bounded ---------------------------------------------------


def test_measurements_of_a_thread_that_exited_are_counted() -> None:
    with observe(history=False) as tel:

        def work() -> None:
            for _ in range(BOUND // 2 + 3):  # fewer than the bound: nothing drained by the thread
                with tel.execution.run("python3") as ex:
                    ex.set_result(0)
                tel.security.pii_detected("email", 2)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        buf = tel._session._metric_buffer
        assert buf.pending() > 0
        s = tel.summary()
        assert buf.pending() == 0
        assert s["execution"]["total_executions"] == 3 * (BOUND // 2 + 3)
        assert s["security"]["patterns"] == {"email": 2 * 3 * (BOUND // 2 + 3)}
        buf.flush()
        assert len(buf._lists) <= 1  # the dead threads' empty lists are forgotten


def test_a_busy_thread_keeps_its_buffer_bounded() -> None:
    with observe(history=False) as tel:
        filtering = tel.filtering  # the session's buffer comes with its first step
        buf = tel._session._metric_buffer
        most = 0
        for _ in range(5 * BOUND):
            with filtering.operation("filter", 100) as f:
                f.set_output(10)
            most = max(most, buf.pending())
        assert most <= BOUND
        f_metrics = tel.get_filtering_metrics()
        assert f_metrics.total_operations == 5 * BOUND
        assert f_metrics.total_input_bytes == 500 * BOUND
        assert f_metrics.total_output_bytes == 50 * BOUND


def test_an_owner_skips_a_busy_drain_lock_until_the_hard_bound() -> None:
    recorded: list[float] = []

    class Hist:
        def record(self, value: float, attributes: Any = None) -> None:
            recorded.append(value)

    buf = MetricBuffer()
    h = Hist()
    buf._drain_lock.acquire()  # another thread is draining
    released = threading.Timer(0.2, buf._drain_lock.release)
    released.start()
    for i in range(HARD_BOUND - 1):
        buf.record(h, float(i), None)
    assert recorded == [] and buf.pending() == HARD_BOUND - 1  # kept buffering, never blocked
    buf.record(h, -1.0, None)  # at the hard bound: waits for the lock, then drains
    released.join()
    assert len(recorded) == HARD_BOUND and buf.pending() == 0
    assert recorded[:3] == [0.0, 1.0, 2.0]


def test_counters_are_summed_per_series_before_reaching_the_sdk() -> None:
    calls: list[tuple[int, Any]] = []

    class Counter:
        def add(self, value: int, attributes: Any = None) -> None:
            calls.append((value, attributes))

    buf = MetricBuffer()
    c = Counter()
    a, b = {"pattern": "email"}, {"pattern": "ssn"}
    for _ in range(10):
        buf.add(c, 2, a)
        buf.add(c, 1, b)
    buf.flush()
    assert sorted(calls, key=lambda x: x[0]) == [(10, b), (20, a)]


def test_the_readme_step_costs_about_the_same_telemetry_written_by_hand() -> None:
    """Loose guard on section 1b: the execution step with memory and result size against one span and
    the same three histograms by hand, both through a BatchSpanProcessor (goal and floor: PERFORMANCE.md)."""
    bench = _bench()

    def check() -> tuple[bool, str]:
        r = bench.bench_by_hand(n=300, rounds=7)
        full = r["set_result(exit_code=0, memory_mb=42, result_size_bytes=1800)"]
        floor = r["floor"]
        # The SDK calls both sides make are most of the by-hand step; ours adds little beyond them.
        ok = full["ratio"] <= 1.25 and floor["span_share"] + floor["records_share"] <= 1.0
        return ok, f"ours {full['ours_us']:.1f} us vs by hand {full['hand_us']:.1f} us ({full['ratio']:.2f}); SDK share {floor['span_share'] + floor['records_share']:.2f}"

    _retry(check)


def test_the_benchmarks_need_nothing_from_the_test_suite() -> None:
    """``python benchmarks/bench_*.py`` must run where pytest and tests/ are absent."""
    import subprocess

    code = (
        "import sys\n"
        "sys.modules['pytest'] = None  # importing pytest now fails\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        "import bench_steps, bench_lifecycle\n"
        "r = bench_steps.bench_by_hand(n=20, rounds=1)\n"
        "assert r['floor']['span_us'] > 0\n"
        "assert bench_steps.refused_endpoint().startswith('http://127.0.0.1:')\n"
        "assert not any(m == 'tests' or m.startswith('tests.') for m in sys.modules), sorted(m for m in sys.modules if m.startswith('tests'))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("exemplars", [False, True], ids=["buffered", "direct"])
def test_the_readme_step_records_every_value_through_the_instruments(exemplars: bool) -> None:
    """Duration, memory and result size of each run reach the SDK's histograms, one value each."""
    with observe(history=False, exemplars=exemplars) as tel:
        for memory in (10, 42):
            with tel.execution.run("python3") as ex:
                ex.set_result(exit_code=0, memory_mb=memory, result_size_bytes=1800)
        with tel.execution.run("python3") as ex:
            ex.set_result(1)
        points = {
            m.name: m.data.data_points
            for rm in tel.metrics_data().resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
    memory = points["mcp_exec.execution.memory"][0]
    size = points["mcp_exec.execution.result_size"][0]
    assert (memory.count, memory.sum, memory.min, memory.max) == (2, 52, 10, 42)
    assert (size.count, size.sum) == (2, 3600)
    assert sorted((dict(p.attributes)["outcome"], p.count) for p in points["mcp_exec.execution.duration"]) == [("failure", 1), ("success", 2)]
