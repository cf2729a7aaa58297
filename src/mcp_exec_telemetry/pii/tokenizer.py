"""Reversible tokenization: PII values become stable placeholder tokens, and come back on demand.

An agent runtime tokenizes tool results before they reach the model and detokenizes the model's
tool-call arguments before they reach the tools, so the model never sees raw values while the
workflow still works.  Only types and counts are reported to telemetry, never a value.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from typing import Any, Mapping

from .detectors import Detection, PiiDetector

__all__ = ["PiiTokenizer"]

_log = logging.getLogger(__name__)


class PiiTokenizer:
    """Replaces each detected value by a token such as ``[EMAIL_1]``; the same value, the same token.

    ``token_format`` may use ``{type}`` (``email``), ``{TYPE}`` (``EMAIL``) and ``{n}`` (a counter
    per type, from 1).  ``telemetry`` is anything with a ``security`` attribute offering
    ``pii_detected(pattern_type, count=...)``, ``tokens_created(n)`` and
    ``audit(event, pattern_type, severity)`` -- the :class:`~mcp_exec_telemetry.Telemetry` of
    :func:`mcp_exec_telemetry.observe`.  All methods are safe to call from several threads.
    """

    def __init__(
        self,
        detector: PiiDetector | None = None,
        telemetry: Any = None,
        token_format: str = "[{TYPE}_{n}]",
    ) -> None:
        sample = token_format.format(type="email", TYPE="EMAIL", n=1)
        if sample == token_format.format(type="email", TYPE="EMAIL", n=2):
            raise ValueError("token_format must contain {n} so that tokens differ")
        self._detector = detector if detector is not None else PiiDetector()
        self._telemetry = telemetry
        self._format = token_format
        self._lock = threading.Lock()
        self._by_value: dict[str, str] = {}
        self._by_token: dict[str, str] = {}
        self._counters: Counter[str] = Counter()
        self._token_re: re.Pattern[str] | None = None

    @property
    def detector(self) -> PiiDetector:
        """The detector that decides what is PII."""
        return self._detector

    @property
    def token_map(self) -> dict[str, str]:
        """A snapshot of ``{token: original value}`` for every token issued so far."""
        with self._lock:
            return dict(self._by_token)

    def tokenize(self, text: str) -> tuple[str, dict[str, str]]:
        """``text`` with every PII value replaced by its token, and ``{token: value}`` for those used."""
        detections = self._detector.detect(text)
        if not detections:
            return text, {}
        out, used, new = self._replace(text, detections)
        self._report(detections, new)
        return out, used

    def tokenize_json(self, obj: Any) -> tuple[Any, dict[str, str]]:
        """A copy of a nested dict / list / tuple with PII in its string values tokenized.

        Keys are left alone; a string under a key that names a secret (``password``, ``api_key``,
        ...) is tokenized whole.  Returns the copy and ``{token: value}`` for the tokens used.
        """
        found: list[Detection] = []
        used: dict[str, str] = {}
        new_total = 0

        def walk(value: Any, key: Any) -> Any:
            nonlocal new_total
            if isinstance(value, str):
                whole = self._detector.secret_under_key(key, value)
                detections = [whole] if whole is not None else self._detector.detect(value)
                if not detections:
                    return value
                found.extend(detections)
                out, u, new = self._replace(value, detections)
                used.update(u)
                new_total += new
                return out
            if isinstance(value, Mapping):
                return {k: walk(v, k) for k, v in value.items()}
            if isinstance(value, list):
                return [walk(v, key) for v in value]
            if isinstance(value, tuple):
                return tuple(walk(v, key) for v in value)
            return value

        result = walk(obj, None)
        if found:
            self._report(found, new_total)
        return result, used

    def detokenize(self, text_or_obj: Any) -> Any:
        """Tokens this tokenizer issued, in a string or nested JSON-like data, back to the values."""
        with self._lock:
            token_re = self._token_re
            if token_re is None and self._by_token:
                # longest first, so a token is never cut short by another one it starts with
                tokens = sorted(self._by_token, key=len, reverse=True)
                token_re = self._token_re = re.compile("|".join(map(re.escape, tokens)))
            by_token = dict(self._by_token) if token_re is not None else {}

        def restore(value: Any) -> Any:
            if isinstance(value, str):
                if token_re is None:
                    return value
                return token_re.sub(lambda m: by_token[m.group(0)], value)
            if isinstance(value, Mapping):
                return {k: restore(v) for k, v in value.items()}
            if isinstance(value, list):
                return [restore(v) for v in value]
            if isinstance(value, tuple):
                return tuple(restore(v) for v in value)
            return value

        result = restore(text_or_obj)
        self._emit(lambda s: s.audit("detokenized", "", "info"))
        return result

    # -- internals ---------------------------------------------------------------------------

    def _token_for(self, value: str, pii_type: str) -> tuple[str, bool]:
        """The token of ``value`` (caller holds the lock), and whether it was created now."""
        token = self._by_value.get(value)
        if token is not None:
            return token, False
        while True:
            self._counters[pii_type] += 1
            token = self._format.format(type=pii_type, TYPE=pii_type.upper(), n=self._counters[pii_type])
            if token not in self._by_token:
                break
        self._by_value[value] = token
        self._by_token[token] = value
        self._token_re = None
        return token, True

    def _replace(self, text: str, detections: list[Detection]) -> tuple[str, dict[str, str], int]:
        parts: list[str] = []
        used: dict[str, str] = {}
        new = 0
        pos = 0
        with self._lock:
            for d in detections:
                token, created = self._token_for(d.value, d.type)
                new += created
                used[token] = d.value
                parts.append(text[pos:d.start])
                parts.append(token)
                pos = d.end
        parts.append(text[pos:])
        return "".join(parts), used, new

    def _report(self, detections: list[Detection], new_tokens: int) -> None:
        """Counts per type and audit events; never a value."""
        if self._telemetry is None:
            return
        per_type = Counter(d.type for d in detections)

        def send(security: Any) -> None:
            tokenized = getattr(security, "pii_tokenized", None)
            for pii_type, count in sorted(per_type.items()):
                security.pii_detected(pii_type, count=count)
                security.audit("pii_detected", pii_type, "info")
                if tokenized is not None:
                    tokenized(pii_type, count=count)  # every detection here is replaced by a token
            if new_tokens:
                security.tokens_created(new_tokens)
            for pii_type in sorted(per_type):
                security.audit("tokenized", pii_type, "info")

        self._emit(send)

    def _emit(self, action: Any) -> None:
        if self._telemetry is None:
            return
        try:
            action(self._telemetry.security)
        except Exception:  # telemetry must never break the data path it observes
            _log.warning("PII telemetry report failed", exc_info=True)

