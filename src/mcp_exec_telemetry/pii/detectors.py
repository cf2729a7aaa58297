"""Detection of PII values in text: one combined regular expression, one literal search, validators.

Most built-in rules are a *body* pattern that may only start where the previous character is not
part of a word (``[A-Za-z0-9_.+-]``; some also after a ``-``, as in ``customer-123-45-6789``).  The
combined scanner expresses that guard by consuming the separator character first,
``[^A-Za-z0-9_.+](?=[first characters])(?:...)``: a pattern that starts with a character class
lets the regex engine skip non-candidate characters in C, and the alternatives are grouped by
their first character, so the text is scanned once, fast, however many rules there are.

Rules that cannot be found that way are found by literals, in one search of the lower-cased text
for all of them: *needles* every match contains (``PRIVATE KEY`` in a PEM block, even inside a
JSON string), ``@`` for e-mail addresses and credential URLs (run at the start of the word
before it), and key names for the rules that read a value after a key (``password=``,
``"api_key": "..."``, ``secret: ...``; the literal is a rare part of the name, such as ``cret``
or ``ken``).  Only where something hits (rare, PII is sparse) are the individual rules run,
anchored; validators (Luhn, mod-97, base58check, bech32, octet ranges, SSN rules ...) drop false
candidates (with the ``pii`` extra installed, python-stdnum checks IBANs, SSNs and card numbers
and Google's libphonenumber confirms phone numbers; see :func:`_library`) and
:func:`resolve_overlaps` keeps, among overlapping candidates, the longest (ties: the rule listed
first in :data:`RULES`).

The candidate set is the one a sequential scan finds when each rule's own regex (see
:attr:`Rule.regex`) is searched at every position, which is how the tests and
``benchmarks/bench_pii.py`` check that the single pass loses nothing.
"""

# Annotations here are evaluated, not strings (no ``from __future__ import annotations``): a typed
# NamedTuple compiles each string annotation into a ``ForwardRef`` at import.

import enum
import importlib
import re
from bisect import bisect_left
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence, Union

__all__ = [
    "PiiType",
    "Detection",
    "Rule",
    "RULES",
    "PiiDetector",
    "JsonPath",
    "resolve_overlaps",
    "luhn_valid",
]


class PiiType(str, enum.Enum):
    """The built-in kinds of PII; a ``str`` enum so members compare equal to their names."""

    EMAIL = "email"
    PHONE_NUMBER = "phone_number"
    SSN = "ssn"
    CREDIT_CARD = "credit_card"
    IP_ADDRESS = "ip_address"
    API_KEY = "api_key"
    AUTH_TOKEN = "auth_token"
    PRIVATE_KEY = "private_key"
    IBAN = "iban"
    CRYPTO_WALLET = "crypto_wallet"

    def __str__(self) -> str:  # so f"{PiiType.EMAIL}" is "email" on every Python version
        return self.value


class Detection(NamedTuple):
    """One PII value found in a text: its type name, its ``text[start:end]`` span and the value.

    A named tuple (immutable, compact, cheap to create at import and per match), so
    ``type, start, end, value = detection`` also works.
    """

    type: str
    start: int
    end: int
    value: str


JsonPath = tuple[Union[str, int], ...]
"""Keys and list indices leading from the root of a JSON-like object to a string value."""

# ---------------------------------------------------------------------------------------------
# validators: cheap Python checks on what a rule's regex matched
# ---------------------------------------------------------------------------------------------

_LIBRARIES: dict[str, Any] = {}


def _library(name: str) -> Any | None:
    """The module ``name`` from the optional ``pii`` extra, or None when it is not installed.

    Imported on first use, when a candidate of its kind is found, so neither ``import`` of this
    package nor the scan of a clean string pays for it.  Without the extra every validator falls
    back to its own check, so the detector stays safe (what the tests show with this returning None).
    """
    try:
        return _LIBRARIES[name]
    except KeyError:
        pass
    try:
        module: Any = importlib.import_module(name)
    except Exception:  # not installed, or an install that does not import: the core's checks run
        module = None
    _LIBRARIES[name] = module
    return module


def luhn_valid(digits: str) -> bool:
    """True when the string of decimal digits passes the Luhn (mod 10) check of card numbers."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CARD_PREFIXES = frozenset(
    [str(n) for n in range(22, 28)]  # Mastercard 2-series (2221-2720, checked below)
    + ["30", "34", "35", "36", "37", "38", "39"]  # Diners, Amex, JCB
    + [str(n) for n in range(40, 50)]  # Visa
    + [str(n) for n in range(50, 60)]  # Mastercard 51-55, Maestro 50/56-59
    + [str(n) for n in range(60, 70)]  # Discover, UnionPay, Maestro
)


def _luhn(digits: str) -> bool:
    luhn = _library("stdnum.luhn")
    return luhn.is_valid(digits) if luhn is not None else luhn_valid(digits)


def _valid_card(value: str) -> bool:
    digits = value.replace(" ", "").replace("-", "")
    if digits[0] == "1":  # UATP: 15 digits
        return len(digits) == 15 and _luhn(digits)
    if not 13 <= len(digits) <= 19 or digits[:2] not in _CARD_PREFIXES:
        return False
    if digits[0] == "2" and not 2221 <= int(digits[:4]) <= 2720:
        return False
    return _luhn(digits)


def _valid_ssn(value: str) -> bool:
    """Never issued: area 000, 666 or 9xx, group 00, serial 0000; python-stdnum also knows the
    numbers printed on sample cards and in advertising (``078-05-1120``), which are nobody's."""
    ssn = _library("stdnum.us.ssn")
    if ssn is not None:
        return ssn.is_valid(value)
    area, group, serial = value.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_NOBODYS_V4 = ("127.", "0.0.0.0", "192.0.2.", "198.51.100.", "203.0.113.")
"""Loopback, unspecified and documentation (RFC 5737) addresses: nobody's address, kept for debugging."""


def _valid_ipv4(value: str) -> bool:
    return all(int(octet) <= 255 for octet in value.split(".")) and not value.startswith(_NOBODYS_V4)


def _valid_ipv6(value: str) -> bool:
    import ipaddress  # here: a large module that only IPv6-looking candidates need

    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    groups = [g for g in value.split(":") if g]
    if len(groups) == 8:
        return True
    # compressed forms: keep "fe80::1" and "2001:db8::1" but not slices such as "1::2" or "::1"
    return len(groups) >= 2 and sum(len(g) for g in groups) >= 5


def _valid_email(value: str) -> bool:
    local, _, domain = value.rpartition("@")
    if len(local) > 64 or local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    tld = domain.rsplit(".", 1)[-1]
    return len(tld) >= 2 and (tld.isalpha() or (tld[:4].lower() == "xn--" and len(tld) > 4))


# Patterns of rare paths (validators, extra patterns) stay strings: ``re`` compiles and caches them at
# their first use, so a process that never reaches them does not pay for them at import.
_SSN_SHAPE = r"[0-9]{3}([ .-])[0-9]{2}\1[0-9]{4}\Z"


def _valid_phone(value: str) -> bool:
    if re.match(_SSN_SHAPE, value):
        return False  # 3-2-4 digits is an SSN's shape (valid or not), never a phone number
    n = sum(ch.isdigit() for ch in value)
    if value[0] == "+":
        # "+12500000" is a signed number: without separators an E.164 number needs 10+ digits.
        ok = (10 if value[1:].isdigit() else 8) <= n <= 15
    elif value.startswith("00"):
        ok = 10 <= n <= 17  # "00" + an E.164 number
    elif value[0] == "0" or value[:2] == "(0":
        ok = 9 <= n <= 12  # national trunk prefix: "06 12 34 56 78", "(030) 1234-5678"
    else:
        ok = 10 <= n <= 15
    return ok and _phone_possible(value)


_PHONE_REGIONS = ("US", "GB", "DE", "FR", "JP", "IN", "BR", "CN", "IT", "ES")
"""Where a number without a country code is tried: the regions whose national formats the rule reads."""


def _phone_possible(value: str) -> bool:
    """False only when libphonenumber shows the candidate is no phone number (``pii`` extra).

    An international number ("+" or "00") must have an assigned country code and at least the
    digits a number of that country has; a national one must be a possible number in one of
    :data:`_PHONE_REGIONS`.  A number that is too long or of an odd length for its country is kept:
    it still holds a phone number (an extension, a typo), and letting it through would leak it.
    """
    pn = _library("phonenumbers")
    if pn is None:
        return True
    if value.startswith("00"):
        value = "+" + value[2:]
    keep = (pn.ValidationResult.IS_POSSIBLE, pn.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
            pn.ValidationResult.INVALID_LENGTH, pn.ValidationResult.TOO_LONG)
    for region in (None,) if value[0] == "+" else _PHONE_REGIONS:
        try:
            number = pn.parse(value, region)
        except pn.NumberParseException:
            continue
        if pn.is_possible_number_with_reason(number) in keep:
            return True
    return False


def _valid_ssn_any(value: str) -> bool:
    digits = "".join(ch for ch in value if ch.isdigit())
    return len(digits) == 9 and _valid_ssn(f"{digits[:3]}-{digits[3:5]}-{digits[5:]}")


_IBAN_COUNTRIES = frozenset(
    "AD AE AL AT AZ BA BE BG BH BI BR BY CH CR CY CZ DE DJ DK DO EE EG ES FI FK FO FR GB GE GI GL GR GT "
    "HR HU IE IL IQ IS IT JO KW KZ LB LC LI LT LU LV LY MC MD ME MK MN MR MT MU NI NL NO OM PK PL PS PT "
    "QA RO RS RU SA SC SD SE SI SK SM SO ST SV TL TN TR UA VA VG XK YE".split()
)


def _valid_iban(value: str) -> bool | str:
    """ISO 13616: a known country code and the mod-97 check digits; with python-stdnum (the ``pii``
    extra) also the length and BBAN format of that country (not the national check digits, which
    published examples often lack).

    The pattern may have taken a word too many (``... 8901 X``, ``... 6763 DEBUG``): then the
    valid IBAN without it is returned, and only that is reported.
    """
    if _iban_checks(value):
        return True
    head = value
    for _ in range(2):  # only words of letters: digits would be part of the number
        head, sep, word = head.rpartition(" ")
        if not sep or not word.isalpha():
            return False
        if _iban_checks(head):
            return head
    return False


def _iban_checks(value: str) -> bool:
    iban = value.replace(" ", "").replace("-", "")
    if not 15 <= len(iban) <= 34 or iban[:2] not in _IBAN_COUNTRIES:
        return False
    moved = iban[4:] + iban[:4]
    if int("".join(str(int(ch, 36)) for ch in moved)) % 97 != 1:
        return False
    stdnum_iban = _library("stdnum.iban")  # only for what passes mod-97: the common miss stays cheap
    return stdnum_iban is None or stdnum_iban.is_valid(iban, check_country=False)


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {ch: i for i, ch in enumerate(_B58)}


def _valid_base58check(value: str) -> bool:
    """A Bitcoin P2PKH / P2SH address: base58, 25 bytes, and a double-SHA-256 checksum."""
    n = 0
    for ch in value:
        n = n * 58 + _B58_INDEX[ch]
    raw = n.to_bytes(25, "big") if n < 1 << 200 else b""
    if len(raw) != 25:
        return False
    import hashlib  # here: only base58 candidates need it

    return hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _valid_bech32(value: str) -> bool:
    """A SegWit address (BIP 173 / 350): the bech32 or bech32m checksum over the data part."""
    hrp, _, data = value.lower().rpartition("1")
    if not hrp or len(data) < 7 or any(ch not in _BECH32 for ch in data):
        return False
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in [ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp] + [_BECH32.index(ch) for ch in data]:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk in (1, 0x2BC830A3)


def _valid_wallet(value: str) -> bool:
    if value.startswith(("0x", "0X")):
        return len(set(value[2:].lower())) > 4  # "0x000...0" is a null address, not a wallet
    if value[:3].lower() == "bc1":
        return _valid_bech32(value)
    return _valid_base58check(value)


def _valid_basic(value: str) -> bool:
    """``Basic <base64 of user:password>``."""
    import base64  # here: only "Basic ..." candidates need it
    import binascii

    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


def _valid_provider_key(value: str) -> bool:
    # "sk-" also starts words such as "sk-learn-classification-model": real keys carry digits.
    if value.startswith(("sk-", "xox")):
        return any(ch.isdigit() for ch in value) and any(ch.isalpha() for ch in value[3:])
    return True


_PLACEHOLDERS = frozenset(
    {"null", "none", "true", "false", "undefined", "string", "redacted", "required", "optional",
     "changeme", "example", "secret", "password", "your_api_key", "<redacted>", "bearer", "basic", "token"}
)


def _valid_quoted_secret(value: str) -> bool:
    low = value.lower()
    if low in _PLACEHOLDERS or value.startswith(("{{", "${", "<", "%(", "[REDACTED")) or "fake" in low:
        return False
    return len(value) >= 4 and any(ch.isalnum() for ch in value) and not value.isdigit() and len(set(value)) > 2


def _valid_symbolic_secret(value: str) -> bool:
    return _valid_secret_value(value) and not value.isalpha() and "://" not in value


def _valid_cli_credentials(value: str) -> bool:
    value = value.replace('"', "").replace("'", "")
    user, _, password = value.partition(":")
    return len(value) >= 4 and max(len(user), len(password)) >= 3 and not value.startswith(("$", "%", "{{"))


def _valid_auth_header(value: str) -> bool:
    if not _valid_secret_value(value):
        return False
    return len(value) >= 16 or (any(ch.isdigit() for ch in value) and any(ch.isalpha() for ch in value))


_CODE_CALL = r"[A-Za-z_][A-Za-z0-9_.]*[(\[]"
_CODE_PATH = r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+\Z"


def _valid_secret_value(value: str) -> bool:
    if value[0] in "$%*#" or value.lower() in _PLACEHOLDERS:
        return False
    if value[0] in "{[(<" or value.startswith(("[REDACTED", "%(")) or re.match(_CODE_PATH, value) or re.match(_CODE_CALL, value):
        return False  # a template, markup or code (``os.environ[...]``, ``getpass()``), not a secret
    return len(set(value)) > 2  # "xxxxxx", "******", "ababab" are masks, not secrets


def _valid_bearer(value: str) -> bool:
    # "Bearer authentication is ..." is prose; opaque tokens mix letters and digits.
    return any(ch.isdigit() for ch in value) and any(ch.isalpha() for ch in value)


# ---------------------------------------------------------------------------------------------
# rules
# ---------------------------------------------------------------------------------------------

_WORDISH = "A-Za-z0-9_.+\\-"
"""Characters that may not precede the start of a built-in match (they would put it mid-word)."""
_LOOKBEHIND = f"(?<![{_WORDISH}])"
_SEPARATOR = f"[^{_WORDISH}]"
_END = "(?![A-Za-z0-9_]|[.-][0-9])"  # not followed by a word char, nor by ".5" / "-5"


_DIGITS = "0123456789"
_HEX = _DIGITS + "abcdefABCDEF"
_WORD = _DIGITS + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"

_SECRET_KEYS = (
    "api_key", "api-key", "apikey", "access_key", "access-key", "accesskey", "secret_key",
    "secret-key", "secretkey", "private_key", "private-key", "privatekey", "secret", "password",
    "passwd", "pwd", "token", "account_key", "accountkey", "sharedaccesskey", "passphrase",
    "pass",
)
"""A ``key=value`` / ``key: value`` assignment is a secret when the key *ends* with one of these."""


_QUOTED_KEYS_ANYWHERE = ("password", "passwd", "passphrase", "pwd", "_pass", "secret", "api_key", "api-key", "apikey",
                         "private_key", "privatekey")
_QUOTED_KEYS_AT_END = ("token", "auth", "credentials", "credential", "access_key", "accesskey", "secret_key",
                       "account_key", "accountkey", "client_key")
"""Key names before a quoted secret: anywhere in the key (``my_password_sec``), or at its end (``user_auth``)."""

_KEY_NAMES = _SECRET_KEYS + _QUOTED_KEYS_ANYWHERE + _QUOTED_KEYS_AT_END
_KEY_GATES = ("pass", "pwd", "cret", "key", "ken", "uth", "cred")
"""Every key name contains one of these: a text with none of them skips the key-name search.  They
start with letters that are rare in prose and logs (``cret`` for ``secret``, ``ken`` for
``token``), so the literal search tries few positions."""
_KEY_NAMES_ANYWHERE = frozenset(k.lower() for k in _QUOTED_KEYS_ANYWHERE + ("password", "passwd", "secret", "_pass"))
"""Key names a key may continue after (``password_super_secure``); every other name ends the key."""
_AFTER_GATE = frozenset({"==", "!="})
"""Needles of rules that also need a key name (``"..." == password``): tested only after a gate hit."""
_AFTER_AT = frozenset({"://"})
"""Word literals of rules that also need an ``@`` (``scheme://user:password@host``): found after one."""
_GATES_AT_END = frozenset(
    g for g in _KEY_GATES
    if all(k.lower().endswith(g) and k.lower() not in _KEY_NAMES_ANYWHERE for k in _KEY_NAMES if g in k.lower())
)
"""Gates that only ever end a key name ("token", "auth"): their hits must be followed by no letter."""
_KEY_END = frozenset("0123456789\"'` \t:=!,[@")
"""What may follow a key name that ends its key: digits, a quote, a blank, an operator."""
_KEY_OFFSETS = tuple(
    (g, tuple(sorted({(k.lower().find(g), k.lower(), k.lower() in _KEY_NAMES_ANYWHERE)
                      for k in _KEY_NAMES if g in k.lower()}))) for g in _KEY_GATES
)
"""For each gate, the key names holding it, how far into them it first occurs, and whether the
key may continue after the name."""
assert all(any(g in k.lower() for g in _KEY_GATES) for k in _KEY_NAMES)


def _checked_end(validate: Callable[[str], Any] | None, text: str, s: int, e: int) -> int | None:
    """The end of a candidate ``text[s:e]`` its validator accepts, or None.

    A validator returns True / False, or the valid prefix of the value when the pattern took a
    word too many (``AT43 8443 7412 1597 6763 DEBUG``: the IBAN ends before `` DEBUG``).
    """
    if e <= s:
        return None
    if validate is None:
        return e
    ok = validate(text[s:e])
    if isinstance(ok, str):
        return s + len(ok) if ok else None
    return e if ok else None


def _find_all(text: str, literal: str) -> list[int]:
    out, i = [], text.find(literal)
    while i >= 0:
        out.append(i)
        i = text.find(literal, i + 1)
    return out


def _expand_class(spec: str) -> str:
    """``"A-Za-z0-9._%+-"`` as the characters it names (ranges expanded, a trailing ``-`` literal)."""
    out: list[str] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            out.extend(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


def _anycase(word: str) -> str:
    """``Key`` -> ``[kK][eE][yY]``: case-insensitive without a flag, so it can sit in a look-behind."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


class Rule(NamedTuple):
    """One built-in pattern: the PII type it reports, its body regex and an optional validator.

    ``body`` may contain one group named ``v``; when it matches, only that group is the value
    (``password=<v>``, ``Bearer <v>``).  ``first`` lists the characters a body can start with,
    so the scanner only tries plausible rules at a hit.  ``prefilter`` holds cheaper patterns, one
    of which matches wherever ``body`` does; each begins with one literal or character class, so
    the engine rejects it on the first character (the combined scan is built from them).
    """

    name: str
    type: str
    body: str
    first: str
    validate: Callable[[str], bool | str] | None = None
    prefilter: tuple[str, ...] = ()
    after: str = ""
    """Word characters that may still precede a match (``-`` in ``customer-123-45-6789``)."""
    needle: str | tuple[str, ...] = ""
    word_before: tuple[str, str] | None = None
    """``(literal, characters)``: every match holds ``literal`` right after a word made of
    ``characters`` (``@`` after an e-mail's local part): the detector finds the literal with
    ``str.find`` and runs the rule at the start of that word, instead of at every word."""
    anchored: bool = False
    """The body starts with a secret's key name (``password``, ``api_key`` ...): the detector runs
    it only where one of those names occurs, found with ``str.find`` on the lower-cased text."""
    """A literal every match contains: the rule is searched on its own where ``needle in text``
    (for values that start mid-word, such as a PEM block after a JSON ``\\n``)."""

    @property
    def regex(self) -> str:
        """The rule as a stand-alone regex: the body behind its start-of-word guard."""
        if self.needle or self.anchored:
            return "(?:" + self.body + ")"
        return _lookbehind(self.after) + "(?:" + self.body + ")"


def _lookbehind(after: str) -> str:
    if not after:
        return _LOOKBEHIND
    excluded = "".join(ch for ch in "_.+-" if ch not in after)
    return "(?<![A-Za-z0-9" + excluded.replace("-", "\\-") + "])"


RULES: tuple[Rule, ...] = (
    # Specific formats first: on equal spans the earlier rule wins.
    Rule(
        "private_key",
        PiiType.PRIVATE_KEY.value,
        # A PEM block up to its END line; in a JSON string (newlines as "\n") or cut short, up to
        # the closing quote or the end of the text, so no line of it is left behind.
        r"-----BEGIN[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----[^\"'`]*?"
        r"(?:-----END[ A-Z0-9_-]{0,40}PRIVATE KEY(?: BLOCK)?-----|(?=[\"'`])|\Z)",
        "-",
        needle="PRIVATE KEY",
    ),
    Rule(
        "jwt",
        PiiType.AUTH_TOKEN.value,
        # Signed (three parts) or unsigned (two parts, alg "none"): header and claims are JSON.
        r"eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}(?:\.[A-Za-z0-9_-]*)?(?![A-Za-z0-9_-])",
        "e",
        prefilter=("eyJ",),
        after="-",
    ),
    Rule(
        "provider_key",
        PiiType.API_KEY.value,
        r"(?:sk-[A-Za-z0-9_-]{20,}"
        r"|gh[pousr]_[A-Za-z0-9]{36,255}"
        r"|github_pat_[A-Za-z0-9_]{22,255}"
        r"|(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"
        r"|xox[abeoprs]-[A-Za-z0-9-]{10,}"
        r"|xoxe\.xox[bp]-[0-9]-[A-Za-z0-9-]{20,}"
        r"|xapp-[0-9]-[A-Za-z0-9-]{20,}"
        r"|[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"
        r"|whsec_[A-Za-z0-9+/=]{24,}"
        r"|AIza[A-Za-z0-9_-]{35,45}"
        r"|ya29\.[A-Za-z0-9_-]{20,}"
        r"|GOCSPX-[A-Za-z0-9_-]{24,}"
        r"|gl(?:pat|dt|ptt|rt|cbt|ffct|ft|imt|oas|soat|agent)-[A-Za-z0-9_-]{20,80}"
        r"|GR1348941[A-Za-z0-9_-]{20,80}"
        r"|AKC[A-Za-z0-9]{10,}|AP[0-9A-F][A-Za-z0-9]{8,}"
        r"|(?:AC|SK)[a-z0-9]{32}"
        r"|sq0(?:atp|csp)-[A-Za-z0-9_-]{22,43}"
        r"|EAA[A-Za-z0-9]{80,}"
        r"|fo1_[A-Za-z0-9_-]{43}|fm[12][ar]?_[A-Za-z0-9+/]{100,}={0,3}"
        r"|ntn_[0-9]{11}[A-Za-z0-9]{32,}"
        r"|sntry[su]_[A-Za-z0-9+/=_-]{40,}"
        r"|hf_[A-Za-z0-9]{30,}"
        r"|api_org_[A-Za-z0-9]{30,}"
        r"|SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"
        r"|pypi-Ag[A-Za-z0-9_-]{50,}"
        r"|npm_[A-Za-z0-9]{36}"
        r"|(?:https?://)?hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{16,}"
        r"|(?:https?://)?discord(?:app)?\.com/api/webhooks/[0-9]{5,30}/[A-Za-z0-9_-]{20,})"
        r"(?![A-Za-z0-9_-])",
        "sgAxrwyGhpanSdGfeE",
        _valid_provider_key,
        prefilter=("sk-", "gh[pousr]_", "github_pat_", "A(?:KIA|SIA|Iza|BIA|CCA|3T|KC|P[0-9A-F]|C[a-z0-9])", "SK[a-z0-9]",
                   "xox[abeoprs][-.]", "xapp-", "sq0", "EAA", "f[om][12]", "ntn_", "sntry",
                   "rk_(?:live|test)_", "sk_(?:live|test)_", "whsec_", r"ya29\.", "GOCSPX-", "gl[a-z]{1,4}t?-", "GR1348941",
                   "hf_", "api_org_", r"SG\.", "pypi-Ag", "npm_", "https?://hooks\\.slack", "hooks\\.slack",
                   "https?://discord", "discord(?:app)?\\.com"),
        after="-",
    ),
    Rule(
        "discord_token",
        PiiType.API_KEY.value,
        r"[MNO][A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}(?![A-Za-z0-9_-])",
        "MNO",
        prefilter=(r"[MNO][A-Za-z0-9_-]{23,25}\.",),
    ),
    Rule(
        "telegram_token",
        PiiType.API_KEY.value,
        # Telegram bot tokens; Facebook app tokens ("<app id>|<secret>") share the digit-first shape.
        r"(?:bot)?(?P<v>[0-9]{8,10}:AA[A-Za-z0-9_-]{32,33}|[0-9]{15,16}\|[A-Za-z0-9_-]{27})(?![A-Za-z0-9_-])",
        _DIGITS + "b",
        prefilter=("[0-9][0-9]{7,9}:AA", "bot[0-9]{8}", r"[0-9][0-9]{14,15}\|"),
    ),
    Rule(
        "azure_client_secret",
        PiiType.API_KEY.value,
        # Entra ID (Azure AD) client secrets: 3 characters, a digit, "Q~", then 31-34 more.
        r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])",
        "",
        needle="Q~",
    ),
    Rule(
        "terraform_token",
        PiiType.API_KEY.value,
        r"(?<![A-Za-z0-9_-])[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=-]{60,70}(?![A-Za-z0-9_=-])",
        "",
        needle="lasv1.",
    ),
    Rule(
        "cli_user_credentials",
        PiiType.AUTH_TOKEN.value,
        # curl / wget style "-u user:password", "--user 'user:password'".
        r"(?:-u|--user)(?:[ \t]+|=)(?P<v>[\"']?[^\s\"':]*[\"']?:[\"']?[^\s\"']*[\"']?)",
        "-",
        _valid_cli_credentials,
        prefilter=("-u[ \t=]", "--user[ \t=]"),
    ),
    Rule(
        "url_credentials",
        PiiType.AUTH_TOKEN.value,
        # scheme://user:password@host -- whatever the host: "localhost", "db", an IP address.
        r"[A-Za-z][A-Za-z0-9+.-]{1,20}://[^\s:/@\"'<>]{0,64}:(?P<v>[^\s@/\"'<>]{1,128})@",
        "",
        _valid_secret_value,
        word_before=("://", "A-Za-z0-9._%+-"),
    ),
    Rule(
        "email",
        PiiType.EMAIL.value,
        # Not "git@github.com:org/repo.git": an scp-style host and path.
        r"(?<!://)[A-Za-z0-9_%+-][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+(?![A-Za-z0-9-]|\.[A-Za-z0-9-]|:[A-Za-z0-9_.~-]+/)",
        "",
        _valid_email,
        word_before=("@", "A-Za-z0-9._%+-"),
    ),
    Rule(
        "iban",
        PiiType.IBAN.value,
        r"[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?" + _END,
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        _valid_iban,
        prefilter=("[A-Z][A-Z][0-9]{2}[ -]?[A-Z0-9]{4}",),
    ),
    Rule(
        "crypto_wallet",
        PiiType.CRYPTO_WALLET.value,
        # Base58 addresses mix upper and lower case; hex ids ("1c7ef685...") do not.
        r"(?:[13](?=[1-9A-HJ-NP-Za-km-z]{0,33}[a-km-z])(?=[1-9A-HJ-NP-Za-km-z]{0,33}[A-HJ-NP-Z])[1-9A-HJ-NP-Za-km-z]{25,34}"
        r"|bc1[02-9ac-hj-np-z]{11,71}"
        r"|0x[0-9a-fA-F]{40})(?![A-Za-z0-9_])",
        "13b0",
        _valid_wallet,
        # The length first: most words that start with 1 or 3 (numbers, hex ids with a "0") are
        # not 26 base58 characters long, and the two case look-aheads then never run.
        prefilter=("1(?=[1-9A-HJ-NP-Za-km-z]{25})(?=[1-9A-HJ-NP-Za-km-z]{0,33}[a-km-z])(?=[1-9A-HJ-NP-Za-km-z]{0,33}[A-HJ-NP-Z])",
                   "3(?=[1-9A-HJ-NP-Za-km-z]{25})(?=[1-9A-HJ-NP-Za-km-z]{0,33}[a-km-z])(?=[1-9A-HJ-NP-Za-km-z]{0,33}[A-HJ-NP-Z])",
                   "bc1", "0x[0-9a-fA-F]{40}"),
    ),
    Rule(
        "credit_card",
        PiiType.CREDIT_CARD.value,
        # Not the digits of an IBAN ("DE89 3704 0044 0532 0130 00").
        r"(?<![A-Z]{2}[0-9]{2} )(?<![A-Z][0-9]{3} )(?:[2-6][0-9]{12,18}|1[0-9]{14}"
        r"|[2-6][0-9]{3}(?: [0-9]{4}){3}(?: [0-9]{1,3})?"
        r"|[2-6][0-9]{3}(?:-[0-9]{4}){3}(?:-[0-9]{1,3})?"
        r"|3[0-9]{3} [0-9]{6} [0-9]{4,5}"
        r"|3[0-9]{3}-[0-9]{6}-[0-9]{4,5})" + _END,
        "123456",
        _valid_card,
        prefilter=("[0-9][0-9]{3}(?:[0-9]{9}|[ -][0-9]{4})",),
    ),
    Rule("ssn", PiiType.SSN.value, r"[0-9]{3}(?:-[0-9]{2}-|\.[0-9]{2}\.| [0-9]{2} )[0-9]{4}" + _END, _DIGITS, _valid_ssn_any,
         prefilter=("[0-9][0-9]{2}[ .-][0-9]{2}[ .-]",), after="-"),
    Rule(
        "ssn_in_context",
        PiiType.SSN.value,
        # Undashed, dotted or spaced, after the words that name it: "SSN 078051121".
        r"(?:SSN|[Ss]sn|[Ss]ocial [Ss]ecurity(?: [Nn]umber| [Nn]o\.?| #)?)s?[ \t]*[:#=]{0,2}[ \t]*(?:is[ \t]+)?"
        r"(?P<v>[0-9]{3}[ .-]?[0-9]{2}[ .-]?[0-9]{4})" + _END,
        "SsS",
        _valid_ssn_any,
        prefilter=("SSN", "Ssn", "ssn", "Social [Ss]ecurity", "social [Ss]ecurity"),
    ),
    Rule(
        "phone",
        PiiType.PHONE_NUMBER.value,
        # E.164: "+" country code, then one digit per step with an optional separator before it,
        # at most 15 digits in all (so "+44 20 7946 0958 2024" stops before "2024").
        r"(?:\+[1-9](?:[ .-]?[0-9]|[ .-]?\([0-9]{1,4}\)){6,14}"
        # "00" international prefix: "0044 20 7946 0958".
        r"|(?<![0-9][ ./-])(?<![A-Z0-9]{4} )00[1-9][0-9]{0,2}(?:[ .-][0-9]{1,4}){2,6}"
        # National trunk prefix with separators: "06 12 34 56 78", "(030) 1234-5678", "090-1234-5678".
        r"|(?<![0-9][ ./-])(?<![A-Z0-9]{4} )(?:\(0[0-9]{1,5}\)[ ]?|0[1-9][0-9]{0,4}[ ./-])[0-9]{2,8}(?:[ .-][0-9]{2,8}){0,4}"
        # NANP: separators (or parentheses) are required, so plain integers never match.
        r"|(?:1[ .-]?)?(?:\([2-9][0-9]{2}\)[ .-]?|[2-9][0-9]{2}[ .-])[0-9]{3}[ .-][0-9]{4})" + _END,
        _DIGITS + "+(",
        _valid_phone,
        prefilter=(r"\+[1-9]", r"\([02-9]", r"[0-9][0-9]{2}[ .-][0-9]{3}[ .-]", r"1[ .-]?(?:\([2-9]|[2-9][0-9]{2}[ .-][0-9]{3}[ .-])",
                   r"00[1-9][0-9]{0,2}[ .-][0-9]", r"0[1-9][0-9]{0,4}[ ./-][0-9]{2,8}(?![0-9A-Za-z])"),
    ),
    Rule(
        "ipv4",
        PiiType.IP_ADDRESS.value,
        # Not the version in a product token ("Chrome/120.0.0.0").
        r"(?<![A-Za-z]/)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}" + _END,
        _DIGITS,
        _valid_ipv4,
        prefilter=(r"[0-9][0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.",),
    ),
    Rule(
        "ipv6",
        PiiType.IP_ADDRESS.value,
        r"(?<![0-9A-Fa-f:]:)(?:[0-9A-Fa-f]{1,4}|(?=::))(?::[0-9A-Fa-f]{0,4}){2,7}(?![A-Za-z0-9_:]|\.[0-9])",
        _HEX + ":",
        _valid_ipv6,
        prefilter=("[0-9][0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{0,4}:", "[A-Fa-f][0-9A-Fa-f]{0,3}:[0-9A-Fa-f]{0,4}:", "::"),
    ),
    Rule(
        "bearer",
        PiiType.AUTH_TOKEN.value,
        r"(?:[Bb]earer|BEARER)[ \t]+(?P<v>[A-Za-z0-9._~+/-]{12,}=*)",
        "bB",
        _valid_bearer,
        prefilter=(r"Bearer[ \t]", r"bearer[ \t]", r"BEARER[ \t]"),
    ),
    Rule(
        "basic_auth",
        PiiType.AUTH_TOKEN.value,
        r"(?:[Bb]asic|BASIC)[ \t]+(?P<v>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])",
        "bB",
        _valid_basic,
        prefilter=(r"Basic[ \t]", r"basic[ \t]", r"BASIC[ \t]"),
    ),
    Rule(
        "authorization_header",
        PiiType.AUTH_TOKEN.value,
        # "Authorization: Token abc..." -- the whole credential, whatever its scheme.
        r"(?:[Pp]roxy-)?[Aa]uthorization[\"']?[ \t]*[:=][ \t]*[\"']?(?:[A-Za-z-]+[ \t]+)?(?P<v>[^\s\"'<>{}]+)",
        "AaPp",
        _valid_auth_header,
        prefilter=(r"Proxy-[Aa]uthorization", r"proxy-[Aa]uthorization", r"Authorization", r"authorization"),
    ),
    Rule(
        "azure_sas",
        PiiType.API_KEY.value,
        r"sig=(?P<v>[A-Za-z0-9%+/]{30,}(?:%3[Dd]|=){0,2})",
        "s",
        prefilter=("sig=",),
    ),
    Rule(
        "mailchimp",
        PiiType.API_KEY.value,
        # Found from its "-us" (searched from the "u"): a prefilter in the combined scan would read
        # 31 hex digits at every hex word, and trace and span ids are exactly that.
        _LOOKBEHIND + r"[0-9a-f]{32}-us[0-9]{1,2}(?![A-Za-z0-9_-])",
        _HEX,
        needle="-us",
    ),
    Rule(
        "quoted_secret",
        PiiType.API_KEY.value,
        # A quoted value, spaces and symbols included, after a key naming a secret anywhere in it
        # (``password_super_secure = "..."``, ``"db_pass": "..."``) -- detect-secrets' keyword idea.
        r"(?:(?:" + "|".join(_anycase(k) for k in _QUOTED_KEYS_ANYWHERE) + r")(?![aA][rR][yY])[A-Za-z0-9_.-]*"
        r"|(?:" + "|".join(_anycase(k) for k in _QUOTED_KEYS_AT_END) + r")[0-9]*)(?:\[[0-9]*\])?"
        r"[\"']?[ \t]*(?:[:=!]==?|:=|=>|[:=,])?[ \t]*@?[\"'`](?P<v>[^\"'`\r\n]{1,200})[\"'`]",
        "",
        _valid_quoted_secret,
        anchored=True,
    ),
    Rule(
        "compared_secret",
        PiiType.API_KEY.value,
        # The literal a secret is compared with: ``if ("..." == password)``.
        r"[\"'`](?P<v>[^\"'`\r\n]{1,200})[\"'`][ \t]*[!=]==?[ \t]*[A-Za-z0-9_.]*?(?:"
        + "|".join(_anycase(k) for k in ("password", "passwd", "pwd", "secret", "api_key", "apikey", "private_key", "token")) + ")",
        "",
        _valid_quoted_secret,
        needle=("==", "!="),
    ),
    Rule(
        "secret_word_assignment",
        PiiType.API_KEY.value,
        # An unquoted value after a key with "password" / "secret" / "passwd" / "_pass" inside it
        # (``db_pass_secure := ...``, ``secrete = ...``); the value must hold a digit or a symbol,
        # so settings such as ``password_policy=strict`` stay.
        r"(?:" + "|".join(_anycase(k) for k in ("password", "passwd", "secret", "_pass")) + r")(?![aA][rR][yY])"
        r"[A-Za-z0-9_]{1,16}[ \t]*(?::=|[:=]>?)[ \t]*(?P<v>(?:[^\s\"'`,;&]|,(?=[^\s\"'`,;&])){6,})(?![^\s\"'`,;&]|,[^\s\"'`,;&])",
        "",
        _valid_symbolic_secret,
        anchored=True,
    ),
    Rule(
        "secret_assignment",
        PiiType.API_KEY.value,
        # ``<...key>=value`` where the key ends with a secret's name; the value runs to a space,
        # quote, ";" or "&", or a "," followed by a space.
        r"(?:" + "|".join(_anycase(k) for k in sorted(_SECRET_KEYS, key=len, reverse=True)) + r")"
        + r"[\"']?[ \t]*(?::=|[:=]>?)[ \t]*[\"']?(?P<v>(?:[^\s\"'`,;&]|,(?=[^\s\"'`,;&])){6,})(?![^\s\"'`,;&]|,[^\s\"'`,;&])",
        "",
        _valid_secret_value,
        anchored=True,
    ),
)
"""The built-in rules, in tie-break priority order."""

_BACKREF = r"\\[1-9]|\(\?P=|\(\?\("
_SCOPED_FLAGS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"), (re.VERBOSE, "x"), (re.ASCII, "a"))
_BUILTIN_TYPES = frozenset(t.value for t in PiiType)
_FLAGS = re.ASCII


def _first_char_table(rules: Sequence[Rule]) -> dict[str, tuple[int, ...]]:
    table: dict[str, list[int]] = {}
    for i, rule in enumerate(rules):
        for ch in rule.first:
            table.setdefault(ch, []).append(i)
    return {ch: tuple(ix) for ch, ix in table.items()}


def _strip_value_group(body: str) -> str:
    return body.replace("(?P<v>", "(?:")




def _combined_body(rules: Sequence[Rule]) -> str:
    """One alternation that matches wherever at least one of ``rules`` matches (a superset).

    The rules contribute their literal prefixes or their own bodies, grouped by first atom, so
    they fail on the first character almost everywhere.  Rules that start with any word (e-mail,
    credential URLs), found by a needle or by a key name are not part of it: reading every word
    for them would cost more than finding their literal (``@``, ``://`` ...) with ``str.find``.
    """
    rest = [p for r in rules for p in (r.prefilter or ["(?:" + _strip_value_group(r.body) + ")"])]
    return "(?:" + "|".join(_grouped(rest)) + ")"


_LEADING_ATOM = re.compile(r"(\\[^0-9AbBZ]|\[(?:\\.|[^\]\\])+\]|[^\\\[\](){}|?*+^$.])(?![?*+{])")


def _grouped(alternatives: Sequence[str]) -> list[str]:
    """``ab|ac|[0-9]x|[0-9]y`` as ``a(?:b|c)|[0-9](?:x|y)``: alternatives sharing their first atom.

    The regex engine skips an alternative that starts with a literal or a character class after
    one comparison, but it still visits every alternative at every candidate position; grouping
    by first atom keeps that visit count small however many rules there are.
    """
    groups: dict[str, list[str]] = {}
    order: list[str] = []
    for alt in alternatives:
        m = _LEADING_ATOM.match(alt)
        key = m.group(1) if m else "\0" + alt  # not groupable: stays alone
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(alt[m.end():] if m else alt)
    out = []
    for key in order:
        tails = groups[key]
        if key.startswith("\0"):
            out.append(tails[0])
        elif len(tails) == 1:
            out.append(key + tails[0])
        else:
            out.append(key + "(?:" + "|".join(tails) + ")")
    return out


def _scan_pattern(rules: Sequence[Rule]) -> str:
    """The combined scan: a separator, then the combined body.

    The separator is a character outside ``[A-Za-z0-9_.+-]``; rules with ``after`` characters
    (``-`` before an SSN or a provider key) may also start after those, which the scan expresses
    with one wider leading class: those rules' alternatives come first, the others behind a
    one-character look-behind that excludes the ``after`` characters.  Each alternative is in the
    pattern once, so the engine still skips non-candidates in C and the pattern compiles fast.
    """
    after = sorted({ch for r in rules for ch in r.after if ch in "_.+-"})
    # Most separators are followed by a character no rule starts with (a space, a quote, "{"):
    # one class test there skips trying every alternative.
    firsts = "".join(sorted({ch for r in rules for ch in r.first}))
    ahead = "(?=[" + re.sub(r"([\\\]\[^-])", r"\\\1", firsts) + "])" if firsts else ""
    if not after:
        return _SEPARATOR + ahead + _combined_body(rules)
    relaxed = [r for r in rules if set(r.after) & set(after)]
    strict = [r for r in rules if r not in relaxed]
    excluded = "".join(ch for ch in "_.+-" if ch not in after).replace("-", "\\-")
    lead = "[^A-Za-z0-9" + excluded + "]"
    after_class = "[" + "".join(after).replace("-", "\\-") + "]"
    relaxed_parts = _grouped([p for r in relaxed for p in (r.prefilter or ["(?:" + _strip_value_group(r.body) + ")"])])
    if not strict:
        return lead + ahead + "(?:" + "|".join(relaxed_parts) + ")"
    return lead + ahead + "(?:" + "|".join(relaxed_parts) + "|(?<!" + after_class + ")" + _combined_body(strict) + ")"


_LITERAL_ANCHORS = {"lasv1.": 3, "q~": 1, "-us": 1}
"""Literals searched from a later, rarer character (``v1.`` behind ``las``, ``~`` behind ``q``,
``us`` behind ``-``): the engine stops at every occurrence of a literal's first character, and
``l``, ``q`` or ``-`` are far more common in text than ``v`` or ``~`` (and ``u`` is searched for
``auth`` anyway)."""


def _literal_pattern(literals: Iterable[str]) -> str:
    """One alternation of the lower-case literals, grouped by the character they are searched from.

    ``{"pass", "pwd", "key"}`` becomes ``p(?:ass|wd)|key``: every alternative starts with one
    plain character, so the engine skips in C to where the lower-cased text holds one of them, and
    each such position costs one comparison per group instead of one per literal.  Longest first
    within a group, so "private key" is one hit and not a "key" hit inside it; a gate that only
    ever ends a key name must end a word too ("token", not the "token" in "max_tokens").
    """
    groups: dict[str, list[str]] = {}
    for x in sorted(literals, key=len, reverse=True):
        at = _LITERAL_ANCHORS.get(x, 0)
        tail = re.escape(x[at + 1:]) + ("(?<=" + re.escape(x) + ")" if at else "")
        groups.setdefault(x[at], []).append(tail + ("(?![a-z_])" if x in _GATES_AT_END else ""))
    return "|".join(re.escape(first) + (tails[0] if len(tails) == 1 else "(?:" + "|".join(tails) + ")")
                    for first, tails in groups.items())


def resolve_overlaps(candidates: Iterable[tuple[int, int, int, str, bool]]) -> list[tuple[int, int, int, str, bool]]:
    """Keep non-overlapping candidates, longest first, ties to the lower priority number.

    Each candidate is ``(start, end, priority, type, reported)``; the result is sorted by start.
    Candidates that are not reported (allow-listed values) still occupy their span, so no piece
    of a trusted value is flagged.
    """
    ordered = sorted(set(candidates), key=lambda c: (c[0] - c[1], c[2], c[0]))
    starts: list[int] = []
    kept: list[tuple[int, int, int, str, bool]] = []
    for cand in ordered:
        s, e = cand[0], cand[1]
        i = bisect_left(starts, s)
        if i > 0 and kept[i - 1][1] > s:
            continue
        if i < len(kept) and kept[i][0] < e:
            continue
        starts.insert(i, s)
        kept.insert(i, cand)
    return kept


# ---------------------------------------------------------------------------------------------
# the detector
# ---------------------------------------------------------------------------------------------


class _Compiled:
    """A rule as the scanner calls it at a hit.

    Its regex is compiled on first use: a clean text never reaches a rule (the combined scan and
    the literal search reject it), so most rules of a session are never compiled at all.
    """

    __slots__ = ("priority", "type", "has_value_group", "validate", "_source", "_regex")

    def __init__(self, priority: int, type: str, source: str | re.Pattern[str], has_value_group: bool,
                 validate: Callable[[str], Any] | None) -> None:
        self.priority = priority
        self.type = type
        self.has_value_group = has_value_group
        self.validate = validate
        self._source = source
        self._regex: re.Pattern[str] | None = source if isinstance(source, re.Pattern) else None

    @property
    def regex(self) -> re.Pattern[str]:
        """The rule's own regex (compiled now if this is its first use; a race compiles it twice, harmlessly)."""
        regex = self._regex
        if regex is None:
            regex = self._regex = re.compile(self._source, _FLAGS)
        return regex


class PiiDetector:
    """Finds PII values in text in a single pass of one combined regex, then validates them.

    ``extra_patterns`` maps new type names to patterns (a string or a compiled regex; a group
    named ``value``, if any, is the reported value), ``allow`` lists exact values that are never
    reported, and ``types`` restricts detection to these type names (built-in or extra).
    Instances are immutable after construction, hence safe to share between threads.
    """

    def __init__(
        self,
        extra_patterns: Mapping[str, str | re.Pattern[str]] | None = None,
        allow: Iterable[str] = (),
        types: Iterable[str] | None = None,
    ) -> None:
        extra = dict(extra_patterns or {})
        wanted = None if types is None else {str(t.value if isinstance(t, PiiType) else t) for t in types}
        if wanted is not None:
            unknown = wanted - _BUILTIN_TYPES - set(extra)
            if unknown:
                raise ValueError(f"unknown PII types: {sorted(unknown)}")
        compiled: dict[str, re.Pattern[str]] = {}
        for name, pattern in extra.items():
            if not name or not isinstance(name, str):
                raise ValueError(f"extra pattern names must be non-empty strings, got {name!r}")
            try:
                compiled[name] = pattern if isinstance(pattern, re.Pattern) else re.compile(pattern)
            except (re.error, TypeError) as exc:
                raise ValueError(f"extra pattern {name!r} is not a regular expression ({pattern!r}): {exc}") from None
        self._allow = frozenset(allow)
        rules = [r for r in RULES if wanted is None or r.type in wanted]
        self._rules = tuple(rules)
        self._compiled = tuple(
            _Compiled(i, r.type, r.regex, "(?P<v>" in r.body, r.validate)
            for i, r in enumerate(rules)
        )
        scanned = [r for r in rules if not r.needle and not r.anchored and not r.word_before]
        in_scan = {id(r) for r in scanned}  # by identity: comparing rules field by field is quadratic
        self._first = _first_char_table([r if id(r) in in_scan else r._replace(first="") for r in rules])
        self._anchored = tuple(self._compiled[i] for i, r in enumerate(rules) if r.anchored)
        self._worded = tuple((r.word_before[0], frozenset(_expand_class(r.word_before[1])), self._compiled[i])
                             for i, r in enumerate(rules) if r.word_before)
        self._needles = tuple(((r.needle,) if isinstance(r.needle, str) else tuple(r.needle), self._compiled[i])
                              for i, r in enumerate(rules) if r.needle)
        self._needle_strings = tuple(n for needles, _ in self._needles for n in needles)
        literals = {n.lower() for n in self._needle_strings} - _AFTER_GATE | {lit for lit, _, _ in self._worded} - _AFTER_AT
        if self._anchored:
            literals |= set(_KEY_GATES)
        self._literals = re.compile(_literal_pattern(literals)) if literals else None
        self._literal_at = {x[_LITERAL_ANCHORS[x]:]: (x, _LITERAL_ANCHORS[x]) for x in literals if x in _LITERAL_ANCHORS}
        # One search finds a candidate anywhere, the start of the text included: it runs over the
        # text behind one space (a separator), so no second regex is matched at position 0.
        self._scan = re.compile(_scan_pattern(scanned), _FLAGS) if scanned else None
        self._extra = tuple(
            _Compiled(len(rules) + j, name, p, "value" in p.groupindex, None)
            for j, (name, p) in enumerate(compiled.items())
            if wanted is None or name in wanted
        )
        self._extra_scan = self._combine_extra(self._extra)
        seen: dict[str, None] = {}
        for c in self._compiled + self._extra:
            seen.setdefault(c.type, None)
        self._types = tuple(seen)

    @staticmethod
    def _combine_extra(extra: Sequence[_Compiled]) -> re.Pattern[str] | None:
        """One alternation of the extra patterns (a pre-filter), or None when they cannot combine."""
        if not extra:
            return None
        parts = []
        for c in extra:
            src = c.regex.pattern
            if not isinstance(src, str) or re.search(_BACKREF, src):
                return None  # group numbers would change meaning once combined
            letters = "".join(ch for flag, ch in _SCOPED_FLAGS if c.regex.flags & flag)
            src = re.sub(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>", "(?:", src)
            parts.append(f"(?{letters}:{src})" if letters else f"(?:{src})")
        try:
            return re.compile("|".join(parts))
        except re.error:
            return None  # e.g. back-references or global inline flags: scan them one by one

    # -- public API ------------------------------------------------------------------------

    @property
    def types(self) -> tuple[str, ...]:
        """The type names this detector reports, built-in ones first."""
        return self._types

    @property
    def allow(self) -> frozenset[str]:
        """Exact values that are never reported."""
        return self._allow

    def detect(self, text: str) -> list[Detection]:
        """All PII values in ``text``, non-overlapping, sorted by start offset."""
        if not text:
            return []
        cands = self._candidates(text)
        if not cands:
            return []
        return [Detection(t, s, e, text[s:e]) for s, e, _, t, ok in resolve_overlaps(cands) if ok]

    def contains_pii(self, text: str) -> bool:
        """Whether ``text`` holds at least one reportable value.

        When it does not, this costs the combined scan (of the text behind one space) and one
        literal search of the lower-cased text (needles, ``@``, key names); the rules behind them
        run only where those occur.
        """
        if not text:
            return False
        if self._extra:
            return bool(self.detect(text))
        scan, literals = self._scan, self._literals
        padded = " " + text
        m = scan.search(padded) if scan is not None else None
        if m is None and (literals is None or literals.search(text.lower()) is None):
            return False  # the common case: one scan, one literal search
        if self._allow:
            return bool(self.detect(text))
        if m is not None:
            # Reportable candidates are reported whatever they overlap (no allow-listed value can
            # hide them), so the first one answers; the scan goes on from where it hit.
            cands: list[tuple[int, int, int, str, bool]] = []
            search = scan.search  # type: ignore[union-attr]
            while m is not None:
                self._collect(text, m.start(), cands)  # padded[i + 1] is text[i]
                if cands:
                    return True
                m = search(padded, m.start() + 1)
        # Nothing for the combined scan: only the needle, word and key-name rules can still report.
        if literals is None or literals.search(text.lower()) is None:
            return False
        cands = []
        self._collect_literal_rules(text, self._literal_hits(text), cands)
        return bool(cands)

    def scan_json(self, obj: Any) -> list[tuple[JsonPath, Detection]]:
        """Detections in every string value of a nested dict / list / tuple, with their paths.

        Keys are not scanned.  A string under a key that names a secret (``password``,
        ``api_key``, ``access_token``, ...) is reported whole as ``api_key`` when it looks like one.
        """
        out: list[tuple[JsonPath, Detection]] = []
        for path, value in iter_strings(obj):
            key = path[-1] if path else None
            whole = self.secret_under_key(key, value)
            if whole is not None:
                out.append((path, whole))
                continue
            out.extend((path, d) for d in self.detect(value))
        return out

    def names_a_secret(self, key: str) -> bool:
        """Whether a field called ``key`` holds a secret (``password``, ``db.api_key``, ``Authorization`` ...)."""
        return PiiType.API_KEY.value in self._types and _key_names_a_secret(key)

    def secret_under_key(self, key: Any, value: str) -> Detection | None:
        """The whole ``value`` as an ``api_key`` detection when ``key`` names a secret, else None."""
        if (
            not isinstance(key, str)
            or PiiType.API_KEY.value not in self._types
            or not _key_names_a_secret(key)
            or len(value) < 6
            or value in self._allow
            or any(ch.isspace() for ch in value)
            or value.startswith(("[", "<", "{"))
            or not _valid_secret_value(value)
        ):
            return None
        return Detection(PiiType.API_KEY.value, 0, len(value), value)

    # -- scanning --------------------------------------------------------------------------

    def _candidates(self, text: str) -> list[tuple[int, int, int, str, bool]]:
        cands: list[tuple[int, int, int, str, bool]] = []
        if self._scan is not None:
            padded = " " + text  # a separator before the first character: one regex for every position
            search = self._scan.search
            pos = 0
            while True:
                m = search(padded, pos)
                if m is None:
                    break
                pos = m.start()  # the candidate starts at padded[pos + 1], which is text[pos]
                self._collect(text, pos, cands)
                pos += 1
        if self._literals is not None:
            self._collect_literal_rules(text, self._literal_hits(text), cands)
        if self._extra:
            self._collect_extra(text, cands)
        return cands

    def _literal_hits(self, text: str) -> dict[str, list[int]]:
        """Where the needles, the word literals and the key-name gates occur (any case), in one pass.

        The pass is one search of a literal alternation over the lower-cased text, which the regex
        engine runs with a first-character filter: one pass instead of one substring test each.
        """
        low = text.lower() if text.isascii() else text.encode("ascii", "replace").decode("ascii").lower()
        hits: dict[str, list[int]] = {}
        at = self._literal_at
        for m in self._literals.finditer(low):  # type: ignore[union-attr]
            found, start = m.group(), m.start()
            if found in at:  # searched from a later character: the literal starts before it
                found, back = at[found]
                start -= back
            hits.setdefault(found, []).append(start)
        if "private key" in hits:  # the "key" inside it is a key-name gate too
            hits.setdefault("key", []).extend(i + 8 for i in hits["private key"])
        return hits

    def _collect_literal_rules(self, text: str, hits: dict[str, list[int]], out: list[tuple[int, int, int, str, bool]]) -> None:
        if not hits:
            return
        gated = any(g in hits for g in _KEY_GATES)
        for needles, c in self._needles:
            if any(n.lower() in hits or (gated and n in _AFTER_GATE and n in text) for n in needles):
                self._search_each(c, text, out)
        for literal, chars, c in self._worded:
            if literal in _AFTER_AT:
                positions: Any = _find_all(text, literal) if "@" in hits else ()
            else:
                positions = hits.get(literal, ())
            for i in positions:
                j = i
                while j > 0 and text[j - 1] in chars:
                    j -= 1
                self._match_at(c, text, j, out)
        if self._anchored:
            low = None
            found: set[int] = set()
            for gate, names in _KEY_OFFSETS:
                for i in hits.get(gate, ()):
                    if low is None:
                        low = text.lower() if text.isascii() else text.encode("ascii", "replace").decode("ascii").lower()
                    for off, name, anywhere in names:
                        p = i - off
                        if p >= 0 and low.startswith(name, p):
                            end = p + len(name)
                            # "max_tokens=" holds "token" but does not end with it: no rule can match
                            if anywhere or end >= len(low) or low[end] in _KEY_END:
                                found.add(p)
            for p in sorted(found):
                for c in self._anchored:
                    self._match_at(c, text, p, out)

    def _add(self, c: _Compiled, m: re.Match[str], text: str, out: list[tuple[int, int, int, str, bool]]) -> None:
        """The candidate a rule's match yields, once its validator accepts it (perhaps shortened)."""
        s, e = m.span("v") if c.has_value_group else m.span()
        end = _checked_end(c.validate, text, s, e)
        if end is not None:
            out.append((s, end, c.priority, c.type, text[s:end] not in self._allow))

    def _match_at(self, c: _Compiled, text: str, p: int, out: list[tuple[int, int, int, str, bool]]) -> None:
        m = c.regex.match(text, p)
        if m is not None:
            self._add(c, m, text, out)

    def _search_each(self, c: _Compiled, text: str, out: list[tuple[int, int, int, str, bool]]) -> None:
        """One rule searched over the whole text (non-overlapping matches)."""
        for m in c.regex.finditer(text):
            self._add(c, m, text, out)

    def _collect(self, text: str, p: int, out: list[tuple[int, int, int, str, bool]]) -> None:
        """Run, anchored at ``p``, every rule that can start with the character found there."""
        for i in self._first.get(text[p], ()):
            c = self._compiled[i]
            m = c.regex.match(text, p)
            if m is not None:
                self._add(c, m, text, out)

    def _collect_extra(self, text: str, out: list[tuple[int, int, int, str, bool]]) -> None:
        if self._extra_scan is not None:
            search = self._extra_scan.search
            pos, n = 0, len(text)
            while pos <= n:
                m = search(text, pos)
                if m is None:
                    break
                p = m.start()
                for c in self._extra:
                    self._add_extra(c, c.regex.match(text, p), text, out)
                pos = p + 1
            return
        self._search_each_extra(text, out)

    def _search_each_extra(self, text: str, out: list[tuple[int, int, int, str, bool]]) -> None:
        """Extra patterns one after another (no combined pre-filter)."""
        for c in self._extra:
            pos, n = 0, len(text)
            while pos <= n:
                m = c.regex.search(text, pos)
                if m is None:
                    break
                self._add_extra(c, m, text, out)
                pos = m.start() + 1

    def _add_extra(self, c: _Compiled, m: re.Match[str] | None, text: str,
                   out: list[tuple[int, int, int, str, bool]]) -> None:
        if m is None:
            return
        s, e = m.span("value") if c.has_value_group else m.span()
        if s < 0 or e <= s:
            return  # empty matches are no value
        out.append((s, e, c.priority, c.type, text[s:e] not in self._allow))

    def _sequential_candidates(self, text: str) -> list[tuple[int, int, int, str, bool]]:
        """Reference implementation: each rule's regex searched at every position, one after another.

        Slow (one pass per rule); kept for tests and the benchmark, which compare it with the
        single pass.
        """
        cands: list[tuple[int, int, int, str, bool]] = []
        needled = {id(c) for _, c in self._needles} | {id(c) for c in self._anchored}  # searched below
        for _, c in self._needles:
            self._search_each(c, text, cands)
        for c in self._anchored:  # searched at every position, not only at key names
            pos, n = 0, len(text)
            while pos <= n:
                m = c.regex.search(text, pos)
                if m is None:
                    break
                pos = m.start() + 1
                self._add(c, m, text, cands)
        for c in self._compiled:
            if id(c) in needled:
                continue
            pos, n = 0, len(text)
            while pos <= n:
                m = c.regex.search(text, pos)
                if m is None:
                    break
                pos = m.start() + 1
                self._add(c, m, text, cands)
        if self._extra:
            self._search_each_extra(text, cands)
        return cands


_SECRET_KEY_NAMES = _SECRET_KEYS + ("authorization", "cookie", "credentials", "connection_string", "connectionstring")
"""Field names (attribute keys, JSON keys) whose string value is a secret whatever its shape."""

_SECRET_KEY_SUFFIXES = tuple(k.lower() for k in _SECRET_KEY_NAMES)


def _key_names_a_secret(key: str) -> bool:
    """Whether the field name ``key`` ends with a secret's name, in any case (``db.API_KEY``).

    One ``str.endswith`` of the lower-cased name: no regex to compile when the module loads, and
    no search from every position of the name at each attribute."""
    return key.lower().endswith(_SECRET_KEY_SUFFIXES)


def iter_strings(obj: Any, path: JsonPath = ()) -> Iterator[tuple[JsonPath, str]]:
    """Every string value of a nested dict / list / tuple with its path (keys are not yielded)."""
    if isinstance(obj, str):
        yield path, obj
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from iter_strings(v, path + (k,))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from iter_strings(v, path + (i,))
