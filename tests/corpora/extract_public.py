"""Rebuild ``public_corpus.json`` from other projects' public test suites (run by hand, not by pytest).

The values are copied, not invented: positive and negative examples from the unit tests of

* Yelp/detect-secrets  (Apache-2.0) -- ``tests/plugins/*_test.py`` and ``test_data/``
* microsoft/presidio   (MIT)        -- ``presidio-analyzer/tests/test_*_recognizer.py``
* gitleaks/gitleaks    (MIT)        -- ``cmd/generate/config/rules/*.go`` (the ``tps`` literals)

Each record keeps its source (repository, commit, path), so every value can be traced back.
Usage: ``python tests/corpora/extract_public.py DETECT_SECRETS_GIT PRESIDIO_GIT GITLEAKS_GIT``
(bare git directories; ``HEAD`` is read).
"""

from __future__ import annotations

import ast
import base64
import json
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

OUT = Path(__file__).with_name("public_corpus.json")


def git(repo: str, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", repo, *args], check=True, capture_output=True, text=True).stdout


def _params(source: str) -> Iterator[tuple[Any, ...]]:
    """Every literal argvalues entry of every ``pytest.mark.parametrize`` in a test module."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize" and len(node.args) >= 2:
            values = node.args[1]
            if not isinstance(values, (ast.List, ast.Tuple)):
                continue
            for elt in values.elts:
                try:
                    yield ast.literal_eval(elt) if isinstance(elt, ast.Tuple) else (ast.literal_eval(elt),)
                except ValueError:
                    continue  # built with .format(...) or names: not a literal


def _module_strings(source: str) -> dict[str, Any]:
    """Module-level constants and case lists of a test module, evaluated without importing it."""
    env: dict[str, Any] = {"base64": base64, "randint": random.Random(0).randint}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                exec(compile(ast.Module([node], []), "<case>", "exec"), env)  # string formatting only
            except Exception:
                continue
    return env


# detect-secrets plugin test -> (kind, tier)
DS_PLUGINS = {
    "aws_key": ("aws_access_key", "must"), "azure_storage_key": ("azure_storage_key", "must"),
    "basic_auth": ("url_credentials", "must"), "discord": ("discord_bot_token", "must"),
    "gitlab_token": ("gitlab_token", "must"), "mailchimp_key": ("mailchimp_key", "must"),
    "npm": ("npm_token", "must"), "pypi_token": ("pypi_token", "must"), "sendgrid": ("sendgrid_key", "must"),
    "slack": ("slack_token", "must"), "stripe_key": ("stripe_key", "must"), "telegram_token": ("telegram_bot_token", "must"),
    "private_key": ("private_key_pem", "must"), "jwt": ("jwt", "must"), "openai": ("openai_key", "must"),
    "github_token": ("github_token", "must"), "twilio": ("twilio_key", "should"), "square_oauth": ("square_oauth", "should"),
    "artifactory": ("artifactory_token", "should"), "ip_public": ("ip_address_public", "must"),
}


def detect_secrets(repo: str) -> Iterator[dict[str, Any]]:
    commit = git(repo, "rev-parse", "HEAD").strip()
    for plugin, (kind, tier) in DS_PLUGINS.items():
        path = f"tests/plugins/{plugin}_test.py"
        src = git(repo, "show", f"HEAD:{path}")
        for case in _params(src):
            if not case or not isinstance(case[0], str):
                continue
            flag = case[1] if len(case) > 1 and isinstance(case[1], bool) else True
            if not flag:
                continue  # a negative of one plugin is often another secret (a GitHub token in GitLab's tests)
            yield {"kind": kind, "tier": tier, "text": case[0], "value": _ds_value(case[0]), "sensitive": True,
                   "source": f"Yelp/detect-secrets@{commit[:12]}:{path}"}
    path = "tests/plugins/keyword_test.py"
    env = _module_strings(git(repo, "show", f"HEAD:{path}"))
    for name, cases in env.items():
        if name.endswith("_TEST_CASES") and isinstance(cases, list):
            for case in cases:
                if isinstance(case, tuple) and len(case) == 2 and isinstance(case[0], str) and len(case[0]) < 400 and case[1] is not None:
                    yield {"kind": "keyword_secret", "tier": "should", "text": case[0], "value": case[1],
                           "sensitive": case[1] is not None, "source": f"Yelp/detect-secrets@{commit[:12]}:{path}:{name}"}
    path = "test_data/each_secret.py"
    for line in git(repo, "show", f"HEAD:{path}").splitlines():
        if "=" in line and "red_herring" not in line:
            yield {"kind": "keyword_secret", "tier": "should", "text": line, "sensitive": True,
                   "value": line.split("=", 1)[1].strip().strip("'\""), "source": f"Yelp/detect-secrets@{commit[:12]}:{path}"}


def _ds_value(payload: str) -> str:
    """The secret in a detect-secrets payload: after ``=`` / ``:`` when it is an assignment, else all of it."""
    m = re.search(r"(?:_authToken|AccountKey|password|secret)\s*[=:]\s*(\S+)", payload)
    if m:
        return m.group(1)
    m = re.match(r"[a-z]+://[^:/@\s]+:([^@\s]+)@", payload)
    return m.group(1) if m else payload.strip()


# presidio recognizer test -> (kind, tier)
PRESIDIO = {"iban": ("iban", "must"), "phone": ("phone_number", "must"), "crypto": ("crypto_wallet", "must"),
            "us_ssn": ("ssn", "must"), "email": ("email", "must"), "ip": ("ip_address", "must"),
            "credit_card": ("credit_card", "must")}


def _positions(case: tuple[Any, ...]) -> tuple[tuple[int, int], ...] | None:
    for item in case[2:]:
        if isinstance(item, tuple) and item and all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, int) for x in p) for p in item):
            return item
    return None


def presidio(repo: str) -> Iterator[dict[str, Any]]:
    commit = git(repo, "rev-parse", "HEAD").strip()
    for name, (kind, tier) in PRESIDIO.items():
        path = f"presidio-analyzer/tests/test_{name}_recognizer.py"
        for case in _params(git(repo, "show", f"HEAD:{path}")):
            if len(case) < 2 or not isinstance(case[0], str) or not isinstance(case[1], int) or isinstance(case[1], bool):
                continue
            text, n = case[0], case[1]
            source = f"microsoft/presidio@{commit[:12]}:{path}"
            if n == 0:
                if text.strip():
                    yield {"kind": kind, "tier": tier, "text": text, "sensitive": False, "source": source}
                continue
            spans = _positions(case)
            values = [text[s:e] for s, e in spans] if spans else ([text] if n == 1 else [])
            weak = name == "us_ssn" and any(isinstance(x, tuple) and x and isinstance(x[0], tuple) and isinstance(x[0][0], float) and x[0][1] < 0.5 for x in case[2:])
            for v in values:
                yield {"kind": kind, "tier": "should" if weak else tier, "text": text, "value": v, "sensitive": True, "source": source}


# gitleaks rule file -> (kind, tier); only string literals of the true-positive list are taken.
GITLEAKS = {"privatekey": ("private_key_pem", "must"), "huggingface": ("huggingface_token", "must"),
            "jwt": ("jwt", "must"), "slack": ("slack_token", "must"), "mailchimp": ("mailchimp_key", "must"),
            "azure": ("azure_ad_client_secret", "should"), "generic": ("keyword_secret", "should"),
            "curl": ("curl_credentials", "should"), "gcp": ("gcp_service_account", "should"),
            "square": ("square_oauth", "should"), "github": ("github_token", "must"), "anthropic": ("anthropic_key", "must"),
            "notion": ("notion_token", "should"), "sentry": ("sentry_token", "should"), "okta": ("okta_token", "should"),
            "openshift": ("openshift_token", "should"), "flyio": ("flyio_token", "should"),
            "databricks": ("databricks_token", "should"), "facebook": ("facebook_secret", "should"),
            "hashicorp": ("terraform_token", "should")}
_TOKENISH = re.compile(r"[A-Za-z0-9+/_~=.\-]{12,}")


def _secretish(v: str) -> bool:
    """Mixes letters and digits and is not a URL path: the shape of a credential, not of a key name."""
    return (len(v) >= 16 and bool(re.search(r"[0-9]", v) and re.search(r"[A-Za-z]", v))
            and not v.startswith("//") and v.count("/") < 2)


def _secret_in(text: str) -> str | None:
    """The part of a gitleaks example that is the secret: its longest run mixing letters and digits."""
    runs = [r for r in _TOKENISH.findall(text) if _secretish(r) and "/" not in r]
    return max(runs, key=len) if runs else None


def _rule_regexes(src: str) -> dict[str, re.Pattern[str]]:
    """Each rule function's secret pattern (what gitleaks wraps in its generic prefix), by function."""
    out: dict[str, re.Pattern[str]] = {}
    for fn, body in re.findall(r"func (\w+)\(\) \*config\.Rule \{(.*?)\n\}", src, re.S):
        m = re.search(r"Generate(?:UniqueToken|SemiGeneric)Regex\((?:\[\]string\{[^}]*\},\s*)?(`[^`]*`|\"(?:[^\"\\]|\\.)*\")", body) \
            or re.search(r"regexp\.MustCompile\((`[^`]*`|\"(?:[^\"\\]|\\.)*\")\)", body)
        if not m:
            continue
        lit = m.group(1)
        pattern = lit[1:-1] if lit.startswith("`") else json.loads(lit)
        for name in re.findall(r"utils\.(\w+)\(", pattern):
            pattern = pattern  # helper calls inside a literal are not expanded
        try:
            out[fn] = re.compile(pattern.replace("\\z", "\\Z"))
        except re.error:
            continue
    return out


def _tp_blocks(body: str) -> Iterator[str]:
    yield from re.findall(r"tps\s*:?=\s*\[\]string\{(.*?)\n\t\}", body, re.S)
    yield from re.findall(r"tps\s*=\s*append\(tps,(.*?)\n\t\)", body, re.S)


def gitleaks(repo: str) -> Iterator[dict[str, Any]]:
    commit = git(repo, "rev-parse", "HEAD").strip()
    for name, (kind, tier) in GITLEAKS.items():
        path = f"cmd/generate/config/rules/{name}.go"
        src = git(repo, "show", f"HEAD:{path}")
        regexes = _rule_regexes(src)
        for fn, body in re.findall(r"func (\w+)\(\) \*config\.Rule \{(.*?)\n\}", src, re.S):
            rx = regexes.get(fn)
            for block in _tp_blocks(body):
                for m in re.finditer(r"`([^`]*)`|\"((?:[^\"\\]|\\.)*)\"", block):
                    raw = m.group(1) if m.group(1) is not None else json.loads('"' + m.group(2) + '"')
                    if len(raw) < 16 or re.search(r"[\[\]{}]\{?\d|\(\?", raw) or "%s" in raw or raw.rstrip().endswith(("= \"", "=\"", ": \"")):
                        continue  # a regex fragment or a format string, not an example
                    hit = rx.search(raw) if rx is not None else None
                    value = (hit.group(1) if hit.re.groups and hit.group(1) else hit.group(0)) if hit else None
                    if not value or not _secretish(value):
                        value = _secret_in(raw)  # the rule's pattern did not name it: the heuristic
                    if value:
                        yield {"kind": kind, "tier": tier, "text": raw, "value": value, "sensitive": True,
                               "source": f"gitleaks/gitleaks@{commit[:12]}:{path}:{fn}"}


def main(argv: list[str]) -> int:
    ds, pr, gl = argv[1:4]
    records = [*detect_secrets(ds), *presidio(pr), *gitleaks(gl)]
    seen, out = set(), []
    for r in records:
        key = (r["kind"], r["text"], r.get("value"))
        if key not in seen:
            seen.add(key)
            out.append(r)
    OUT.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(out)} records -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
