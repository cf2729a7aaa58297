"""Irreversible redaction of PII in strings bound for telemetry (span attributes, logs, events).

Used on every value the SDK exports, so the common case -- no PII -- costs one regex search and
returns the very same object.  Safe identifiers (trace and span ids, UUIDs, timestamps, versions,
tool names, durations, byte counts) are left alone by the detector's rules.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import Counter
from typing import Any, Iterable, Mapping

from .detectors import PiiDetector

__all__ = ["Scrubber", "redaction_marker"]


def redaction_marker(pii_type: str) -> str:
    """What replaces a value of ``pii_type``: ``[REDACTED:<type>]``."""
    return f"[REDACTED:{pii_type}]"


@functools.lru_cache(maxsize=8)
def _shared_detector(allow: frozenset[str]) -> PiiDetector:
    """One detector per allow-list for every session of the process: detectors are immutable,
    and building one (the combined scan and its tables) is most of an empty session's cost."""
    return PiiDetector(allow=allow)


class Scrubber:
    """Replaces each detected PII value with ``[REDACTED:<type>]`` and counts redactions per type.

    Pass a ``detector`` to share one, or ``allow`` / ``extra_patterns`` to build one here; values
    in ``allow`` are never redacted either way.  Thread-safe.
    """

    def __init__(
        self,
        detector: PiiDetector | None = None,
        allow: Iterable[str] = (),
        extra_patterns: Mapping[str, str | re.Pattern[str]] | None = None,
    ) -> None:
        allow = frozenset(allow)
        if detector is None:
            detector = PiiDetector(extra_patterns=extra_patterns, allow=allow) if extra_patterns else _shared_detector(allow)
        elif extra_patterns:
            raise ValueError("give extra_patterns to the PiiDetector you pass, not to the Scrubber")
        self._detector = detector
        self._allow = allow
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    @property
    def detector(self) -> PiiDetector:
        """The detector that decides what is PII."""
        return self._detector

    @property
    def redactions(self) -> dict[str, int]:
        """A snapshot of how many values of each type were redacted so far."""
        with self._lock:
            return dict(self._counts)

    def scrub(self, text: str) -> str:
        """``text`` with every PII value replaced; the same object when there is none."""
        if not self._detector.contains_pii(text):
            return text
        detections = [d for d in self._detector.detect(text) if d.value not in self._allow]
        if not detections:
            return text
        parts: list[str] = []
        pos = 0
        for d in detections:
            parts.append(text[pos:d.start])
            parts.append(redaction_marker(d.type))
            pos = d.end
        parts.append(text[pos:])
        with self._lock:
            self._counts.update(d.type for d in detections)
        return "".join(parts)

    def scrub_value(self, value: Any) -> Any:
        """Scrub a string, or each string of a list / tuple (same type back); anything else as is.

        Returns the same object when nothing was redacted, so attribute values are not copied.
        """
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, (list, tuple)):
            scrubbed = [self.scrub_value(v) for v in value]
            if all(a is b for a, b in zip(scrubbed, value)):
                return value
            return type(value)(scrubbed) if isinstance(value, list) else tuple(scrubbed)
        return value

    def count(self, pii_type: str, n: int = 1) -> None:
        """Count ``n`` redactions of ``pii_type`` made outside :meth:`scrub` (a value redacted whole)."""
        with self._lock:
            self._counts[pii_type] += n

    def reset(self) -> dict[str, int]:
        """Zero the counters and return what they held."""
        with self._lock:
            counts, self._counts = dict(self._counts), Counter()
        return counts
