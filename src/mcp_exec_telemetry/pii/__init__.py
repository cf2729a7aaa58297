"""PII protection: detect PII values in text, tokenize them reversibly, or scrub them for export.

>>> from mcp_exec_telemetry.pii import PiiDetector, PiiTokenizer, Scrubber
>>> [d.type for d in PiiDetector().detect("mail jane@example.com from 10.0.0.1")]
['email', 'ip_address']
>>> PiiTokenizer().tokenize("mail jane@example.com")[0]
'mail [EMAIL_1]'
>>> Scrubber().scrub("card 4111 1111 1111 1111")
'card [REDACTED:credit_card]'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - at run time the names load on first use (PEP 562)
    from .detectors import Detection, JsonPath, PiiDetector, PiiType, luhn_valid
    from .scrub import Scrubber, redaction_marker
    from .tokenizer import PiiTokenizer

__all__ = [
    "PiiType",
    "Detection",
    "JsonPath",
    "PiiDetector",
    "PiiTokenizer",
    "Scrubber",
    "luhn_valid",
    "redaction_marker",
]

_LAZY = {
    "PiiType": "detectors",
    "Detection": "detectors",
    "JsonPath": "detectors",
    "PiiDetector": "detectors",
    "luhn_valid": "detectors",
    "Scrubber": "scrub",
    "redaction_marker": "scrub",
    "PiiTokenizer": "tokenizer",
}


def __getattr__(name: str) -> Any:
    # The scrubbing stage of every session needs only the scrubber, not the tokenizer.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
