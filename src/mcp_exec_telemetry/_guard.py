"""Input checks that keep bad values out of telemetry without ever raising into the agent.

Every public record method passes its arguments through a :class:`Guard`. A value that cannot be
recorded honestly (a negative or NaN duration, a wrong type, an unknown detail level) is dropped,
logged once per field and reason, and counted in ``<namespace>.sdk.dropped_inputs``. With
``strict=True`` the guard raises ``ValueError`` naming the field instead, which is what tests want.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from typing import Any, Callable

_logger = logging.getLogger("mcp_exec_telemetry")

# Metric attribute values that come from the caller must look like labels, never like free text.
_LABEL_RE = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,63}")
# Skill names are open-ended but identifier-like; the cardinality limit bounds how many we keep.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-:/]{0,127}")
_MAX_COUNT = 2**63 - 1
_MAX_DURATION_MS = 1e12
_MAX_TEXT = 4096

OTHER = "other"

_DETECTOR: Any = None


def _sensitive(value: str) -> bool:
    """Whether ``value`` holds PII or a secret by the built-in rules (checked before case folding)."""
    global _DETECTOR
    if _DETECTOR is None:
        from .pii import PiiDetector

        _DETECTOR = PiiDetector()
    return _DETECTOR.contains_pii(value)


class Dropped(Exception):
    """Raised inside the SDK to abandon one record; never leaves the SDK."""


class Guard:
    """Validates caller input, and drops, logs and counts what it cannot record."""

    __slots__ = ("strict", "_count", "_seen", "_lock", "_labels")

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self._count: Callable[[str, str], None] | None = None
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._labels: set[str] = set()  # labels already accepted as they are: no regex on the hot path

    def bind(self, count: Callable[[str, str], None]) -> None:
        """Connect the counter that records drops (set once the meter exists)."""
        self._count = count

    def reject(self, field: str, reason: str) -> Dropped:
        """Record a rejected input; raise ``ValueError`` in strict mode, else return a ``Dropped``."""
        if self.strict:
            raise ValueError(f"{field}: {reason}")
        key = (field, reason)
        if key not in self._seen:
            with self._lock:
                if key not in self._seen and len(self._seen) < 1024:
                    self._seen.add(key)
                    _logger.warning("mcp-exec-telemetry dropped an input: %s (%s); further drops of this kind are only counted", field, reason)
        if self._count is not None:
            try:
                self._count(field, reason)
            except Exception:  # pragma: no cover - a broken meter must not break the host
                pass
        return Dropped(field)

    def contain(self, exc: BaseException, where: str) -> None:
        """Handle an exception caught at a public entry point so that it never reaches the host.

        A :class:`Dropped` input was already counted. Anything else is a failure inside the SDK:
        re-raised in strict mode, logged once per place otherwise.
        """
        if isinstance(exc, Dropped):
            return
        if self.strict:
            raise exc
        key = ("internal", where)
        if key not in self._seen:
            with self._lock:
                self._seen.add(key)
            _logger.warning("mcp-exec-telemetry failed in %s and skipped one record: %r", where, exc)

    # --- checks: each returns the clean value or raises Dropped -------------------------------

    def duration_ms(self, value: Any, field: str) -> float:
        """A duration in milliseconds: a real number from 0 to 1e12 (about 31 years)."""
        t = type(value)
        if (t is float or t is int) and 0 <= value <= _MAX_DURATION_MS:  # NaN fails the comparison
            return float(value)
        if t is not bool and isinstance(value, (int, float)):
            if 0 <= value <= _MAX_DURATION_MS:
                return float(value)
            raise self.reject(field, "must be finite, >= 0 and at most 1e12 ms")
        raise self.reject(field, f"must be a number, got {t.__name__}")

    def count(self, value: Any, field: str) -> int:
        """A count or size: a non-negative integer that fits in 64 bits."""
        if type(value) is int and 0 <= value <= _MAX_COUNT:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            raise self.reject(field, "must be >= 0 and < 2**63")
        if isinstance(value, float) and value.is_integer() and 0 <= value <= _MAX_COUNT:
            return int(value)
        raise self.reject(field, f"must be a non-negative integer, got {type(value).__name__}")

    def optional_count(self, value: Any, field: str) -> int | None:
        return None if value is None else self.count(value, field)

    def number(self, value: Any, field: str) -> float:
        """A finite, non-negative measurement such as megabytes of memory."""
        if type(value) in (int, float) and not isinstance(value, bool):
            f = float(value) if type(value) is float or abs(value) <= _MAX_COUNT else math.inf
            if math.isfinite(f) and f >= 0:
                return f
            raise self.reject(field, "must be finite and >= 0")
        raise self.reject(field, f"must be a number, got {type(value).__name__}")

    def flag(self, value: Any, field: str) -> bool:
        if type(value) is bool:
            return value
        raise self.reject(field, f"must be a bool, got {type(value).__name__}")

    def exit_code(self, value: Any, field: str) -> int:
        if type(value) is int and -(2**31) <= value < 2**31:
            return value
        raise self.reject(field, "must be an int in the 32-bit range")

    def label(self, value: Any, field: str) -> str:
        """A low-cardinality metric attribute value (language, operation kind, pattern type).

        Anything that does not look like a label is recorded as ``other``: free text never
        becomes a metric attribute.
        """
        if type(value) is str and value in self._labels:
            return value
        if type(value) is not str and not isinstance(value, str):
            raise self.reject(field, f"must be a str, got {type(value).__name__}")
        if _LABEL_RE.fullmatch(value):
            if type(value) is str and len(self._labels) < 1024:
                self._labels.add(value)
            return value
        low = value.strip().lower()
        if _LABEL_RE.fullmatch(low):
            # Folding would hide a value from the case-sensitive detector ("AKIA..." -> "akia...").
            if not _sensitive(value):
                return low
            if self.strict:
                raise ValueError(f"{field}: holds a sensitive value; not recorded")
            self.reject(field, "holds a sensitive value; recorded as 'other'")
            return OTHER
        if self.strict:
            raise ValueError(f"{field}: must be a short label ([a-z0-9_.-], at most 64 characters)")
        self.reject(field, "not a label; recorded as 'other'")
        return OTHER

    def name(self, value: Any, field: str) -> str:
        """An identifier-like name (a skill name); bounded by the cardinality limit downstream."""
        if not isinstance(value, str):
            raise self.reject(field, f"must be a str, got {type(value).__name__}")
        if _NAME_RE.fullmatch(value):
            return value
        raise self.reject(field, "must be an identifier-like name ([A-Za-z0-9_.-:/], at most 128 characters)")

    def text(self, value: Any, field: str) -> str:
        """Free text (a search keyword): kept on spans and records only, truncated to 4 KiB."""
        if not isinstance(value, str):
            raise self.reject(field, f"must be a str, got {type(value).__name__}")
        if len(value) > _MAX_TEXT:
            value = value[:_MAX_TEXT]
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value
