"""Data filtering helpers that measure what they shrink: the design's filtering step, in the agent.

Each helper serializes its input and output as compact JSON (UTF-8), the form in which the data
would otherwise reach the model's context, and reports one ``tel.filtering.operation(kind,
input_bytes)`` with ``set_output(output_bytes)``; ``telemetry`` may be None to only compute. Code
running in the executor gets the same measurement from the generated SDK's ``filter_data``, which
reports over the executor's IPC socket (see :mod:`.executor`).
"""

from __future__ import annotations

import json
from functools import reduce as _reduce
from typing import Any, Callable, Iterable, Sequence

__all__ = ["json_size", "measure", "filter_records", "map_records", "reduce_records", "select_fields"]


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (strings and bytes count as themselves)."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8"))


def measure(telemetry: Any, kind: str, data: Any, fn: Callable[[Any], Any]) -> Any:
    """Run ``fn(data)`` as one filtering operation of ``kind``; returns its result."""
    if telemetry is None:
        return fn(data)
    with telemetry.filtering.operation(kind, json_size(data)) as op:
        out = fn(data)
        op.set_output(json_size(out))
    return out


def filter_records(telemetry: Any, records: Iterable[Any], predicate: Callable[[Any], bool]) -> list[Any]:
    """The records for which ``predicate`` holds (operation ``filter``)."""
    return measure(telemetry, "filter", list(records), lambda rs: [r for r in rs if predicate(r)])


def map_records(telemetry: Any, records: Iterable[Any], fn: Callable[[Any], Any]) -> list[Any]:
    """``fn`` applied to every record (operation ``map``)."""
    return measure(telemetry, "map", list(records), lambda rs: [fn(r) for r in rs])


def reduce_records(telemetry: Any, records: Iterable[Any], fn: Callable[[Any, Any], Any], initial: Any) -> Any:
    """The records folded into one value (operation ``reduce``)."""
    return measure(telemetry, "reduce", list(records), lambda rs: _reduce(fn, rs, initial))


def select_fields(telemetry: Any, records: Iterable[dict[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """Only ``fields`` of each record (operation ``select``)."""
    keep = tuple(fields)
    return measure(telemetry, "select", list(records), lambda rs: [{k: r[k] for k in keep if k in r} for r in rs])
