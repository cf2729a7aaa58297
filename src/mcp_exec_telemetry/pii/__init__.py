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
