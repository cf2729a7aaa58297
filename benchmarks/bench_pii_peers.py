"""Benchmark: our scrubbing against Logfire's scrubber, detect-secrets and scrubadub, on one corpus.

The corpus is ``tests/pii_corpus_public.py``: values from detect-secrets', presidio's and
gitleaks' own test suites plus generated variants, each kind tagged must/should, and clean values.
Each tool gets every sensitive text and every clean text, and is judged the same way:

* **leaked** -- the sensitive value is still in the tool's output;
* **altered** (false positive) -- a clean text does not come back unchanged.

How each tool is run (its defaults, as a new user would):

* ours -- ``mcp_exec_telemetry.pii.Scrubber().scrub(text)``;
* Logfire -- ``logfire._internal.scrubbing.Scrubber(patterns=None).scrub_value(("attributes",), {"value": text})``:
  the text under a neutral key, so only what Logfire finds *in the value* counts;
* detect-secrets -- ``SecretsCollection().scan_file(...)`` with its default settings (plugins and
  filters, as ``detect-secrets scan`` runs) over a file holding every text, one after another;
  every reported ``secret_value`` is cut out of every text that holds it (it reports, it does
  not redact).  A second column runs ``scan_line(line)``, its ad-hoc mode (``detect-secrets
  scan --string``), which skips the filters and flags nearly every token;
* scrubadub -- ``scrubadub.clean(text)`` with its default detectors.

The peers are not dependencies of the package: install them in a scratch environment and run this
script there, e.g.::

    python -m venv .venv-peers && .venv-peers/bin/pip install logfire detect-secrets scrubadub
    .venv-peers/bin/python benchmarks/bench_pii_peers.py            # prints markdown tables

A tool that cannot be imported is reported as such and skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.pii_corpus_public import Entry, clean, sensitive  # noqa: E402

Tool = Callable[[str], str]


def ours() -> Tool:
    from mcp_exec_telemetry.pii import Scrubber

    return Scrubber().scrub


def logfire_scrubber() -> Tool:
    from logfire._internal.scrubbing import Scrubber

    scrubber = Scrubber(patterns=None)

    def run(text: str) -> str:
        out, _ = scrubber.scrub_value(("attributes",), {"value": text})
        return str(out["value"])

    return run


def detect_secrets_scan() -> Tool:
    from detect_secrets import SecretsCollection
    from detect_secrets.settings import default_settings

    def batch(texts: Sequence[str]) -> list[str]:
        import os
        import tempfile

        lines = [line for text in texts for line in (text.splitlines() or [""])]
        fd, path = tempfile.mkstemp(suffix=".txt")
        try:
            with os.fdopen(fd, "w") as f:
                f.write("\n".join(lines) + "\n")
            collection = SecretsCollection()
            with default_settings():
                collection.scan_file(path)
            # A collection keeps each secret once per file: cut every value it found out of
            # every text that holds it.
            found = {secret.secret_value for _, secret in collection if secret.secret_value}
        finally:
            os.unlink(path)
        ordered = sorted(found, key=len, reverse=True)
        out = []
        for text in texts:
            for value in ordered:
                if value in text:
                    text = text.replace(value, "[SECRET]")
            out.append(text)
        return out

    run = lambda text: batch([text])[0]  # noqa: E731
    run.batch = batch  # type: ignore[attr-defined]
    return run


def detect_secrets_adhoc() -> Tool:
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import default_settings

    def run(text: str) -> str:
        with default_settings():
            found = {s.secret_value for line in text.splitlines() or [text] for s in scan_line(line) if s.secret_value}
        for value in sorted(found, key=len, reverse=True):
            text = text.replace(value, "[SECRET]")
        return text

    return run


def scrubadub_clean() -> Tool:
    import scrubadub

    scrubber = scrubadub.Scrubber()
    return scrubber.clean


TOOLS: dict[str, Callable[[], Tool]] = {
    "ours": ours,
    "Logfire": logfire_scrubber,
    "detect-secrets": detect_secrets_scan,
    "detect-secrets scan_line": detect_secrets_adhoc,
    "scrubadub": scrubadub_clean,
}


def _outputs(tool: Tool, texts: Sequence[str]) -> list[str]:
    batch = getattr(tool, "batch", None)
    if batch is not None:
        return batch(texts)
    out = []
    for text in texts:
        try:
            out.append(tool(text))
        except Exception:
            out.append(text)  # a tool that fails on an input leaves it as it was
    return out


def evaluate(tool: Tool, sens: Sequence[Entry], cln: Sequence[Entry]) -> dict[str, object]:
    t0 = time.perf_counter()
    outs = _outputs(tool, [e.text for e in sens])
    clean_outs = _outputs(tool, [e.text for e in cln])
    seconds = time.perf_counter() - t0
    leaked_ids = {id(e) for e, out in zip(sens, outs) if e.value in out}
    leaked = Counter(e.kind for e in sens if id(e) in leaked_ids)
    altered = Counter(e.kind for e, out in zip(cln, clean_outs) if out != e.text)
    return {"leaked": leaked, "leaked_ids": leaked_ids, "altered": altered, "seconds": seconds}


def _pct(n: int, d: int) -> str:
    return f"{100.0 * n / d:.1f}%" if d else "-"


def report(results: dict[str, dict[str, object]], sens: Sequence[Entry], cln: Sequence[Entry]) -> str:
    names = list(results)
    kinds: dict[str, list[Entry]] = defaultdict(list)
    for e in sens:
        kinds[e.kind].append(e)
    tiers = Counter(e.tier for e in sens)
    clean_kinds = Counter(e.kind for e in cln)
    lines = [f"Corpus: {len(sens)} sensitive values of {len(kinds)} kinds ({tiers['must']} must, {tiers['should']} should), "
             f"{len(cln)} clean values of {len(clean_kinds)} kinds.", ""]
    lines += ["| | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]

    def row(label: str, fn: Callable[[dict[str, object]], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(fn(results[n]) for n in names) + " |")

    for tier in ("must", "should"):
        idx = [e for e in sens if e.tier == tier]
        row(f"caught, {tier} ({len(idx)})", lambda r, idx=idx: _pct(len(idx) - sum(1 for e in idx if _leaked_entry(r, e)), len(idx)))
    pii_kinds = {"email", "phone_number", "phone_national_fr", "phone_national_de", "phone_intl_00", "phone_national_jp", "ssn",
                 "ssn_undashed_in_context", "ssn_after_hyphen", "credit_card", "ip_address", "ip_address_public", "iban",
                 "btc_address", "bech32_address", "eth_address", "crypto_wallet"}
    pii = [e for e in sens if e.kind in pii_kinds]
    sec = [e for e in sens if e.kind not in pii_kinds]
    row(f"caught, PII kinds ({len(pii)})", lambda r: _pct(len(pii) - sum(1 for e in pii if _leaked_entry(r, e)), len(pii)))
    row(f"caught, secret kinds ({len(sec)})", lambda r: _pct(len(sec) - sum(1 for e in sec if _leaked_entry(r, e)), len(sec)))
    row(f"clean values altered ({len(cln)})", lambda r: _pct(sum(r["altered"].values()), len(cln)))  # type: ignore[union-attr]
    row("seconds for the corpus", lambda r: f"{r['seconds']:.2f}")
    lines += ["", "Caught by kind (values caught / values):", "",
              "| kind | tier | n | " + " | ".join(names) + " |", "| --- | --- | ---: |" + " ---: |" * len(names)]
    for kind in sorted(kinds, key=lambda k: (min(e.tier for e in kinds[k]), k)):
        es = kinds[kind]
        n = len(es)
        cells = [f"{n - results[name]['leaked'].get(kind, 0)}" for name in names]  # type: ignore[union-attr]
        tier = "/".join(sorted({e.tier for e in es}))
        lines.append(f"| {kind} | {tier} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "Clean values altered, by kind (only kinds where some tool altered one):", "",
              "| kind | n | " + " | ".join(names) + " |", "| --- | ---: |" + " ---: |" * len(names)]
    for kind in sorted(clean_kinds):
        cells = [str(results[name]["altered"].get(kind, 0)) for name in names]  # type: ignore[union-attr]
        if any(c != "0" for c in cells):
            lines.append(f"| {kind} | {clean_kinds[kind]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _leaked_entry(result: dict[str, object], e: Entry) -> bool:
    return id(e) in result["leaked_ids"]  # type: ignore[operator]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tools", nargs="*", default=list(TOOLS), help="subset of: " + ", ".join(TOOLS))
    args = parser.parse_args(argv)
    sens, cln = sensitive(), clean()
    results: dict[str, dict[str, object]] = {}
    for name in args.tools:
        try:
            tool = TOOLS[name]()
        except ImportError as exc:
            print(f"{name}: not installed ({exc}); skipped", file=sys.stderr)
            continue
        results[name] = evaluate(tool, sens, cln)
    print(report(results, sens, cln))
    return 0


if __name__ == "__main__":
    sys.exit(main())
