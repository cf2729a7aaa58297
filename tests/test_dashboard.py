"""The terminal KPI dashboard: figures, trend arrow, bars, distribution, ASCII and width."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_exec_telemetry.dashboard import duration_distribution, render
from mcp_exec_telemetry.testing import capture
from tests.test_history import make_summary

DESIGN = make_summary(
    queries=25, hits=23, runs=8, runs_ok=7, run_ms=6800.0, in_bytes=40_000, out_bytes=6_000,
    skills=[("filter_test_files", 5, 5, 1.0), ("analyze_rs_files", 3, 3, 1.0), ("export_json", 2, 2, 1.0)], active=15,
    buckets={"10": 1, "50": 0, "100": 1, "250": 2, "500": 1, "1000": 5, "2000": 1, "+Inf": 1},
)


def lines(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


def test_the_design_dashboard_in_ascii() -> None:
    text = render(DESIGN, make_summary(queries=10, hits=8), fancy=False, color=False, width=60, subtitle="2024-11-08 - 1 session")
    assert text == (
        "+----------------------------------------------------------+\n"
        "|             MCP Execution Metrics Dashboard              |\n"
        "|                  2024-11-08 - 1 session                  |\n"
        "+----------------------------------------------------------+\n"
        "| Discovery Hit Rate:        92% ^ +12 pts                 |\n"
        "| Execution Success Rate:    87.5% ok                      |\n"
        "| Avg Code Execution:        850ms (8 runs)                |\n"
        "| Token Savings (est):       8,500 tokens                  |\n"
        "| Skill Reuse Ratio:         66.7%                         |\n"
        "| PII Detection:             5 found, 5 tokenized          |\n"
        "+----------------------------------------------------------+\n"
        "| Top Skills (by usage):                                   |\n"
        "|  1. filter_test_files [#########################] 5 runs |\n"
        "|  2. analyze_rs_files  [###############          ] 3 runs |\n"
        "|  3. export_json       [##########               ] 2 runs |\n"
        "|                                                          |\n"
        "| Execution Duration Distribution:                         |\n"
        "|   <=100ms    ############ (2)                            |\n"
        "|   100-500ms  ################## (3)                      |\n"
        "|   500-1000ms ############################## (5)          |\n"
        "|   >1000ms    ############ (2)                            |\n"
        "+----------------------------------------------------------+\n"
    )


def test_box_drawing_and_arrows_on_a_terminal_style() -> None:
    text = render(DESIGN, make_summary(queries=10, hits=10), fancy=True, color=False, width=60)
    out = lines(text)
    assert out[0] == "┌" + "─" * 58 + "┐" and out[-1] == "└" + "─" * 58 + "┘"
    assert "│ Discovery Hit Rate:        92% ↓ -8 pts" in text
    assert "87.5% ✓" in text and "[█████████████████████████] 5 runs" in text


def test_trend_is_flat_when_equal_and_absent_without_a_previous_summary() -> None:
    assert "92% =" in render(DESIGN, DESIGN, fancy=False, color=False)
    assert "| Discovery Hit Rate:        92%      " in render(DESIGN, fancy=False, color=False)


def test_colour_only_when_asked() -> None:
    assert "\x1b[" not in render(DESIGN, fancy=True, color=False)
    coloured = render(DESIGN, fancy=True, color=True)
    assert "\x1b[32m92%\x1b[0m" in coloured  # green: at or above the 0.8 hit-rate threshold
    assert "\x1b[31m" in render(make_summary(runs=10, runs_ok=2), fancy=True, color=True)  # red success rate


def test_a_failing_success_rate_is_marked() -> None:
    assert "Execution Success Rate:    20% !!" in render(make_summary(runs=10, runs_ok=2), fancy=False, color=False)


@pytest.mark.parametrize("width", [40, 57, 80, 200])
def test_every_line_fits_the_width(width: int) -> None:
    long = make_summary(skills=[("a_really_long_skill_name_that_goes_on_and_on", 12_345, 1, 1.0), ("short", 1, 1, 1.0)])
    for fancy in (True, False):
        out = lines(render(long, fancy=fancy, color=False, width=width, subtitle="x" * 300))
        box = min(max(width, 40), 80)
        assert {len(line) for line in out} == {box}


def test_empty_session_says_n_a_instead_of_zero_percent() -> None:
    empty = make_summary(queries=0, hits=0, successful=0, continued=0, runs=0, runs_ok=0, run_ms=0.0, buckets={}, skills=[], active=0, pii=0, tokens_created=0)
    text = render(empty, fancy=False, color=False)
    assert "Discovery Hit Rate:        n/a (no queries)" in text
    assert "Execution Success Rate:    n/a (no executions)" in text
    assert "(no skill runs)" in text and "(no executions)" in text


def test_duration_distribution_groups_buckets_into_the_design_ranges() -> None:
    buckets = {"10": 1, "50": 2, "100": 3, "250": 4, "500": 5, "1000": 6, "2000": 7, "60000": 8, "+Inf": 9}
    assert duration_distribution(buckets) == [("<=100ms", 6), ("100-500ms", 9), ("500-1000ms", 6), (">1000ms", 24)]


def test_renders_a_live_telemetry() -> None:
    with capture() as cap:
        tel = cap.telemetry
        tel.discovery.record("x", "full", 5.0, 2)
        for ms in (50.0, 300.0, 700.0, 1500.0):
            tel.execution.record("python3", ms, "success", 0)
        tel.skills.save("csv_export", "python3")
        tel.skills.record("csv_export", 20.0)
        text = render(tel, fancy=False, color=False, width=60)
    assert "Avg Code Execution:        638ms (4 runs)" in text
    assert "|  1. csv_export [##############################] 1 run    |" in text
    for label in ("<=100ms    ", "100-500ms  ", "500-1000ms ", ">1000ms    "):
        assert f"|   {label}############################## (1)" in text
