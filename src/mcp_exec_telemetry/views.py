"""Instrument declarations and the OpenTelemetry views built from them.

Each step module declares its instruments as :class:`InstrumentSpec` values. From those, this module
builds one view per instrument that fixes histogram buckets and keeps only the declared attribute
keys, so free text never becomes a metric attribute, and gives open-ended attributes (skill names)
a cardinality limit beyond which points fold into the ``otel.metric.overflow`` series.
"""

# Annotations here are evaluated, not strings (no ``from __future__ import annotations``): a typed
# NamedTuple compiles each string annotation into a ``ForwardRef`` at import.

from typing import Iterable, Literal, NamedTuple

from opentelemetry.metrics import Instrument
from opentelemetry.sdk.metrics import Counter, Histogram, UpDownCounter
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

__all__ = ["InstrumentSpec", "DURATION_BUCKETS_S", "EXECUTION_BUCKETS_S", "build_views"]

Kind = Literal["counter", "histogram", "updown"]

# Seconds, per OpenTelemetry's conventions for durations.
DURATION_BUCKETS_S: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Code execution: includes the design's 100 ms, 500 ms and 1000 ms boundaries, and the long tail.
EXECUTION_BUCKETS_S: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# Memory of an executed child process in MiB.
MEMORY_BUCKETS_MIB: tuple[float, ...] = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# Result sizes in bytes.
SIZE_BUCKETS_BY: tuple[float, ...] = (256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)

_TYPES: dict[Kind, type[Instrument]] = {"counter": Counter, "histogram": Histogram, "updown": UpDownCounter}


class InstrumentSpec(NamedTuple):
    """One instrument of a step: ``<namespace>.<group>.<measure>`` with its unit and attributes.

    ``group`` is the step's name, except for the few series the design names itself
    (``pii.detections``, ``context.tokens_saved``, ``skill.reuse_ratio``). A named tuple rather
    than a dataclass: every process that imports the package builds this class, and a named tuple
    costs a quarter of what ``@dataclass`` does to create.
    """

    group: str
    measure: str
    kind: Kind
    unit: str
    description: str
    attributes: tuple[str, ...] = ()
    boundaries: tuple[float, ...] | None = None
    open_attributes: bool = False
    """True when an attribute is open-ended (skill names): the step keeps at most the session's
    cardinality limit of distinct values and folds the rest into ``otel.metric.overflow``."""

    def name(self, namespace: str) -> str:
        return f"{namespace}.{self.group}.{self.measure}"


def build_views(namespace: str, specs: Iterable[InstrumentSpec], cardinality_limit: int) -> list[View]:
    """One view per declared instrument: buckets, attribute allow-list, cardinality limit."""
    views = []
    for spec in specs:
        aggregation = ExplicitBucketHistogramAggregation(spec.boundaries) if spec.boundaries is not None else None
        views.append(
            View(
                instrument_type=_TYPES[spec.kind],
                instrument_name=spec.name(namespace),
                attribute_keys=set(spec.attributes),
                aggregation=aggregation,
                # Steps fold open-ended values past the limit themselves (keeping the outcome); the
                # SDK's limit is a backstop for the combinations of kept names and outcomes.
                aggregation_cardinality_limit=cardinality_limit * 8 if spec.open_attributes else None,
            )
        )
    return views
