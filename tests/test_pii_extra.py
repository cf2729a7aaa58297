"""The ``pii`` extra: maintained validators when installed, the detector's own checks without them.

With python-stdnum and phonenumbers installed (``pip install 'mcp-exec-telemetry[pii]'``, part of
``[all]``) the detector checks IBANs against their country's length and format, SSNs against the
numbers printed on sample cards, and phone numbers against libphonenumber's metadata.  Without
them it falls back to its own checks (mod-97, SSN ranges, digit counts) and still meets the
goals on the public corpus.  Both are shown here: the libraries are made unavailable by making
the module's lazy loader return None, as it does when they are not installed.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import phonenumbers
import pytest
import stdnum.iban

from mcp_exec_telemetry.pii import PiiDetector, Scrubber
from mcp_exec_telemetry.pii import detectors
from tests.pii_corpus_public import clean, sensitive

MUST_GOAL, SHOULD_GOAL, FP_GOAL = 0.01, 0.05, 0.01

# From python-stdnum's own test suite (tests/test_iban.doctest): "These are the wrong length but
# otherwise have valid checksums", and "alphabetic characters where they are not allowed".
WRONG_LENGTH_IBANS = ["AD48 0001 2030 2003 5910 01", "AT93 1904 3002 3457 3201 99", "BE36 5390 0754 7034 1234"]
WRONG_FORMAT_IBANS = ["BG93 BNBG 9661 1A20 3456 78", "NL56 3003 0A17 1643 00"]
# IBAN registry samples (the same file): valid with and without the extra.
VALID_IBANS = ["DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819", "FR14 2004 1010 0505 0001 3M02 606"]


@pytest.fixture
def without_extra(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The detector as it runs without the ``pii`` extra; yields the libraries it asked for."""
    asked: list[str] = []

    def unavailable(name: str) -> None:
        asked.append(name)
        return None

    monkeypatch.setattr(detectors, "_library", unavailable)
    return asked


def _types(text: str, types: list[str] | None = None) -> list[str]:
    return [d.type for d in PiiDetector(types=types).detect(text)]


def test_the_extra_is_installed_where_the_tests_run() -> None:
    # [test] includes [all], which includes [pii]: the library path below is the one tested.
    assert detectors._library("stdnum.iban") is stdnum.iban
    assert detectors._library("phonenumbers") is phonenumbers
    assert detectors._library("no_such_module_for_pii") is None


def test_the_libraries_are_imported_only_when_a_candidate_needs_them() -> None:
    code = (
        "import sys\n"
        "from mcp_exec_telemetry.pii import Scrubber\n"
        "def loaded(): return sorted({m.split('.')[0] for m in sys.modules if m.startswith(('stdnum', 'phonenumbers'))})\n"
        "s = Scrubber()\n"
        "s.scrub('GET /v1/items?page=2 took 35 ms, trace 4bf92f3577b34da6a3ce929d0e0e4736, Chrome/120.0.0.0')\n"
        "print(loaded())\n"
        "print(s.scrub('IBAN DE89 3704 0044 0532 0130 00'), loaded())\n"
        "print(s.scrub('call +44 20 7946 0958'), loaded())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["[]", "IBAN [REDACTED:iban] ['stdnum']", "call [REDACTED:phone_number] ['phonenumbers', 'stdnum']"]


def test_without_the_extra_the_public_corpus_goals_still_hold(without_extra: list[str]) -> None:
    s = Scrubber()
    entries = sensitive()
    leaked = [e for e in entries if e.value in s.scrub(e.text)]
    total, lost = Counter(e.tier for e in entries), Counter(e.tier for e in leaked)
    clean_entries = clean()
    altered = [e.text for e in clean_entries if s.scrub(e.text) != e.text]
    assert lost["must"] / total["must"] <= MUST_GOAL, [e.value for e in leaked]
    assert lost["should"] / total["should"] <= SHOULD_GOAL, [e.value for e in leaked]
    assert len(altered) / len(clean_entries) <= FP_GOAL, altered[:10]
    # The fallback really ran: every validator asked for its library and got None.
    assert {"stdnum.iban", "stdnum.us.ssn", "stdnum.luhn", "phonenumbers"} <= set(without_extra)
    ibans = [e for e in entries if e.kind == "iban"]
    assert len(ibans) >= 100 and not [e.value for e in ibans if e.value in s.scrub(e.text)]


def test_with_the_extra_an_iban_must_fit_its_country(monkeypatch: pytest.MonkeyPatch) -> None:
    for iban in WRONG_LENGTH_IBANS + WRONG_FORMAT_IBANS:
        assert stdnum.iban.is_valid(iban) is False
        assert _types(f"refund to {iban} today", ["iban"]) == [], iban
    for iban in VALID_IBANS:
        assert _types(f"refund to {iban} today", ["iban"]) == ["iban"], iban
    # The same values pass the hand-written mod-97 fallback: only the library rejects them.
    monkeypatch.setattr(detectors, "_library", lambda name: None)
    for iban in WRONG_LENGTH_IBANS + WRONG_FORMAT_IBANS + VALID_IBANS:
        assert _types(f"refund to {iban} today", ["iban"]) == ["iban"], iban


def test_with_the_extra_a_phone_number_needs_a_country_and_enough_digits(monkeypatch: pytest.MonkeyPatch) -> None:
    not_numbers = ["+999 1234 5678",  # 999 is no assigned country code
                   "+1 234 567 89",  # nine digits: too short for any NANP number
                   "0049 30 12"]  # "00" + Germany, but too few digits for a German number
    numbers = ["+44 20 7946 0958", "0044 20 7946 0958", "06 12 34 56 78", "(030) 1234-5678", "090-1234-5678",
               "(415) 555-0132",
               "+33 36 1507 3731"]  # one digit too many for France: kept, it still holds a number
    for text in not_numbers:
        assert _types(f"call {text} now", ["phone_number"]) == [], text
    for text in numbers:
        assert _types(f"call {text} now", ["phone_number"]) == ["phone_number"], text
    monkeypatch.setattr(detectors, "_library", lambda name: None)
    for text in not_numbers[:2] + numbers:
        assert _types(f"call {text} now", ["phone_number"]) == ["phone_number"], text


def test_with_the_extra_sample_card_ssns_are_nobodys(monkeypatch: pytest.MonkeyPatch) -> None:
    # 078-05-1120 was printed on the sample card in Woolworth wallets; python-stdnum (and presidio's
    # tests) treat it as invalid.  The ranges check alone cannot know it.
    assert _types("ssn 078-05-1120, 078-05-1121") == ["ssn"]
    monkeypatch.setattr(detectors, "_library", lambda name: None)
    assert _types("ssn 078-05-1120, 078-05-1121") == ["ssn", "ssn"]
    assert _types("ssn 666-05-1121, 078-00-1121") == []
