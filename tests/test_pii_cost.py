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


def test_a_mailchimp_key_is_found_from_its_dash_us_and_still_only_at_a_word_start() -> None:
    # The rule is searched where "-us" occurs instead of being tried at every hex word (trace and
    # span ids): it must report the same values as before, and no more.
    key = "0123456789abcdef0123456789abcdef-us12"
    detector = PiiDetector()
    assert [(d.type, d.start, d.value) for d in detector.detect(key)] == [("api_key", 0, key)]
    assert [d.value for d in detector.detect(f'{{"list": "{key}"}}')] == [key]
    assert not detector.contains_pii("x" + key)  # inside a longer word
    assert not detector.contains_pii("0123456789abcdef0123456789abcdef-US12")  # the keys are lower case
    ids = "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7 locale=en-us"
    assert not detector.contains_pii(ids)
    assert detector._scan is not None and detector._scan.search(" " + ids) is None  # no candidate in the scan


def test_a_wallet_address_is_checked_for_length_before_its_case_mix() -> None:
    detector = PiiDetector()
    assert [d.type for d in detector.detect("send to 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 now")] == ["crypto_wallet"]
    assert [d.type for d in detector.detect("3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy")] == ["crypto_wallet"]
    for clean in ("1194 rows", "3c6f5da2cec25540", "1c7ef6853ac54fff8b3fa5a3bc34f9ac", "version=3.22.86"):
        assert not detector.contains_pii(clean), clean
