"""PII detection: what is found, what is not, and how overlaps resolve."""

from __future__ import annotations

import random
import re

import pytest

import pii_corpus as corpus
from mcp_exec_telemetry.pii import Detection, PiiDetector, PiiType, luhn_valid
from mcp_exec_telemetry.pii.detectors import resolve_overlaps


@pytest.fixture(scope="module")
def detector() -> PiiDetector:
    return PiiDetector()


def found(detector: PiiDetector, text: str) -> list[tuple[str, str]]:
    return [(d.type, d.value) for d in detector.detect(text)]


def test_pii_type_is_a_str_enum_of_the_built_in_types() -> None:
    assert [t.value for t in PiiType] == [
        "email", "phone_number", "ssn", "credit_card", "ip_address", "api_key", "auth_token",
        "private_key", "iban", "crypto_wallet"]
    assert PiiType.EMAIL == "email" and str(PiiType.SSN) == "ssn"


def test_detection_is_a_frozen_slotted_record() -> None:
    d = Detection("email", 5, 21, "jane@example.com")
    assert (d.type, d.start, d.end, d.value) == ("email", 5, 21, "jane@example.com")
    assert not hasattr(d, "__dict__")
    with pytest.raises(AttributeError):
        d.start = 0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+news@mail.example.co.uk today", [("email", "jane.doe+news@mail.example.co.uk")]),
        ("<jane@example.com>, bob_1@example.org.", [("email", "jane@example.com"), ("email", "bob_1@example.org")]),
        ("call (415) 555-0132 or 415.555.0199", [("phone_number", "(415) 555-0132"), ("phone_number", "415.555.0199")]),
        ("us +1-415-555-0132, uk +44 20 7946 0958.", [("phone_number", "+1-415-555-0132"), ("phone_number", "+44 20 7946 0958")]),
        ("fr +33 1 23 45 67 89; toll-free 1-800-555-0199", [("phone_number", "+33 1 23 45 67 89"), ("phone_number", "1-800-555-0199")]),
        ("ssn 123-45-6789", [("ssn", "123-45-6789")]),
        ("visa 4111 1111 1111 1111 amex 3782-822463-10005", [("credit_card", "4111 1111 1111 1111"), ("credit_card", "3782-822463-10005")]),
        ("mc 5500000000000004 discover 6011-1111-1111-1117", [("credit_card", "5500000000000004"), ("credit_card", "6011-1111-1111-1117")]),
        ("from 192.168.0.1 and 10.0.0.255", [("ip_address", "192.168.0.1"), ("ip_address", "10.0.0.255")]),
        ("v6 2001:db8::8a2e:370:7334 and [fe80::1]", [("ip_address", "2001:db8::8a2e:370:7334"), ("ip_address", "fe80::1")]),
        ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", [("ip_address", "2001:0db8:85a3:0000:0000:8a2e:0370:7334")]),
        ("OPENAI sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv", [("api_key", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv")]),
        ("gh ghp_0123456789abcdefghijABCDEFGHIJklmnop", [("api_key", "ghp_0123456789abcdefghijABCDEFGHIJklmnop")]),
        ("aws AKIAIOSFODNN7EXAMPLE and ASIA1234567890ABCDEF", [("api_key", "AKIAIOSFODNN7EXAMPLE"), ("api_key", "ASIA1234567890ABCDEF")]),
        ("slack xoxb-123456789012-abcdefGHIJ", [("api_key", "xoxb-123456789012-abcdefGHIJ")]),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc rk_live_51H8abcdEFGH1234ijkl", [("api_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"), ("api_key", "rk_live_51H8abcdEFGH1234ijkl")]),
        ("google AIzaSyA1234567890abcdefghijklmnopqrstuv", [("api_key", "AIzaSyA1234567890abcdefghijklmnopqrstuv")]),
        ("api_key=hunter2secret", [("api_key", "hunter2secret")]),
        ('{"password": "correct-horse-9"}', [("api_key", "correct-horse-9")]),
        ("DB_PASSWORD = s3cr3tvalue and X-Api-Key: abcd1234efgh", [("api_key", "s3cr3tvalue"), ("api_key", "abcd1234efgh")]),
        ("Authorization: Bearer mF_9.B5f-4.1JqM42xyz", [("auth_token", "mF_9.B5f-4.1JqM42xyz")]),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
         [("auth_token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")]),
        ("jane@example.com", [("email", "jane@example.com")]),  # at the very start and end
    ],
)
def test_detects_exactly(detector: PiiDetector, text: str, expected: list[tuple[str, str]]) -> None:
    assert found(detector, text) == expected


def test_offsets_point_at_the_value(detector: PiiDetector) -> None:
    text = "to: jane@example.com, ip=10.1.2.3"
    assert detector.detect(text) == [
        Detection("email", 4, 20, "jane@example.com"),
        Detection("ip_address", 25, 33, "10.1.2.3"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112", "4111111111111112", "5500-0000-0000-0005",  # Luhn-invalid
        "000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000",  # invalid SSNs
        "999.1.1.1", "256.0.0.1", "1.2.3.4.5", "1.2.3", "v1.2.3", "version 2.31.0",  # not IPv4
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",  # trace and span ids
        "550e8400-e29b-41d4-a716-446655440000", "2024-01-15T10:30:00.123Z", "12:30:45",
        "5551234567", "1718000000123", "took 1234 ms, 1048576 bytes", "get_customer_records",
        "max_tokens=1000", "token_count: 42", "password=********", "api_key=${OPENAI_API_KEY}",
        "sk-learn-classification-model", "Bearer authentication is a scheme", "a[1::2]", "std::vector",
    ],
)
def test_near_misses_are_not_flagged(detector: PiiDetector, text: str) -> None:
    assert detector.detect(text) == []
    assert detector.contains_pii(text) is False


def test_generated_near_misses_are_not_flagged(detector: PiiDetector) -> None:
    misses = corpus.near_misses(7, n=100)
    assert len(misses) >= 1000
    assert {m: found(detector, f" {m} ") for m in misses if detector.detect(f" {m} ")} == {}


@pytest.mark.parametrize("pii_type", [t.value for t in PiiType])
def test_every_generated_value_is_found_exactly_in_every_context(detector: PiiDetector, pii_type: str) -> None:
    rng = random.Random(hash(pii_type) & 0xFFFF)
    for _ in range(150):
        sample = corpus.GENERATORS[pii_type](rng)
        contexts = corpus.CONTEXTS["template"] if sample.template != "{v}" else corpus.CONTEXTS[
            "phone" if pii_type == "phone_number" else "default"]
        for ctx in contexts:
            text = "id " + ctx.format(s=sample.text) + " ok"
            start = 3 + ctx.index("{s}") + sample.offset
            assert detector.detect(text) == [
                Detection(sample.type, start, start + len(sample.value), sample.value)], text


def test_cards_of_every_network_pass_luhn_and_are_found(detector: PiiDetector) -> None:
    rng = random.Random(3)
    for _ in range(300):
        digits = corpus.card_digits(rng)
        assert luhn_valid(digits)
        assert found(detector, f"card {digits}") == [("credit_card", digits)]
        broken = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        assert not luhn_valid(broken)
        assert found(detector, f"card {broken}") == []


def test_mixed_text_yields_exactly_the_corpus_detections(detector: PiiDetector) -> None:
    text, expected = corpus.mixed_text(11, 300_000)
    assert len(expected) > 40  # PEM blocks take a larger share of the PII bytes
    got = [(d.type, d.start, d.end, d.value) for d in detector.detect(text)]
    assert got == expected


# -- overlaps -----------------------------------------------------------------------------------


def test_overlap_resolution_longest_wins_then_rule_priority() -> None:
    # (start, end, priority, type, reported)
    cands = [(0, 10, 5, "phone_number", True), (2, 12, 1, "api_key", True), (0, 12, 9, "api_key", True),
             (20, 30, 3, "ssn", True), (20, 30, 2, "email", True), (29, 35, 0, "x", True)]
    assert resolve_overlaps(cands) == [(0, 12, 9, "api_key", True), (20, 30, 2, "email", True)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # same span: the provider format outranks the generic key=value rule (both api_key)
        ("OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv", [("api_key", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv")]),
        # same span: a JWT outranks the generic assignment
        ("access_token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnop",
         [("auth_token", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abcdefghijklmnop")]),
        # same span: an email outranks the generic assignment
        ("password=jane@example.com", [("email", "jane@example.com")]),
        # longer wins: the assignment's value runs past the email
        ("password=jane@example.com!2024", [("api_key", "jane@example.com!2024")]),
        # same span: a provider key after Bearer is reported as the api_key it is
        ("Authorization: Bearer ghp_0123456789abcdefghijABCDEFGHIJklmnop", [("api_key", "ghp_0123456789abcdefghijABCDEFGHIJklmnop")]),
        # longer wins: the phone with its +1 prefix, not the (555) part alone
        ("+1 (415) 555-0132", [("phone_number", "+1 (415) 555-0132")]),
    ],
)
def test_overlapping_matches(detector: PiiDetector, text: str, expected: list[tuple[str, str]]) -> None:
    assert found(detector, text) == expected


def test_each_character_belongs_to_at_most_one_detection(detector: PiiDetector) -> None:
    text, _ = corpus.mixed_text(5, 100_000)
    dets = detector.detect(text)
    assert all(a.end <= b.start for a, b in zip(dets, dets[1:]))


def test_single_pass_equals_sequential_reference_on_fuzzed_text(detector: PiiDetector) -> None:
    """Glue values, near-misses and punctuation together at random: both scans must agree."""
    rng = random.Random(99)
    pieces = [s.text for s in corpus.samples(rng, 40)] + corpus.near_misses(rng, 40)
    pieces += [" ", "  ", ",", ".", ":", "=", "-", "(", ")", "\n", "\"", "x", "7", "@", "+", "/"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        fast = sorted(detector._candidates(text))
        slow = sorted(detector._sequential_candidates(text))
        assert fast == slow, text


# -- options and API ------------------------------------------------------------------------------


def test_allow_list_values_are_never_flagged() -> None:
    det = PiiDetector(allow=["noreply@example.com", "10.0.0.1"])
    assert found(det, "from noreply@example.com at 10.0.0.1 to jane@example.com") == [("email", "jane@example.com")]


def test_types_restricts_detection() -> None:
    det = PiiDetector(types=["email", PiiType.SSN])
    assert det.types == ("email", "ssn")
    assert found(det, "jane@example.com 123-45-6789 10.0.0.1") == [("email", "jane@example.com"), ("ssn", "123-45-6789")]
    with pytest.raises(ValueError):
        PiiDetector(types=["passport"])


def test_extra_patterns_add_types() -> None:
    det = PiiDetector(extra_patterns={"employee_id": r"\bEMP-\d{6}\b",
                                      "order_ref": re.compile(r"order #(?P<value>\d{5})", re.IGNORECASE)})
    assert det.types[-2:] == ("employee_id", "order_ref")
    assert det.detect("EMP-123456 placed ORDER #12345 for jane@example.com") == [
        Detection("employee_id", 0, 10, "EMP-123456"),
        Detection("order_ref", 25, 30, "12345"),
        Detection("email", 35, 51, "jane@example.com"),
    ]


def test_extra_patterns_with_back_references_still_work() -> None:
    det = PiiDetector(extra_patterns={"twin": r"\b(\w)\1\d{4}\b"}, types=["twin"])
    assert found(det, "aa1234 ab1234 zz9999") == [("twin", "aa1234"), ("twin", "zz9999")]


def test_contains_pii_fast_path(detector: PiiDetector) -> None:
    assert detector.contains_pii("the tool returned 42 rows in 12 ms") is False
    assert detector.contains_pii("") is False
    assert detector.contains_pii("ssn 123-45-6789") is True
    assert detector.contains_pii("card 4111111111111112") is False  # candidate, but not Luhn-valid


def test_scan_json_reports_paths(detector: PiiDetector) -> None:
    obj = {
        "user": {"email": "jane@example.com", "tags": ["vip", "ip 10.0.0.7"]},
        "api_key": "abc123def456",  # whole value under a secret-named key
        "count": 4111111111111111,  # not a string: left alone
        "jane@example.com": "key is not scanned",
        "rows": ({"ssn": "123-45-6789"},),
    }
    assert detector.scan_json(obj) == [
        (("user", "email"), Detection("email", 0, 16, "jane@example.com")),
        (("user", "tags", 1), Detection("ip_address", 3, 11, "10.0.0.7")),
        (("api_key",), Detection("api_key", 0, 12, "abc123def456")),
        (("rows", 0, "ssn"), Detection("ssn", 0, 11, "123-45-6789")),
    ]


def test_a_field_named_for_a_secret_is_known_by_the_end_of_its_name_in_any_case() -> None:
    detector = PiiDetector()
    for key in ("password", "DB_PASSWORD", "db.Api_Key", "Authorization", "x-auth-token", "azure.ConnectionString"):
        assert detector.names_a_secret(key), key
    for key in ("password_hint", "max_tokens", "keyword", "author", "tokenizer", ""):
        assert not detector.names_a_secret(key), key
    found = detector.secret_under_key("DB_PASSWORD", "s3cr3t-Value")
    assert found is not None and (found.type, found.value) == ("api_key", "s3cr3t-Value")
    assert detector.secret_under_key("db_host", "s3cr3t-Value") is None
    assert not PiiDetector(types=["email"]).names_a_secret("password")  # api_key not detected at all
