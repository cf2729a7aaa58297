"""Scrubbing for export: no raw value survives, safe identifiers do, and no-PII costs nothing."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import pytest

import pii_corpus as corpus
from mcp_exec_telemetry.pii import PiiDetector, Scrubber, redaction_marker

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture()
def scrubber() -> Scrubber:
    return Scrubber()


def test_replaces_each_value_with_its_typed_marker(scrubber: Scrubber) -> None:
    text = ("user jane@example.com (415) 555-0132 ssn 123-45-6789 card 4111 1111 1111 1111 "
            "from 10.0.0.1 key sk_live_4eC39HqLyjWDarjtT1zdp7dc Authorization: Bearer abc123def456ghi789")
    assert scrubber.scrub(text) == (
        "user [REDACTED:email] [REDACTED:phone_number] ssn [REDACTED:ssn] card [REDACTED:credit_card] "
        "from [REDACTED:ip_address] key [REDACTED:api_key] Authorization: Bearer [REDACTED:auth_token]")
    assert scrubber.redactions == {"email": 1, "phone_number": 1, "ssn": 1, "credit_card": 1,
                                   "ip_address": 1, "api_key": 1, "auth_token": 1}
    assert redaction_marker("email") == "[REDACTED:email]"


def test_no_raw_value_survives_for_generated_values(scrubber: Scrubber) -> None:
    samples = corpus.samples(55, 80)  # 560 values, 80 of each type
    assert len(samples) >= 500
    for s in samples:
        out = scrubber.scrub(f"x {s.text} y")
        assert s.value not in out, s
        assert f"[REDACTED:{s.type}]" in out
    assert sum(scrubber.redactions.values()) == len(samples)


def test_no_raw_value_survives_in_mixed_text(scrubber: Scrubber) -> None:
    text, expected = corpus.mixed_text(77, 200_000)
    out = scrubber.scrub(text)
    assert [v for *_, v in expected if v in out] == []
    assert scrubber.scrub(out) is out  # idempotent: markers are not PII


def test_fast_path_returns_the_same_object(scrubber: Scrubber) -> None:
    text = "".join(["tool get_customer_records returned 42 rows in 12.5 ms "] * 10)
    assert scrubber.scrub(text) is text
    assert scrubber.scrub("") == ""
    lst = ["a", "b"]
    assert scrubber.scrub_value(lst) is lst
    assert scrubber.redactions == {}


@pytest.mark.parametrize(
    "value",
    [
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "550e8400-e29b-41d4-a716-446655440000",
        "2024-01-15T10:30:00.123456+00:00", "2024-01-15 10:30:00", "1.4.2", "v2.31.0-rc.1", "0.51b0",
        "get_customer_records", "mcp.execution.duration", "1234", "12.5", "1048576", "3600000",
        "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 duration_ms=532 bytes=1048576",
    ],
)
def test_safe_identifiers_are_left_alone(scrubber: Scrubber, value: str) -> None:
    assert scrubber.scrub(value) is value


def test_generated_safe_values_are_left_alone(scrubber: Scrubber) -> None:
    for miss in corpus.near_misses(12, 60):
        assert scrubber.scrub(miss) is miss


def test_scrub_value_handles_strings_sequences_and_others(scrubber: Scrubber) -> None:
    assert scrubber.scrub_value("to jane@example.com") == "to [REDACTED:email]"
    assert scrubber.scrub_value(["ok", "10.0.0.1"]) == ["ok", "[REDACTED:ip_address]"]
    assert scrubber.scrub_value(("123-45-6789",)) == ("[REDACTED:ssn]",)
    for other in (42, 4111111111111111, 1.5, True, None, b"jane@example.com"):
        assert scrubber.scrub_value(other) is other


def test_allow_list_and_shared_detector() -> None:
    s = Scrubber(allow=["noreply@example.com"])
    assert s.scrub("noreply@example.com jane@example.com") == "noreply@example.com [REDACTED:email]"
    shared = Scrubber(detector=PiiDetector(types=["ssn"]), allow=["078-05-1121"])
    assert shared.scrub("078-05-1121 123-45-6789 jane@example.com") == "078-05-1121 [REDACTED:ssn] jane@example.com"
    with pytest.raises(ValueError):
        Scrubber(detector=PiiDetector(), extra_patterns={"x": "y"})


def test_extra_patterns() -> None:
    s = Scrubber(extra_patterns={"employee_id": r"\bEMP-\d{6}\b"})
    assert s.scrub("EMP-123456 ok") == "[REDACTED:employee_id] ok"


def test_redaction_counter_is_thread_safe() -> None:
    s = Scrubber()

    def work() -> None:
        for _ in range(200):
            s.scrub("jane@example.com and 10.0.0.1")

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.redactions == {"email": 1600, "ip_address": 1600}
    snapshot = s.redactions
    snapshot["email"] = 0
    assert s.redactions["email"] == 1600  # a copy, not the live counter
    assert s.reset() == {"email": 1600, "ip_address": 1600}
    assert s.redactions == {}


def test_quick_benchmark_runs_and_both_scanners_agree(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_pii", ROOT / "benchmarks" / "bench_pii.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "both scanners agree: True" in out and "exact: True" in out
    assert "| single pass (combined regex) |" in out and "| speed-up" in out
