"""Seeded generators of PII values, near-misses and mixed texts with their exact expected detections.

Reusable by any test or benchmark: every function takes a ``random.Random`` (or a seed) so the same
seed always yields the same corpus.  Values are realistic but synthetic (Luhn-valid test-range
cards, SSNs in valid areas, RFC 5737 / 3849 style addresses, keys of the right shape).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import random
import string
from dataclasses import dataclass
from typing import Callable, Iterator

__all__ = [
    "Sample",
    "GENERATORS",
    "CONTEXTS",
    "luhn_complete",
    "samples",
    "near_misses",
    "filler_line",
    "mixed_text",
]

ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits


@dataclass(frozen=True)
class Sample:
    """A PII value of ``type`` written inside ``template`` (``{v}`` marks the value)."""

    type: str
    value: str
    template: str = "{v}"

    @property
    def text(self) -> str:
        """The value in its template, e.g. ``api_key=<value>``."""
        return self.template.format(v=self.value)

    @property
    def offset(self) -> int:
        """Where the value starts inside :attr:`text`."""
        return self.template.index("{v}")


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _with_digit(rng: random.Random, alphabet: str, n: int) -> str:
    """Random string that holds at least one digit and one letter (as real keys do)."""
    while True:
        s = _rand(rng, alphabet, n)
        if any(c.isdigit() for c in s) and any(c.isalpha() for c in s):
            return s


# -- emails ----------------------------------------------------------------------------------

_FIRST = ["john", "maria", "wei", "aisha", "olga", "pedro", "li", "fatima", "noah", "emma", "raj", "yuki"]
_LAST = ["smith", "garcia", "chen", "khan", "ivanova", "silva", "nguyen", "okafor", "muller", "tanaka"]
_DOMAINS = ["example.com", "example.org", "mail.example.net", "corp.example.co.uk", "acme-inc.io",
            "sub.domain.example.dev", "uni.example.edu"]


def email(rng: random.Random) -> str:
    """A plausible address: first.last, first_last+tag, initials with digits, ..."""
    f, l = rng.choice(_FIRST), rng.choice(_LAST)
    local = rng.choice([f"{f}.{l}", f"{f}_{l}", f"{f}{rng.randint(1, 999)}", f"{f[0]}{l}",
                        f"{f}.{l}+{rng.choice(['news', 'spam', 'billing'])}", f"{f}-{l}"])
    return f"{local}@{rng.choice(_DOMAINS)}"


# -- phones ----------------------------------------------------------------------------------


def phone(rng: random.Random) -> str:
    """A NANP number in one of its usual spellings, or an international E.164 number."""
    a = f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}"
    e = f"{rng.randint(2, 9)}{rng.randint(0, 99):02d}"
    n = f"{rng.randint(0, 9999):04d}"
    forms = [
        f"({a}) {e}-{n}", f"({a}){e}-{n}", f"{a}-{e}-{n}", f"{a}.{e}.{n}", f"{a} {e} {n}",
        f"+1 {a} {e} {n}", f"+1-{a}-{e}-{n}", f"1-{a}-{e}-{n}", f"+1 ({a}) {e}-{n}",
        f"+44 20 {rng.randint(7000, 7999)} {rng.randint(0, 9999):04d}",
        f"+33 {rng.randint(1, 9)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(10, 99)}",
        f"+49 30 {rng.randint(10000000, 99999999)}",
        f"+81 3-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        f"+91 {rng.randint(70000, 99999)} {rng.randint(10000, 99999)}",
        f"+61 2 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
        f"+86{rng.randint(13000000000, 13999999999)}",
    ]
    return rng.choice(forms)


# -- SSNs ------------------------------------------------------------------------------------


def ssn(rng: random.Random) -> str:
    """A US SSN in a valid area (not 000, 666, 9xx), group 01-99 and serial 0001-9999."""
    area = rng.choice([x for x in range(1, 900) if x != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


# -- cards -----------------------------------------------------------------------------------


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    """``prefix`` padded with random digits to ``length`` with a correct Luhn check digit."""
    body = prefix + _rand(rng, string.digits, length - len(prefix) - 1)
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # these digits are doubled once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


_NETWORKS: list[tuple[Callable[[random.Random], str], list[int]]] = [
    (lambda r: "4", [13, 16, 19]),  # Visa
    (lambda r: str(r.randint(51, 55)), [16]),  # Mastercard
    (lambda r: str(r.randint(2221, 2720)), [16]),  # Mastercard 2-series
    (lambda r: r.choice(["34", "37"]), [15]),  # Amex
    (lambda r: r.choice(["6011", "65", "644"]), [16, 19]),  # Discover
    (lambda r: r.choice(["36", "38", "300"]), [14]),  # Diners Club
    (lambda r: str(r.randint(3528, 3589)), [16]),  # JCB
    (lambda r: "62", [16, 19]),  # UnionPay
]


def card_digits(rng: random.Random) -> str:
    """Luhn-valid digits of a card from one of several networks."""
    prefix_of, lengths = rng.choice(_NETWORKS)
    return luhn_complete(prefix_of(rng), rng.choice(lengths), rng)


def format_card(digits: str, rng: random.Random) -> str:
    """The digits plain, or grouped as printed on the card with spaces or dashes."""
    sep = rng.choice(["", " ", "-"])
    if not sep:
        return digits
    if len(digits) == 15 or len(digits) == 14:
        return sep.join([digits[:4], digits[4:10], digits[10:]])
    if len(digits) in (16, 19):
        return sep.join(digits[i:i + 4] for i in range(0, len(digits), 4))
    return digits


def credit_card(rng: random.Random) -> str:
    """A Luhn-valid card number, plain or grouped."""
    return format_card(card_digits(rng), rng)


# -- IP addresses ----------------------------------------------------------------------------


def ip_address(rng: random.Random) -> str:
    """An IPv4 address (any octets 0-255) or an IPv6 address, full or compressed."""
    kind = rng.random()
    if kind < 0.7:  # loopback (127/8) and documentation ranges are nobody's address: not PII
        first = rng.choice([n for n in range(1, 256) if n not in (127, 192, 198, 203)] + [192] * 3)
        return ".".join([str(first)] + [str(rng.randint(0, 255)) for _ in range(3)])
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    if kind < 0.85:
        return ":".join(groups)
    return rng.choice(["2001:db8::", "fe80::", "2001:0db8:85a3::"]) + ":".join(
        f"{rng.randint(0x1000, 0xFFFF):x}" for _ in range(rng.randint(1, 3)))


# -- API keys and tokens ---------------------------------------------------------------------


def provider_key(rng: random.Random) -> str:
    """A key in a well-known provider format (OpenAI, GitHub, AWS, Slack, Stripe, Google)."""
    kind = rng.randrange(11)
    if kind == 0:
        return "sk-" + _with_digit(rng, ALNUM, 48)
    if kind == 1:
        return "sk-proj-" + _with_digit(rng, ALNUM + "_-", 56)
    if kind in (2, 3, 4):
        return rng.choice(["ghp_", "gho_", "ghs_"]) + _with_digit(rng, ALNUM, 36)
    if kind == 5:
        return "github_pat_" + _with_digit(rng, ALNUM, 22) + "_" + _with_digit(rng, ALNUM, 59)
    if kind == 6:
        return rng.choice(["AKIA", "ASIA"]) + _with_digit(rng, UPPER_ALNUM, 16)
    if kind == 7:
        return (f"xox{rng.choice('bpars')}-{rng.randint(10**11, 10**12 - 1)}-"
                f"{rng.randint(10**11, 10**12 - 1)}-{_with_digit(rng, ALNUM, 24)}")
    if kind == 8:
        return rng.choice(["sk_live_", "rk_live_", "sk_test_"]) + _with_digit(rng, ALNUM, 24)
    return "AIza" + _with_digit(rng, ALNUM + "_-", 35)


_SECRET_TEMPLATES = ["api_key={v}", "OPENAI_API_KEY={v}", "\"password\": \"{v}\"", "client_secret: {v}",
                     "X-Api-Key: {v}", "DB_PASSWORD={v}", "access_token={v}", "apiKey: '{v}'",
                     "--password {v}".replace(" {v}", "={v}"), "aws_secret_access_key = {v}"]


def secret_assignment(rng: random.Random) -> Sample:
    """A generic secret value after a key that names it (``password=...``, ``"api_key": "..."``)."""
    value = rng.choice(string.ascii_letters) + _with_digit(rng, ALNUM + "_", rng.randint(8, 31))
    return Sample("api_key", value, rng.choice(_SECRET_TEMPLATES))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(rng: random.Random) -> str:
    """A compact JWS: base64url JSON header and payload, and a random signature."""
    header = {"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}
    payload = {"sub": str(rng.randint(1, 10**9)), "name": rng.choice(_FIRST), "iat": rng.randint(1_600_000_000, 1_800_000_000)}
    sig = _b64(bytes(rng.randrange(256) for _ in range(rng.choice([32, 64]))))
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}.{sig}"


def bearer_token(rng: random.Random) -> str:
    """An opaque OAuth access token as sent after ``Bearer``."""
    return _with_digit(rng, ALNUM + "-._~", rng.randint(20, 48)).strip(".") + "x1"


def private_key(rng: random.Random) -> str:
    """A PEM private key block (RSA, EC, OpenSSH or PKCS#8) with a random base64 body."""
    label = rng.choice(["RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY"])
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(rng.choice([48, 96, 180])))).decode()
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])


_IBAN_FORMATS = {"DE": "8n10n", "GB": "4a14n", "FR": "10n11c2n", "NL": "4a10n", "ES": "20n", "IT": "1a10n12c",
                 "BE": "12n", "CH": "5n12c", "AT": "16n", "PL": "24n", "SE": "20n", "IE": "4a14n"}


def iban(rng: random.Random) -> str:
    """An IBAN with correct mod-97 check digits, plain or in groups of four."""
    country = rng.choice(sorted(_IBAN_FORMATS))
    bban = ""
    for count, kind in re.findall(r"(\d+)([nac])", _IBAN_FORMATS[country]):
        chars = {"n": string.digits, "a": string.ascii_uppercase, "c": UPPER_ALNUM}[kind]
        bban += _rand(rng, chars, int(count))
    check = 98 - int("".join(str(int(ch, 36)) for ch in bban + country + "00")) % 97
    value = f"{country}{check:02d}{bban}"
    return " ".join(value[i:i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.4 else value


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _b58check(payload: bytes) -> str:
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n, out = int.from_bytes(raw, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def _bech32(hrp: str, witver: int, program: bytes) -> str:
    acc, bits, data = 0, 0, [witver]
    for b in program:
        acc, bits = (acc << 8) | b, bits + 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)

    def polymod(values: list[int]) -> int:
        chk = 1
        for v in values:
            top = chk >> 25
            chk = (chk & 0x1FFFFFF) << 5 ^ v
            for i in range(5):
                chk ^= gen[i] if (top >> i) & 1 else 0
        return chk

    const = 1 if witver == 0 else 0x2BC830A3
    mod = polymod([ord(x) >> 5 for x in hrp] + [0] + [ord(x) & 31 for x in hrp] + data + [0] * 6) ^ const
    return hrp + "1" + "".join(_BECH32[d] for d in data + [(mod >> 5 * (5 - i)) & 31 for i in range(6)])


def crypto_wallet(rng: random.Random) -> str:
    """A Bitcoin address (P2PKH, P2SH: base58check; SegWit: bech32/bech32m) or an Ethereum address."""
    kind = rng.randrange(4)
    if kind < 2:
        return _b58check(bytes([0 if kind == 0 else 5]) + bytes(rng.randrange(256) for _ in range(20)))
    if kind == 2:
        witver = rng.choice([0, 1])
        return _bech32("bc", witver, bytes(rng.randrange(256) for _ in range(20 if witver == 0 else 32)))
    return "0x" + _rand(rng, "0123456789abcdefABCDEF", 40)


# -- all generators --------------------------------------------------------------------------

GENERATORS: dict[str, Callable[[random.Random], Sample]] = {
    "email": lambda r: Sample("email", email(r)),
    "phone_number": lambda r: Sample("phone_number", phone(r)),
    "ssn": lambda r: Sample("ssn", ssn(r)),
    "credit_card": lambda r: Sample("credit_card", credit_card(r)),
    "ip_address": lambda r: Sample("ip_address", ip_address(r)),
    "api_key": lambda r: Sample("api_key", provider_key(r)) if r.random() < 0.6 else secret_assignment(r),
    "auth_token": lambda r: (Sample("auth_token", jwt(r)) if r.random() < 0.5
                             else Sample("auth_token", bearer_token(r), "Authorization: Bearer {v}")),
    "private_key": lambda r: Sample("private_key", private_key(r)),
    "iban": lambda r: Sample("iban", iban(r)),
    "crypto_wallet": lambda r: Sample("crypto_wallet", crypto_wallet(r)),
}
"""One generator per PII type; each returns a :class:`Sample` (value, and the text around it)."""

CONTEXTS: dict[str, list[str]] = {
    "default": ["{s}", "({s})", "\"{s}\"", "<{s}>", "{s},", "{s}.", "'{s}'", "[{s}]", "={s}"],
    "phone": ["({s})", "\"{s}\"", "<{s}>", "{s},", "{s}.", "'{s}'", "[{s}]", "={s};"],
    # values of assignments and bearer tokens run to the next space, so keep them space-delimited
    "template": ["{s}"],
}


def samples(seed: int | random.Random, n_per_type: int) -> list[Sample]:
    """``n_per_type`` valid samples of every type, in a deterministic order."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    out = []
    for _ in range(n_per_type):
        for gen in GENERATORS.values():
            out.append(gen(rng))
    return out


# -- near misses -----------------------------------------------------------------------------


def near_misses(seed: int | random.Random, n: int = 20) -> list[str]:
    """Strings that look like PII but must not be flagged, fixed ones first, then ``n`` per kind."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    fixed = [
        "000-12-3456", "666-12-3456", "900-12-3456", "999-99-9999", "123-00-4567", "123-45-0000",
        "999.1.1.1", "256.1.1.1", "1.2.3", "1.2.3.4.5", "10.0.0", "v1.2.3", "2.31.0", "3.11.7",
        "1.0.0-beta.1", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7",
        "550e8400-e29b-41d4-a716-446655440000", "2024-01-15T10:30:00.123Z", "2024-01-15 10:30:00",
        "12:30:45", "00:1a:2b:3c:4d:5e", "1718000000", "1718000000123", "1718000000123456789",
        "5551234567", "15551234567", "1234 ms", "12.5s", "1048576 bytes", "get_customer_records",
        "sk-learn-classification-model", "Bearer authentication is a scheme", "max_tokens=1000",
        "token_count: 42", "password: ********", "password=null", "api_key=${OPENAI_API_KEY}",
        "a[1::2]", "std::vector", "4111 1111 1111 1112", "4111111111111112", "12345", "3.14159265358979",
        "ghp_short", "AKIA1234", "user@localhost", "@mention", "x@y",
    ]
    out = list(fixed)
    for _ in range(n):
        good = card_digits(rng)
        bad = good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)
        out.append(format_card(bad, rng))  # Luhn-invalid
        out.append(f"{rng.choice(['000', '666', str(rng.randint(900, 999))])}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}")
        out.append(f"{rng.randint(1, 899):03d}-00-{rng.randint(1, 9999):04d}")
        out.append(f"{rng.randint(256, 999)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}")
        out.append(f"{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 200)}")  # semver
        out.append(_rand(rng, "0123456789abcdef", 32))  # trace id
        out.append(_rand(rng, "0123456789abcdef", 16))  # span id
        h = _rand(rng, "0123456789abcdef", 32)
        out.append(f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}")  # UUID v4
        out.append(f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                   f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z")
        out.append(str(rng.randint(10**9, 10**10 - 1)))  # plain long integer
    return out


# -- mixed texts -----------------------------------------------------------------------------

_WORDS = ("the agent called tool to fetch records from server and returned result with status code in "
          "seconds after retry because cache was cold while workspace sandbox executed python script "
          "that filtered rows by region then summarized totals for report generation pipeline step "
          "skill loaded discovery listed servers schema generated client wrapper").split()
_TOOLS = ["get_customer_records", "search_documents", "list_servers", "send_email_draft", "update_ticket"]


def filler_line(rng: random.Random) -> str:
    """One line of PII-free text: prose, a structured log line or a JSON event."""
    kind = rng.random()
    if kind < 0.4:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 20))]
        return " ".join(words).capitalize() + rng.choice([".", "!", "?", ":"])
    if kind < 0.75:
        return (f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z "
                f"{rng.choice(['INFO', 'DEBUG', 'WARN'])} trace_id={_rand(rng, '0123456789abcdef', 32)} "
                f"span_id={_rand(rng, '0123456789abcdef', 16)} tool={rng.choice(_TOOLS)} "
                f"duration_ms={rng.randint(1, 90000)} bytes={rng.randint(0, 10**8)} "
                f"version={rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 99)} max_tokens={rng.randint(1, 4096)}")
    h = _rand(rng, "0123456789abcdef", 32)
    return json.dumps({
        "event": rng.choice(["tool_call", "tool_result", "skill_loaded"]),
        "tool": rng.choice(_TOOLS),
        "request_id": f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}",
        "latency_ms": round(rng.uniform(0.1, 5000), 2),
        "rows": rng.randint(0, 100000),
        "ok": rng.random() < 0.9,
    })


def _place(rng: random.Random, sample: Sample) -> tuple[str, int]:
    """The sample in a random punctuation context, and where its value starts in that string."""
    if sample.template != "{v}":
        return sample.text, sample.offset
    # a phone number followed by " 1234" would read as one longer number: close it with punctuation
    ctx = rng.choice(CONTEXTS["default"] if sample.type != "phone_number" else CONTEXTS["phone"])
    return ctx.format(s=sample.value), ctx.index("{s}")


def mixed_text(seed: int | random.Random, size: int, pii_fraction: float = 0.01
               ) -> tuple[str, list[tuple[str, int, int, str]]]:
    """About ``size`` characters of log-like text where ``pii_fraction`` of characters are PII.

    Returns the text and the exact expected detections as ``(type, start, end, value)`` tuples,
    sorted by start.
    """
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    gens = list(GENERATORS.values())
    parts: list[str] = []
    expected: list[tuple[str, int, int, str]] = []
    length = 0
    pii = 0
    while length < size:
        line = filler_line(rng)
        if pii < pii_fraction * (length + len(line)):
            sample = rng.choice(gens)(rng)
            placed, off = _place(rng, sample)
            words = line.split(" ")
            cut = rng.randint(1, len(words))
            head = " ".join(words[:cut]) + " "
            start = length + len(head) + off
            expected.append((sample.type, start, start + len(sample.value), sample.value))
            line = head + placed + " " + " ".join(words[cut:])
            pii += len(sample.value)
        parts.append(line)
        parts.append("\n")
        length += len(line) + 1
    return "".join(parts), expected


def iter_values(seed: int, n_per_type: int) -> Iterator[tuple[str, str]]:
    """``(type, value)`` pairs of :func:`samples`, for tests that only need the values."""
    for s in samples(seed, n_per_type):
        yield s.type, s.value
