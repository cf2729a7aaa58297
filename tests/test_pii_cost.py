"""What a detector costs before it finds anything: no rule is compiled until a candidate needs it."""

from __future__ import annotations

from mcp_exec_telemetry.pii import PiiDetector


def test_building_a_detector_and_scanning_clean_text_compiles_no_rule() -> None:
    detector = PiiDetector()
    rules = detector._compiled
    assert rules and all(c._regex is None for c in rules)  # compiled on first use only
    for text in ("GET /api/v2/users 200 in 12.5 ms", '{"tool": "search", "rows": 42}', "2024-05-17T11:58:10Z INFO step done"):
        assert not detector.contains_pii(text)
    assert all(c._regex is None for c in rules)
    assert detector.contains_pii("write to jane.doe@example.com")
    compiled = {c.type for c in rules if c._regex is not None}
    assert "email" in compiled and len(compiled) < len({c.type for c in rules})


def test_a_match_at_the_first_character_is_found_without_a_separate_head_match() -> None:
    detector = PiiDetector()
    assert detector.contains_pii("4111 1111 1111 1111 was charged")
    assert [d.start for d in detector.detect("4111 1111 1111 1111 and 078-05-1121")] == [0, 24]
