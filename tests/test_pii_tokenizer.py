"""Reversible tokenization: stable tokens, exact round trips, thread safety, telemetry of counts only."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import pii_corpus as corpus
from mcp_exec_telemetry.pii import PiiDetector, PiiTokenizer


class RecordingSecurity:
    """A stand-in for ``telemetry.security`` that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def pii_detected(self, pattern_type: str, count: int = 1) -> None:
        self.calls.append(("pii_detected", pattern_type, count))

    def tokens_created(self, n: int) -> None:
        self.calls.append(("tokens_created", n))

    def audit(self, event_type: str, pattern_type: str = "", severity: str = "info") -> None:
        self.calls.append(("audit", event_type, pattern_type, severity))


class FakeTelemetry:
    def __init__(self) -> None:
        self.security = RecordingSecurity()


def test_tokenize_replaces_values_with_typed_numbered_tokens() -> None:
    tok = PiiTokenizer()
    text, used = tok.tokenize("mail jane@example.com or bob@example.org from 10.0.0.1")
    assert text == "mail [EMAIL_1] or [EMAIL_2] from [IP_ADDRESS_1]"
    assert used == {"[EMAIL_1]": "jane@example.com", "[EMAIL_2]": "bob@example.org", "[IP_ADDRESS_1]": "10.0.0.1"}


def test_same_value_same_token_across_calls_and_different_values_differ() -> None:
    tok = PiiTokenizer()
    a, _ = tok.tokenize("jane@example.com and jane@example.com")
    b, used = tok.tokenize("again jane@example.com, then bob@example.org")
    assert a == "[EMAIL_1] and [EMAIL_1]"
    assert b == "again [EMAIL_1], then [EMAIL_2]"
    assert used == {"[EMAIL_1]": "jane@example.com", "[EMAIL_2]": "bob@example.org"}
    assert tok.token_map == {"[EMAIL_1]": "jane@example.com", "[EMAIL_2]": "bob@example.org"}


def test_text_without_pii_is_returned_unchanged() -> None:
    tok = PiiTokenizer()
    text = "42 rows in 12 ms from get_customer_records"
    assert tok.tokenize(text) == (text, {})
    assert tok.detokenize(text) is text


def test_round_trip_of_every_generated_value() -> None:
    tok = PiiTokenizer()
    samples = corpus.samples(21, 80)
    text = " | ".join(s.text for s in samples)
    tokenized, used = tok.tokenize(text)
    assert all(s.value not in tokenized for s in samples if len(s.value) > 3)
    assert tok.detokenize(tokenized) == text
    assert set(used.values()) == {s.value for s in samples}
    assert len(set(used)) == len(set(used.values()))  # one token per distinct value


def test_round_trip_of_a_mixed_text() -> None:
    tok = PiiTokenizer()
    text, expected = corpus.mixed_text(8, 50_000)
    tokenized, used = tok.tokenize(text)
    assert len(used) == len({v for *_, v in expected})
    assert tok.detokenize(tokenized) == text


def test_tokenize_json_leaves_keys_and_non_strings_and_round_trips() -> None:
    tok = PiiTokenizer()
    obj = {
        "customer": {"email": "jane@example.com", "phone": "(415) 555-0132", "age": 41},
        "notes": ["ssn 123-45-6789", "vip"],
        "password": "hunter2hunter2",
        "jane@example.com": True,
        "pair": ("10.0.0.1", None),
    }
    out, used = tok.tokenize_json(obj)
    assert out == {
        "customer": {"email": "[EMAIL_1]", "phone": "[PHONE_NUMBER_1]", "age": 41},
        "notes": ["ssn [SSN_1]", "vip"],
        "password": "[API_KEY_1]",
        "jane@example.com": True,
        "pair": ("[IP_ADDRESS_1]", None),
    }
    assert used == {"[EMAIL_1]": "jane@example.com", "[PHONE_NUMBER_1]": "(415) 555-0132",
                    "[SSN_1]": "123-45-6789", "[API_KEY_1]": "hunter2hunter2", "[IP_ADDRESS_1]": "10.0.0.1"}
    assert obj["customer"]["email"] == "jane@example.com"  # the input is not modified
    assert tok.detokenize(out) == obj


def test_detokenize_in_model_output_arguments() -> None:
    tok = PiiTokenizer()
    tok.tokenize("customer jane@example.com")
    assert tok.detokenize({"to": "[EMAIL_1]", "cc": ["[EMAIL_1]", "[EMAIL_9]"]}) == {
        "to": "jane@example.com", "cc": ["jane@example.com", "[EMAIL_9]"]}  # unknown tokens stay


def test_custom_token_format() -> None:
    tok = PiiTokenizer(token_format="<{type}:{n}>")
    assert tok.tokenize("jane@example.com 123-45-6789")[0] == "<email:1> <ssn:1>"
    with pytest.raises(ValueError):
        PiiTokenizer(token_format="[{type}]")


def test_a_shared_detector_with_allow_list() -> None:
    tok = PiiTokenizer(detector=PiiDetector(allow=["support@example.com"]))
    assert tok.tokenize("support@example.com or jane@example.com")[0] == "support@example.com or [EMAIL_1]"


def test_thread_safety_one_token_per_value() -> None:
    tok = PiiTokenizer()
    samples = corpus.samples(4, 15)
    texts = [s.text for s in samples]
    values = [s.value for s in samples]
    results: list[dict[str, str]] = []

    def work(offset: int) -> None:
        for i in range(len(texts)):
            _, used = tok.tokenize(f"value {texts[(i + offset) % len(texts)]} end")
            results.append(used)

    threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    token_map = tok.token_map
    assert len(token_map) == len(set(values))
    assert sorted(token_map.values()) == sorted(set(values))
    for used in results:  # every call saw the one token of its value
        for token, value in used.items():
            assert token_map[token] == value


# -- telemetry ------------------------------------------------------------------------------------


def test_reports_counts_per_type_and_audit_events_never_values() -> None:
    tel = FakeTelemetry()
    tok = PiiTokenizer(telemetry=tel)
    tok.tokenize("jane@example.com, bob@example.org, jane@example.com from 10.0.0.1")
    assert tel.security.calls == [
        ("pii_detected", "email", 3),
        ("audit", "pii_detected", "email", "info"),
        ("pii_detected", "ip_address", 1),
        ("audit", "pii_detected", "ip_address", "info"),
        ("tokens_created", 3),
        ("audit", "tokenized", "email", "info"),
        ("audit", "tokenized", "ip_address", "info"),
    ]
    tel.security.calls.clear()
    tok.tokenize("jane@example.com again")  # no new token
    assert tel.security.calls == [
        ("pii_detected", "email", 1),
        ("audit", "pii_detected", "email", "info"),
        ("audit", "tokenized", "email", "info"),
    ]
    tel.security.calls.clear()
    tok.detokenize("[EMAIL_1]")
    assert tel.security.calls == [("audit", "detokenized", "", "info")]
    tel.security.calls.clear()
    tok.tokenize("nothing here")
    assert tel.security.calls == []


def test_tokenize_json_reports_once_per_call() -> None:
    tel = FakeTelemetry()
    tok = PiiTokenizer(telemetry=tel)
    tok.tokenize_json({"a": "jane@example.com", "b": ["bob@example.org", "123-45-6789"]})
    assert tel.security.calls == [
        ("pii_detected", "email", 2),
        ("audit", "pii_detected", "email", "info"),
        ("pii_detected", "ssn", 1),
        ("audit", "pii_detected", "ssn", "info"),
        ("tokens_created", 3),
        ("audit", "tokenized", "email", "info"),
        ("audit", "tokenized", "ssn", "info"),
    ]


def test_no_raw_value_reaches_telemetry() -> None:
    tel = FakeTelemetry()
    tok = PiiTokenizer(telemetry=tel)
    samples = corpus.samples(33, 30)
    tok.tokenize(" ; ".join(s.text for s in samples))
    tok.tokenize_json({"rows": [s.text for s in samples]})
    tok.detokenize("[EMAIL_1]")
    sent = repr(tel.security.calls)
    assert tel.security.calls
    assert [s.value for s in samples if s.value in sent] == []


def test_a_failing_telemetry_does_not_break_tokenization() -> None:
    class Broken:
        @property
        def security(self) -> Any:
            raise RuntimeError("exporter down")

    tok = PiiTokenizer(telemetry=Broken())
    assert tok.tokenize("jane@example.com")[0] == "[EMAIL_1]"


def test_reports_through_the_real_security_step() -> None:
    testing = pytest.importorskip("mcp_exec_telemetry.testing")
    with testing.capture() as cap:
        tok = PiiTokenizer(telemetry=cap.telemetry)
        tok.tokenize("jane@example.com, bob@example.org from 10.0.0.1")
        tok.detokenize("[EMAIL_1]")
        security = cap.summary()["security"]
    assert security["pii_detected"] == 3
    assert security["patterns"] == {"email": 2, "ip_address": 1}
    assert security["tokens_created"] == 3
