"""Every instrument the steps create, declared in one table, and the OpenTelemetry views built from it.

Each step's instruments are declared here as :class:`InstrumentSpec` values, one block per step
(the step module creates them from these). From the table, this module builds one view per
instrument that fixes histogram buckets and keeps only the declared attribute keys, so free text
never becomes a metric attribute, and gives open-ended attributes (skill names) a cardinality limit
beyond which points fold into the ``otel.metric.overflow`` series. The table lives apart from the
steps because a session needs every view when it starts, while a process loads the code of a step
only when the agent first uses it.
"""

# Annotations here are evaluated, not strings (no ``from __future__ import annotations``): a typed
# NamedTuple compiles each string annotation into a ``ForwardRef`` at import.

from typing import Iterable, Literal, NamedTuple

from opentelemetry.metrics import Instrument
from opentelemetry.sdk.metrics import Counter, Histogram, UpDownCounter
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

__all__ = ["InstrumentSpec", "STEP_INSTRUMENTS", "DURATION_BUCKETS_S", "EXECUTION_BUCKETS_S", "build_views"]

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


# --- every step's instruments ------------------------------------------------------------------

ERROR_TYPE = "error.type"
"""OpenTelemetry's attribute for the class of error an operation ended with."""
SKILL_NAME = "skill.name"
OVERFLOW = "otel.metric.overflow"
"""Set on the one series that holds the skills past the cardinality limit."""

# discovery
DISCOVERY_DURATION = InstrumentSpec("discovery", "duration", "histogram", "s", "Time to answer a tool discovery query; its count per outcome is the query count", ("detail_level", "outcome", ERROR_TYPE), DURATION_BUCKETS_S)
DISCOVERY_CONTINUED_QUERIES = InstrumentSpec("discovery", "continued_queries", "counter", "{query}", "Queries after which the agent searched again before any other step", ("outcome",))
DISCOVERY_CACHE_HITS = InstrumentSpec("discovery", "cache_hits", "counter", "{query}", "Discovery queries answered from a cache", ("detail_level",))
DISCOVERY = (DISCOVERY_DURATION, DISCOVERY_CONTINUED_QUERIES, DISCOVERY_CACHE_HITS)

# execution
EXECUTION_DURATION = InstrumentSpec("execution", "duration", "histogram", "s", "Duration of code executions; its count per outcome is the execution count", ("language", "outcome", ERROR_TYPE), EXECUTION_BUCKETS_S)
EXECUTION_MEMORY = InstrumentSpec("execution", "memory", "histogram", "MiBy", "Peak resident memory of executed code", ("language",), MEMORY_BUCKETS_MIB)
EXECUTION_RESULT_SIZE = InstrumentSpec("execution", "result_size", "histogram", "By", "Size of execution results returned to the agent", ("language",), SIZE_BUCKETS_BY)
EXECUTION_OVERHEAD = InstrumentSpec("execution", "overhead", "histogram", "s", "Time the code executor spent around each execution (sandbox, pipes, IPC socket, work folder)", ("language",), EXECUTION_BUCKETS_S)
EXECUTION = (EXECUTION_DURATION, EXECUTION_MEMORY, EXECUTION_RESULT_SIZE, EXECUTION_OVERHEAD)

# sdk
SDK_DURATION = InstrumentSpec("sdk", "duration", "histogram", "s", "Time to generate the tool SDK; its count is the generation count", ("cache_hit", "outcome", ERROR_TYPE), DURATION_BUCKETS_S)
SDK_TOOLS_INCLUDED = InstrumentSpec("sdk", "tools_included", "counter", "{tool}", "Tools included in generated SDKs")
SDK_IPC_HANDLER_SIZE = InstrumentSpec("sdk", "ipc_handler_size", "counter", "By", "Bytes of generated IPC handlers")
SDK = (SDK_DURATION, SDK_TOOLS_INCLUDED, SDK_IPC_HANDLER_SIZE)

# filtering
FILTERING_DURATION = InstrumentSpec("filtering", "duration", "histogram", "s", "Duration of filtering operations; its count is the operation count", ("operation", "outcome", ERROR_TYPE), DURATION_BUCKETS_S)
FILTERING_INPUT_SIZE = InstrumentSpec("filtering", "input_size", "counter", "By", "Bytes that entered filtering operations", ("operation",))
FILTERING_OUTPUT_SIZE = InstrumentSpec("filtering", "output_size", "counter", "By", "Bytes that filtering operations handed on", ("operation",))
FILTERING = (FILTERING_DURATION, FILTERING_INPUT_SIZE, FILTERING_OUTPUT_SIZE)

# skills
SKILLS_DURATION = InstrumentSpec("skills", "duration", "histogram", "s", "Duration of skill runs; its count per skill and outcome is the run count", (SKILL_NAME, "outcome", ERROR_TYPE, OVERFLOW), EXECUTION_BUCKETS_S, open_attributes=True)
SKILLS_CREATED = InstrumentSpec("skills", "created", "counter", "{skill}", "Skills saved", ("language",))
SKILLS_DELETED = InstrumentSpec("skills", "deleted", "counter", "{skill}", "Skills deleted")
SKILLS = (SKILLS_DURATION, SKILLS_CREATED, SKILLS_DELETED)

# security
SECURITY_DETECTIONS = InstrumentSpec("pii", "detections", "counter", "{detection}", "PII values detected, by pattern type", ("pattern",))
SECURITY_TOKENS_CREATED = InstrumentSpec("security", "tokens_created", "counter", "{token}", "Tokens that replaced PII values")
SECURITY_TOKENIZED = InstrumentSpec("security", "tokenized", "counter", "{detection}", "Detected PII values replaced by a token before the model saw them", ("pattern",))
SECURITY_AUDIT_EVENTS = InstrumentSpec("security", "audit_events", "counter", "{event}", "Security audit events", ("event_type", "severity"))
SECURITY = (SECURITY_DETECTIONS, SECURITY_TOKENS_CREATED, SECURITY_TOKENIZED, SECURITY_AUDIT_EVENTS)

STEP_INSTRUMENTS: dict[str, tuple[InstrumentSpec, ...]] = {
    "discovery": DISCOVERY,
    "execution": EXECUTION,
    "sdk": SDK,
    "filtering": FILTERING,
    "skills": SKILLS,
    "security": SECURITY,
}
"""Each step's instruments, by the step's name (its attribute on :class:`~mcp_exec_telemetry.Telemetry`)."""


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
