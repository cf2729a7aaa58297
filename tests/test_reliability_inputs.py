"""Issue 5, point 5: bad input, property-based (hypothesis).

Every public record method and handle of the steps and of ``MetricsCollector`` is called with
arbitrary values: NaN, infinities, negatives, huge integers, None, bytes, lists, wrong types,
1 MB strings and lone surrogates, mixed with valid values of each parameter's kind.

* default mode never raises; each invalid value is dropped and counted in
  ``<namespace>.sdk.dropped_inputs`` (a valid call counts nothing); free text, oversized or
  unencodable strings never become metric attributes, and every export still works;
* strict mode raises ``ValueError`` whose message names the offending field, and only then.

Which values are valid is decided here by the rules the README states (durations finite and >= 0,
counts integers in [0, 2**63), flags bools, labels ``[a-z0-9_.-]`` up to 64 characters ...).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mcp_exec_telemetry import MetricsCollector, observe
from mcp_exec_telemetry._guard import _LABEL_RE, _NAME_RE

MAX = 2**63 - 1
MAX_DURATION_MS = 1e12
MB_STRING = "x" * 1_000_000
LEVELS = ("name-only", "name-and-description", "full")

# --- the rules -------------------------------------------------------------------------------


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def valid(kind: str, v: Any) -> bool:
    if kind == "duration":
        return _real(v) and 0 <= v <= MAX_DURATION_MS  # README: at most 1e12 ms (about 31 years)
    if kind == "count":
        if isinstance(v, bool):
            return False
        if isinstance(v, int):
            return 0 <= v <= MAX
        return isinstance(v, float) and v.is_integer() and 0 <= v <= MAX
    if kind == "opt_count":
        return v is None or valid("count", v)
    if kind == "number":
        return _real(v) and (abs(v) <= MAX if isinstance(v, int) else True) and math.isfinite(float(v)) and v >= 0
    if kind == "opt_number":
        return v is None or valid("number", v)
    if kind == "flag":
        return type(v) is bool
    if kind == "exit_code":
        return type(v) is int and -(2**31) <= v < 2**31
    if kind == "opt_exit_code":
        return v is None or valid("exit_code", v)
    if kind == "label":
        return isinstance(v, str) and bool(_LABEL_RE.fullmatch(v) or _LABEL_RE.fullmatch(v.strip().lower()))
    if kind == "opt_label":  # a label that may be left out as "" (audit's pattern_type)
        return v == "" or valid("label", v)
    if kind == "opt_error":  # an error type (an exception's qualified name), None when there was none
        return v is None or valid("name", v)
    if kind == "name":
        return isinstance(v, str) and bool(_NAME_RE.fullmatch(v))
    if kind == "text":
        return isinstance(v, str)
    if kind == "level":
        return isinstance(v, str) and v in LEVELS
    if kind == "outcome":
        return isinstance(v, str) and v in ("success", "failure", "timeout", "error")
    raise AssertionError(kind)


# --- the values ------------------------------------------------------------------------------

NASTY_STRINGS = st.sampled_from(["\ud800", "a\udfffb", MB_STRING, "Python 3", "", " ", "\x00", "é", "A" * 65, "n" * 129, "💥"])
ANY = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.sampled_from([-1, 2**63, 2**63 - 1, 2**31, -(2**31) - 1, 10**30, -0.0, 0.5, 1e308]),
    st.none(),
    st.booleans(),
    st.binary(max_size=16),
    st.text(max_size=16),
    NASTY_STRINGS,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(object),
)
_GOOD: dict[str, st.SearchStrategy] = {
    "duration": st.one_of(st.floats(min_value=0, max_value=1e9), st.integers(0, 10**6)),
    "count": st.integers(0, MAX),
    "number": st.floats(min_value=0, max_value=1e6),
    "flag": st.booleans(),
    "exit_code": st.integers(-(2**31), 2**31 - 1),
    "label": st.sampled_from(["python3", "javascript", "filter", "email", "ssn", "pii_detected", "warning", "map-reduce", "v1.2"]),
    "name": st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-:/]{0,20}", fullmatch=True),
    "text": st.text(max_size=40),
    "level": st.sampled_from(LEVELS),
    "outcome": st.sampled_from(["success", "failure", "timeout"]),
}
_GOOD["opt_count"] = st.one_of(st.none(), _GOOD["count"])
_GOOD["opt_number"] = st.one_of(st.none(), _GOOD["number"])
_GOOD["opt_exit_code"] = st.one_of(st.none(), _GOOD["exit_code"])
_GOOD["opt_label"] = st.one_of(st.just(""), _GOOD["label"])
_GOOD["opt_error"] = st.one_of(st.none(), st.sampled_from(["TimeoutError", "ZeroDivisionError", "mcp.ToolError"]))


def value_of(kind: str) -> st.SearchStrategy:
    """Half the time a valid value of ``kind``, half the time anything at all."""
    return st.one_of(_GOOD[kind], ANY)


# --- the surface -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    params: tuple[tuple[str, str, tuple[str, ...]], ...]  # (parameter, kind, names a strict error may use)
    call: Callable[..., Any]

    def __repr__(self) -> str:
        return self.name


def P(param: str, kind: str, *aliases: str) -> tuple[str, str, tuple[str, ...]]:
    return (param, kind, (param, *aliases))


def _search(tel, keyword, detail_level, count, cache_hit):
    with tel.discovery.search(keyword, detail_level) as q:
        q.set_results(count, cache_hit=cache_hit)


def _run(tel, language, exit_code, memory_mb, result_size_bytes):
    with tel.execution.run(language) as ex:
        ex.set_result(exit_code, memory_mb=memory_mb, result_size_bytes=result_size_bytes)


def _run_timeout(tel, language):
    with tel.execution.run(language) as ex:
        ex.set_timed_out()


def _generate(tel, tools_included, ipc_handler_size_bytes, cache_hit):
    with tel.sdk.generate(tools_included) as g:
        g.set_result(ipc_handler_size_bytes, cache_hit=cache_hit)


def _filter(tel, kind, input_bytes, output_bytes):
    with tel.filtering.operation(kind, input_bytes) as f:
        f.set_output(output_bytes)


def _skill_run(tel, name, success):
    with tel.skills.run(name) as r:
        r.set_success(success)


STEP_TARGETS = [
    Target("discovery.search", (P("keyword", "text"), P("detail_level", "level"), P("count", "count", "result_count"), P("cache_hit", "flag")), _search),
    Target("discovery.record", (P("keyword", "text"), P("detail_level", "level"), P("duration_ms", "duration"), P("result_count", "count"), P("cache_hit", "flag"), P("error_type", "opt_error")),
           lambda tel, **kw: tel.discovery.record(**kw)),
    Target("execution.run", (P("language", "label"), P("exit_code", "exit_code"), P("memory_mb", "opt_number"), P("result_size_bytes", "opt_count")), _run),
    Target("execution.run/timeout", (P("language", "label"),), _run_timeout),
    Target("execution.record", (P("language", "label"), P("duration_ms", "duration"), P("outcome", "outcome"), P("exit_code", "opt_exit_code")),
           lambda tel, **kw: tel.execution.record(**kw)),
    Target("execution.record_memory", (P("language", "label"), P("memory_mb", "number")), lambda tel, **kw: tel.execution.record_memory(**kw)),
    Target("execution.record_result_size", (P("language", "label"), P("size_bytes", "count")), lambda tel, **kw: tel.execution.record_result_size(**kw)),
    Target("sdk.generate", (P("tools_included", "count"), P("ipc_handler_size_bytes", "count"), P("cache_hit", "flag")), _generate),
    Target("sdk.record", (P("generation_time_ms", "duration"), P("tools_included", "count"), P("ipc_handler_size_bytes", "count"), P("cache_hit", "flag")),
           lambda tel, **kw: tel.sdk.record(**kw)),
    Target("filtering.operation", (P("kind", "label", "operation"), P("input_bytes", "count"), P("output_bytes", "count")), _filter),
    Target("filtering.record", (P("operation", "label"), P("input_size_bytes", "count"), P("output_size_bytes", "count"), P("duration_ms", "duration")),
           lambda tel, **kw: tel.filtering.record(**kw)),
    Target("skills.run", (P("name", "name", "skill_name"), P("success", "flag")), _skill_run),
    Target("skills.save", (P("name", "name", "skill_name"), P("language", "label")), lambda tel, **kw: tel.skills.save(**kw)),
    Target("skills.delete", (P("name", "name", "skill_name"),), lambda tel, **kw: tel.skills.delete(**kw)),
    Target("skills.record", (P("skill_name", "name"), P("duration_ms", "duration"), P("success", "flag")), lambda tel, **kw: tel.skills.record(**kw)),
    Target("security.pii_detected", (P("pattern_type", "label"), P("count", "count")), lambda tel, **kw: tel.security.pii_detected(**kw)),
    Target("security.tokens_created", (P("n", "count"),), lambda tel, **kw: tel.security.tokens_created(**kw)),
    Target("security.audit", (P("event_type", "label"), P("pattern_type", "opt_label"), P("severity", "label")), lambda tel, **kw: tel.security.audit(**kw)),
]


def _c_query(m, keyword, detail_level, duration_ms, result_count):
    m.record_discovery_query(keyword, detail_level)
    m.record_discovery_response_time(duration_ms, result_count)


def _c_execution(m, language, duration_ms, success, exit_code, memory_mb, size_bytes):
    m.record_execution_start(language)
    m.record_execution_complete(duration_ms, success, exit_code)
    m.record_execution_memory(memory_mb)
    m.record_result_size(size_bytes)


def _c_timeout(m, language):
    m.record_execution_start(language)
    m.record_execution_timeout()


COLLECTOR_TARGETS = [
    Target("collector.discovery", (P("keyword", "text"), P("detail_level", "level"), P("duration_ms", "duration"), P("result_count", "count")), _c_query),
    Target("collector.execution", (P("language", "label"), P("duration_ms", "duration"), P("success", "flag"), P("exit_code", "opt_exit_code"), P("memory_mb", "number"), P("size_bytes", "count")), _c_execution),
    Target("collector.timeout", (P("language", "label"),), _c_timeout),
    Target("collector.sdk", (P("generation_time_ms", "duration"), P("tools_included", "count"), P("ipc_handler_size_bytes", "count"), P("cache_hit", "flag")),
           lambda m, **kw: m.record_sdk_generation(**kw)),
    Target("collector.filtering", (P("operation", "label"), P("input_size_bytes", "count"), P("output_size_bytes", "count"), P("duration_ms", "duration")),
           lambda m, **kw: m.record_filtering_operation(**kw)),
    Target("collector.skill_created", (P("name", "name", "skill_name"), P("language", "label")), lambda m, **kw: m.record_skill_created(**kw)),
    Target("collector.skill_deleted", (P("name", "name", "skill_name"),), lambda m, **kw: m.record_skill_deleted(**kw)),
    Target("collector.skill_execution", (P("skill_name", "name"), P("duration_ms", "duration"), P("success", "flag")), lambda m, **kw: m.record_skill_execution(**kw)),
    Target("collector.pii", (P("pattern_type", "label"),), lambda m, **kw: m.record_pii_detection(**kw)),
    Target("collector.audit", (P("event_type", "label"), P("pattern_type", "opt_label"), P("severity", "label")), lambda m, **kw: m.record_audit_event(**kw)),
    Target("collector.tokens", (P("count", "count", "n"),), lambda m, **kw: m.record_tokens_created(**kw)),
]


@st.composite
def calls(draw, targets):
    target = draw(st.sampled_from(targets))
    values = {param: draw(value_of(kind)) for param, kind, _names in target.params}
    return target, values


def _invalid(target: Target, values: dict[str, Any]) -> list[tuple[str, ...]]:
    return [names for param, kind, names in target.params if not valid(kind, values[param])]


def _short(values: dict[str, Any]) -> dict[str, str]:
    return {k: (repr(v)[:60] + "...") if len(repr(v)) > 60 else repr(v) for k, v in values.items()}


def _dropped_total(tel) -> int:
    total = 0
    data = tel.metrics_data()
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == "mcp_exec.sdk.dropped_inputs":
                    total += sum(int(p.value) for p in m.data.data_points)
    return total


SETTINGS = settings(
    max_examples=120,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def _check_exports_stay_clean(tel, spans: InMemorySpanExporter) -> None:
    """After everything: no free text in metric attributes, no huge or unencodable strings anywhere."""
    data = tel.metrics_data()
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    for key, value in p.attributes.items():
                        assert isinstance(value, (str, bool, int)), (m.name, key, value)
                        if isinstance(value, str) and (m.name, key) == ("mcp_exec.sdk.dropped_inputs", "reason"):
                            assert len(value) <= 128 and value.isascii(), value[:80]  # the SDK's own words
                        elif isinstance(value, str):
                            # Labels, skill names and error types: identifier-like, never free text.
                            assert _NAME_RE.fullmatch(value), (m.name, key, value[:80])
    for span in spans.get_finished_spans():
        for key, value in (span.attributes or {}).items():
            if isinstance(value, str):
                assert len(value) <= 4096, (span.name, key, len(value))
                value.encode("utf-8")
    text = json.dumps(tel.summary(), ensure_ascii=False)
    text.encode("utf-8")
    assert MB_STRING[:5000] not in text
    tel.export_prometheus()


def _default_mode_property(targets: list[Target], via_collector: bool) -> None:
    spans = InMemorySpanExporter()
    with observe(history=False, span_processors=(SimpleSpanProcessor(spans),)) as tel:
        subject = MetricsCollector(tel) if via_collector else tel

        @SETTINGS
        @given(calls(targets))
        def prop(call):
            target, values = call
            spans.clear()
            before = _dropped_total(tel)
            target.call(subject, **values)  # must never raise
            dropped = _dropped_total(tel) - before
            bad = _invalid(target, values)
            if bad:
                assert dropped >= 1, f"{target.name}{_short(values)}: invalid {bad} not counted as dropped"
            else:
                assert dropped == 0, f"{target.name}{_short(values)}: a valid call counted {dropped} drops"

        prop()
        _check_exports_stay_clean(tel, spans)


def _strict_mode_property(targets: list[Target], via_collector: bool) -> None:
    with observe(history=False, strict=True) as tel:
        subject = MetricsCollector(tel) if via_collector else tel

        @SETTINGS
        @given(calls(targets))
        def prop(call):
            target, values = call
            bad = _invalid(target, values)
            try:
                target.call(subject, **values)
            except ValueError as exc:
                message = str(exc)
                assert bad, f"{target.name}{_short(values)}: valid input raised {exc!r}"
                named = [n for names in bad for n in names if n in message]
                assert named, f"{target.name}{_short(values)}: ValueError {message!r} names none of {bad}"
            except Exception as exc:  # anything but ValueError is a failure
                raise AssertionError(f"{target.name}{_short(values)}: raised {type(exc).__name__}: {exc!r}"[:600]) from None
            else:
                assert not bad, f"{target.name}{_short(values)}: invalid {bad} accepted in strict mode"

        prop()


# Known gaps in the core found by these properties, as strict xfail marks by target (none now).
DEFAULT_GAPS: dict[str, pytest.MarkDecorator] = {}
STRICT_GAPS: dict[str, pytest.MarkDecorator] = {}


def _params(gaps: dict[str, pytest.MarkDecorator]) -> list:
    out = []
    for via, targets in ((False, STEP_TARGETS), (True, COLLECTOR_TARGETS)):
        for t in targets:
            marks = [gaps[t.name]] if t.name in gaps else []
            out.append(pytest.param(t, via, id=t.name, marks=marks))
    return out


@pytest.mark.parametrize("target, via_collector", _params(DEFAULT_GAPS))
def test_default_mode_never_raises_and_counts_every_dropped_input(target, via_collector):
    _default_mode_property([target], via_collector)


@pytest.mark.parametrize("target, via_collector", _params(STRICT_GAPS))
def test_strict_mode_raises_value_error_naming_the_field(target, via_collector):
    _strict_mode_property([target], via_collector)


def test_strict_mode_rejects_a_success_flag_that_is_not_a_bool():
    with observe(history=False, strict=True) as tel:
        m = MetricsCollector(tel)
        for value in (0.0, None, "yes", 1):
            m.record_execution_start("python3")
            with pytest.raises(ValueError, match="success"):
                m.record_execution_complete(5, value)


HUGE_MS = 1e305  # finite, but its nanoseconds overflow a float


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda tel: tel.sdk.record(HUGE_MS, 1), id="sdk.record"),
        pytest.param(lambda tel: tel.discovery.record("k", "full", HUGE_MS, 1), id="discovery.record"),
        pytest.param(lambda tel: tel.execution.record("python3", HUGE_MS, "success"), id="execution.record"),
        pytest.param(lambda tel: tel.filtering.record("filter", 10, 1, HUGE_MS), id="filtering.record"),
        pytest.param(lambda tel: tel.skills.record("s", HUGE_MS), id="skills.record"),
    ],
)
def test_a_huge_finite_duration_is_recorded_or_rejected_with_value_error(call):
    with observe(history=False) as tel:
        call(tel)  # default mode: never raises
    with observe(history=False, strict=True) as tel:
        try:
            call(tel)
        except ValueError as exc:
            assert "ms" in str(exc), exc  # names the duration field (duration_ms, generation_time_ms)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1, 2**64, None, b"\x00", [1], MB_STRING, "\ud800"])
def test_every_handle_tolerates_a_bad_value_in_every_setter(value):
    """The handles' setters one by one, each with the same bad value: default mode never raises."""
    with observe(history=False) as tel:
        with tel.discovery.search("k") as q:
            q.set_results(value)
            q.set_results(1, cache_hit=value)
        with tel.execution.run("python3") as ex:
            ex.set_result(value)
            ex.set_result(0, memory_mb=value)
            ex.set_result(0, result_size_bytes=value)
            ex.set_timed_out()
        with tel.sdk.generate(1) as g:
            g.set_result(value)
            g.set_result(1, cache_hit=value)
        with tel.filtering.operation("filter", 10) as f:
            f.set_output(value)
        with tel.skills.run("s") as r:
            r.set_success(value)
        summary = tel.summary()
        assert summary["execution"]["total_executions"] == 1
        assert _dropped_total(tel) >= 6
