"""The PII and secrets corpus we did not write: public test suites plus generated variants, tagged must/should.

Three parts:

* ``tests/corpora/public_corpus.json`` -- values copied from the unit tests of detect-secrets,
  presidio-analyzer and gitleaks (each record names its repository, commit and file; rebuilt by
  ``tests/corpora/extract_public.py``).  Positive examples become sensitive values; presidio's
  negative examples (an IBAN with a wrong check digit, a Luhn-invalid card ...) become clean
  near-misses.  detect-secrets' negatives are not used as clean values: a negative of one plugin
  is often another secret (its GitLab tests list a GitHub token as "not GitLab").
* generated sensitive variants: each kind the issue names, in the shapes it names (national phone
  formats, undashed SSNs in context, credential URLs with dotless and IP hosts, unsigned JWTs,
  PEM keys inside JSON strings, keys after a hyphen ...), from a seeded ``random.Random``.
* generated clean values: what telemetry is full of and must keep -- trace and span ids, UUIDs,
  hex digests, timestamps, versions, user agents, loopback and documentation addresses, git
  remotes, SSH fingerprints, signed numbers, durations, tool names, and source code that names a
  secret without holding one.

Tiers: ``must`` kinds are those the built-in rules claim (the ten :class:`PiiType` kinds and the
provider formats listed in the README); ``should`` kinds are other providers' formats and free
secrets known only by their context.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from pathlib import Path

from tests import pii_corpus as gen

__all__ = ["Entry", "public_entries", "generated_sensitive", "generated_clean", "sensitive", "clean"]

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
PUBLIC_JSON = Path(__file__).parent / "corpora" / "public_corpus.json"

_NOBODYS = ("::", "::1", "::ffff:127.0.0.1", "::ffff:0.0.0.0", "::ffff:192.0.2.1", "::1/128", "::/128", "::/0", "fe80::/10")
_NOBODYS_PREFIXES = ("192.0.2.", "198.51.100.", "203.0.113.", "127.", "0.0.0.0", "2001:db8:1::192.0.2", "64:ff9b::192.0.2", "64:ff9b::198.51.100")
"""Presidio positives that are loopback, unspecified or documentation addresses: nobody's address,
which the clean corpus keeps (``127.0.0.1:4317`` must stay readable)."""


@dataclass(frozen=True)
class Entry:
    """One corpus value: ``text`` is what is logged, ``value`` the part that must not leave (sensitive)."""

    kind: str
    tier: str  # "must" / "should" for sensitive values, "clean" otherwise
    text: str
    value: str
    source: str

    @property
    def sensitive(self) -> bool:
        return self.tier != "clean"


_NOT_CLEAN = ("440-600-5124",)
"""Negatives of one recognizer that hold another kind of PII (a phone number in an IBAN test)."""


def public_entries() -> list[Entry]:
    out = []
    for r in json.loads(PUBLIC_JSON.read_text()):
        if not r["sensitive"] and any(v in r["text"] for v in _NOT_CLEAN):
            continue
        if not r["sensitive"]:
            out.append(Entry(f"{r['kind']}_near_miss", "clean", r["text"], r["text"], r["source"]))
        elif r["kind"] == "ip_address" and (r.get("value") in _NOBODYS or r.get("value", "").startswith(_NOBODYS_PREFIXES)):
            out.append(Entry("ip_nobodys_address", "clean", r["value"], r["value"], r["source"]))
        elif r.get("value"):
            out.append(Entry(r["kind"], r["tier"], r["text"], r["value"], r["source"]))
    return out


def _r(rng: random.Random, chars: str, n: int) -> str:
    return "".join(rng.choice(chars) for _ in range(n))


def _mixed(rng: random.Random, chars: str, n: int) -> str:
    """Random characters with at least one digit and one letter (real tokens mix them)."""
    s = list(_r(rng, chars, n))
    s[rng.randrange(n)] = rng.choice(string.digits)
    s[rng.randrange(n)] = rng.choice(string.ascii_letters)
    return "".join(s)


def _b64(rng: random.Random, n: int) -> str:
    return base64.b64encode(bytes(rng.randrange(256) for _ in range(n))).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# kind -> (tier, generator returning (text, value))
def _sensitive_kinds() -> dict[str, tuple[str, object]]:
    def phone_fr(r):
        v = "0" + str(r.randint(1, 7)) + " " + " ".join(f"{r.randint(0, 99):02d}" for _ in range(4))
        return f"rappeler le {v} demain", v

    def phone_de(r):
        v = f"(0{r.randint(30, 899)}) {r.randint(1000, 9999)}-{r.randint(1000, 9999)}"
        return f"Tel. {v}", v

    def phone_00(r):
        v = f"00{r.choice(['44', '49', '33', '39', '31'])} {r.randint(20, 99)} {r.randint(1000, 9999)} {r.randint(1000, 9999)}"
        return f"call {v}", v

    def phone_jp(r):
        v = f"0{r.randint(70, 90)}-{r.randint(1000, 9999)}-{r.randint(1000, 9999)}"
        return f"携帯 {v}", v

    def ssn_ctx(r):
        v = gen.ssn(r).replace("-", r.choice(["", " ", "."]))
        return f"{r.choice(['SSN', 'ssn', 'Social Security Number', 'SSN#'])}: {v}", v

    def ssn_hyphen(r):
        v = gen.ssn(r)
        return f"{r.choice(['customer', 'user', 'acct'])}-{v}", v

    def url_creds(r):
        pw = _mixed(r, ALNUM + "!_", r.randint(8, 20))
        host = r.choice(["localhost", "db", "postgres", "10.0.3.7", "172.17.0.2", "redis-master", "db.internal.example.com"])
        scheme = r.choice(["postgresql", "mysql", "redis", "amqp", "mongodb+srv", "https"])
        return f"connecting to {scheme}://admin:{pw}@{host}:5432/app", pw

    def jwt_unsigned(r):
        head = _b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        body = _b64url(json.dumps({"sub": str(r.randint(1, 10**8)), "role": "user"}).encode())
        v = f"{head}.{body}" + r.choice(["", "."])
        return f"token={v}" if r.random() < 0.5 else v, v

    def pem_json(r):
        pem = gen.private_key(r)
        return json.dumps({"type": "service_account", "private_key": pem + "\n"}), pem.split("\n")[1]

    def pem_text(r):
        pem = gen.private_key(r)
        return f"key loaded:\n{pem}\n", pem.split("\n")[1]

    def key_after_hyphen(r):
        v = "AKIA" + _r(r, string.ascii_uppercase + string.digits, 16)
        return f"skill-{v}", v

    def basic_header(r):
        v = base64.b64encode(f"{r.choice(['admin', 'svc', 'bob'])}:{_mixed(r, ALNUM, 12)}".encode()).decode()
        return f"Authorization: Basic {v}", v

    def auth_header(r):
        v = _mixed(r, ALNUM, r.randint(20, 40))
        return f"{r.choice(['Authorization', 'authorization', 'Proxy-Authorization'])}: {r.choice(['Token', 'Api-Key', 'Digest', 'SSWS'])} {v}", v

    def keyword(r):
        v = r.choice(ALNUM) + _mixed(r, ALNUM + "!@#%^*_-", r.randint(10, 24))
        t = r.choice(['password={v}', 'DB_PASSWORD="{v}"', '"api_key": "{v}"', "secret: {v}", "client_secret={v}",
                      "passphrase: '{v}'", "db_pass = {v}", "AccountKey={v}", "x-api-key: {v}", "REFRESH_TOKEN={v}"])
        return t.format(v=v), v

    def azure_storage(r):
        v = _b64(r, 64)
        return f"DefaultEndpointsProtocol=https;AccountName=acct{r.randint(1, 99)};AccountKey={v};EndpointSuffix=core.windows.net", v

    def azure_sas(r):
        v = _b64(r, 32).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
        return f"https://acct.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01&sig={v}", v

    def mailchimp(r):
        v = _r(r, HEX, 32) + f"-us{r.randint(1, 21)}"
        return f"MAILCHIMP={v}" if r.random() < 0.5 else v, v

    def discord(r):
        v = r.choice("MNO") + _mixed(r, ALNUM, 23) + "." + _r(r, ALNUM + "_-", 6) + "." + _mixed(r, ALNUM + "_-", 27)
        return f"client.login('{v}')", v

    def telegram(r):
        v = f"{r.randint(10**8, 10**10 - 1)}:AA{_mixed(r, ALNUM + '_-', 33)}"
        return f"https://api.telegram.org/bot{v}/sendMessage" if r.random() < 0.3 else f"BOT_TOKEN={v}", v

    def slack_webhook(r):
        v = f"https://hooks.slack.com/services/T{_r(r, string.ascii_uppercase + string.digits, 8)}/B{_r(r, string.ascii_uppercase + string.digits, 8)}/{_mixed(r, ALNUM, 24)}"
        return f"posting to {v}", v

    def slack_app(r):
        v = f"xapp-1-A{_r(r, string.ascii_uppercase + string.digits, 10)}-{r.randint(10**12, 10**13)}-{_r(r, HEX, 64)}"
        return v, v

    def eth(r):
        v = "0x" + _r(r, HEX + "ABCDEF", 40)
        return f"send to {v}", v

    simple = {
        "gitlab_pat": lambda r: "glpat-" + _mixed(r, ALNUM + "_-", 20),
        "gitlab_runner": lambda r: "GR1348941" + _mixed(r, ALNUM + "_-", 20),
        "huggingface_token": lambda r: "hf_" + _r(r, string.ascii_letters, 34),
        "sendgrid_key": lambda r: "SG." + _mixed(r, ALNUM + "_-", 22) + "." + _mixed(r, ALNUM + "_-", 43),
        "pypi_token": lambda r: "pypi-AgEIcHlwaS5vcmc" + _mixed(r, ALNUM + "_-", 70),
        "npm_token": lambda r: "npm_" + _mixed(r, ALNUM, 36),
        "stripe_webhook_secret": lambda r: "whsec_" + _mixed(r, ALNUM, 32),
        "stripe_key": lambda r: r.choice(["sk_live_", "rk_live_", "sk_test_"]) + _mixed(r, ALNUM, 24),
        "google_oauth_token": lambda r: "ya29." + _mixed(r, ALNUM + "_-", 60),
        "google_client_secret": lambda r: "GOCSPX-" + _mixed(r, ALNUM + "_-", 28),
        "google_api_key": lambda r: "AIza" + _mixed(r, ALNUM + "_-", 35),
        "openai_key": lambda r: "sk-proj-" + _mixed(r, ALNUM + "_-", 56),
        "github_token": lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + _mixed(r, ALNUM, 36),
        "aws_access_key": lambda r: r.choice(["AKIA", "ASIA"]) + _r(r, string.ascii_uppercase + string.digits, 16),
        "slack_token": lambda r: f"xox{r.choice('bpa')}-{r.randint(10**10, 10**12)}-{r.randint(10**10, 10**12)}-{_mixed(r, ALNUM, 24)}",
        "anthropic_key": lambda r: "sk-ant-api03-" + _mixed(r, ALNUM + "_-", 93) + "AA",
        "btc_address": lambda r: gen.crypto_wallet(r) if False else gen._b58check(bytes([r.choice([0, 5])]) + bytes(r.randrange(256) for _ in range(20))),
        "bech32_address": lambda r: gen._bech32("bc", 0, bytes(r.randrange(256) for _ in range(20))),
        "iban": gen.iban,
        "email": gen.email,
        "phone_number": gen.phone,
        "ssn": gen.ssn,
        "credit_card": gen.credit_card,
        "ip_address": gen.ip_address,
        "jwt": gen.jwt,
    }
    templates = ["{v}", "value {v} here", '{{"field": "{v}"}}', "k={v};", "[{v}]", "<{v}>", "'{v}'", "({v})"]

    def wrap(fn):
        def make(r):
            v = fn(r)
            return r.choice(templates).format(v=v), v
        return make

    kinds: dict[str, tuple[str, object]] = {k: ("must", wrap(f)) for k, f in simple.items()}
    kinds.update({
        "phone_national_fr": ("must", phone_fr), "phone_national_de": ("must", phone_de),
        "phone_intl_00": ("must", phone_00), "phone_national_jp": ("must", phone_jp),
        "ssn_undashed_in_context": ("must", ssn_ctx), "ssn_after_hyphen": ("must", ssn_hyphen),
        "url_credentials": ("must", url_creds), "jwt_unsigned": ("must", jwt_unsigned),
        "private_key_in_json": ("must", pem_json), "private_key_pem": ("must", pem_text),
        "provider_key_after_hyphen": ("must", key_after_hyphen), "basic_auth_header": ("must", basic_header),
        "authorization_header": ("must", auth_header), "keyword_secret_generated": ("must", keyword),
        "azure_storage_key": ("must", azure_storage), "azure_sas_token": ("must", azure_sas),
        "mailchimp_key": ("must", mailchimp), "discord_bot_token": ("must", discord),
        "telegram_bot_token": ("must", telegram), "slack_webhook": ("must", slack_webhook),
        "slack_app_token": ("must", slack_app), "eth_address": ("must", eth),
        "bearer_token": ("must", lambda r: (lambda v: (f"{r.choice(['Authorization: Bearer', 'bearer', 'BEARER'])} {v}", v))(gen.bearer_token(r))),
    })
    return kinds


def generated_sensitive(seed: int = 20261202, per_kind: int = 16) -> list[Entry]:
    rng = random.Random(seed)
    out = []
    for kind, (tier, make) in _sensitive_kinds().items():
        for _ in range(per_kind):
            text, value = make(rng)  # type: ignore[operator]
            out.append(Entry(kind, tier, text, value, "generated"))
    return out


def generated_clean(seed: int = 20261203, per_kind: int = 24) -> list[Entry]:
    """Values telemetry is full of and must keep as they are."""
    rng = random.Random(seed)
    fixed = {
        "user_agent": ["Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                       "Chrome/120.0.0.0", "curl/8.5.0", "python-requests/2.31.0", "Go-http-client/1.1"],
        "loopback_or_doc_address": ["127.0.0.1:4317", "http://127.0.0.1:4318/v1/traces", "localhost:9090", "0.0.0.0:8080",
                                    "192.0.2.10", "198.51.100.7:443", "203.0.113.200", "::1", "[::1]:4317"],
        "git_remote": ["git@github.com:org/repo.git", "git@gitlab.com:group/sub/project.git", "ssh://git@github.com/org/repo.git",
                       "https://github.com/open-telemetry/opentelemetry-python.git"],
        "ssh_fingerprint": ["SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8", "MD5:16:27:ac:a5:76:28:2d:36:63:1b:56:4d:eb:df:a6:48",
                            "ED25519 key fingerprint is SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU."],
        "signed_number": ["+12500000", "-12500000", "+3.25", "delta=+1048576", "+0.5%", "-273.15"],
        "code_naming_a_secret": ['api_key = os.environ["OPENAI_API_KEY"]', 'password = getpass.getpass()',
                                 'token = self.token', 'secret = settings.SECRET_KEY', 'api_key=config.api_key,',
                                 'headers = {"Authorization": f"Bearer {token}"}', 'password: ${DB_PASSWORD}',
                                 'api_key = os.getenv("API_KEY")', 'if not password: raise ValueError("password required")',
                                 'def rotate_secret(secret_id: str) -> None:', '"max_tokens": 4096', 'token_count: 42',
                                 'client_secret: {{ .Values.clientSecret }}', 'api_key: <your-api-key>'],
        "tool_or_span_name": ["github.search_issues", "tools/call", "execution.run", "discovery.search", "gen_ai.tool.call.arguments",
                              "mcp_exec.filtering.reduction_ratio", "servers/google-drive/getDocument.ts", "salesforce.updateRecord"],
        "log_line": ["GET /api/v1/users?page=2 200 12ms", "retrying in 250ms (attempt 3/5)", "cache hit ratio 0.93",
                     "wrote 1048576 bytes to /tmp/out.json", "exit code 137 after 30.0s", "python3 -m pytest -x -q",
                     "listening on 127.0.0.1:8000", "Traceback (most recent call last):", "  File \"/app/agent.py\", line 42, in run"],
    }
    gens = {
        "trace_id": lambda r: _r(r, HEX, 32),
        "span_id": lambda r: _r(r, HEX, 16),
        "uuid": lambda r: (lambda h: f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}")(_r(r, HEX, 32)),
        "sha256_digest": lambda r: _r(r, HEX, 64),
        "sha1_digest": lambda r: _r(r, HEX, 40),
        "git_short_sha": lambda r: _r(r, HEX, 7),
        "timestamp_iso": lambda r: f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{r.randint(0, 999):03d}Z",
        "timestamp_epoch": lambda r: str(r.choice([r.randint(1_600_000_000, 1_900_000_000), r.randint(1_600_000_000_000, 1_900_000_000_000)])),
        "version": lambda r: r.choice(["v", "", "Python/", "node-"]) + f"{r.randint(0, 30)}.{r.randint(0, 40)}.{r.randint(0, 200)}",
        "duration": lambda r: r.choice([f"{r.randint(1, 9999)}ms", f"{r.random() * 100:.3f}s", f"{r.randint(1, 59)}m{r.randint(0, 59)}s"]),
        "byte_count": lambda r: f"{r.randint(0, 10**9)} bytes",
        "port_pair": lambda r: f"127.0.0.1:{r.randint(1024, 65535)}",
        "date": lambda r: f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
        "semver_range": lambda r: f">={r.randint(0, 9)}.{r.randint(0, 30)},<{r.randint(10, 20)}",
        "path": lambda r: "/".join(["", r.choice(["var", "tmp", "home/agent", "workspace"]), _r(r, string.ascii_lowercase, 6), f"{_r(r, string.ascii_lowercase, 5)}.py"]),
        "k8s_pod": lambda r: f"agent-{_r(r, HEX, 10)}-{_r(r, string.ascii_lowercase + string.digits, 5)}",
        "docker_image": lambda r: f"ghcr.io/org/agent:{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 9)}",
        "metric_value": lambda r: f"{r.random() * 1000:.4f}",
    }
    out = []
    for kind, values in fixed.items():
        out.extend(Entry(kind, "clean", v, v, "generated") for v in values)
    for kind, fn in gens.items():
        for _ in range(per_kind):
            v = fn(rng)
            out.append(Entry(kind, "clean", v, v, "generated"))
    return out


def sensitive() -> list[Entry]:
    return [e for e in public_entries() if e.sensitive] + generated_sensitive()


def clean() -> list[Entry]:
    return [e for e in public_entries() if not e.sensitive] + generated_clean()
