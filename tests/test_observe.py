"""observe(): private providers, the session span, disabled mode, shutdown, threads and asyncio."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from opentelemetry import metrics, trace

from mcp_exec_telemetry import Telemetry, observe
from mcp_exec_telemetry.testing import capture


def test_observe_leaves_the_host_global_providers_alone():
    before_t, before_m = trace.get_tracer_provider(), metrics.get_meter_provider()
    with observe(history=False) as tel:
        assert trace.get_tracer_provider() is before_t
        assert metrics.get_meter_provider() is before_m
        assert tel.tracer_provider is not before_t


def test_service_name_and_resource_attributes_from_arguments_and_environment(monkeypatch):
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=agents")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    with observe(history=False) as tel:
        attrs = dict(tel.resource.attributes)
    assert attrs["service.name"] == "from-env"
    assert attrs["deployment.environment"] == "staging" and attrs["team"] == "agents"
    with observe(history=False, service_name="from-arg", resource_attributes={"team": "core"}) as tel:
        assert tel.resource.attributes["service.name"] == "from-arg"
        assert tel.resource.attributes["team"] == "core"


def test_unknown_option_is_a_clear_type_error():
    with pytest.raises(TypeError, match="unknown telemetry option"):
        observe(servce_name="typo")


def test_disabled_sdk_records_nothing_at_close_to_no_cost(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with observe() as tel:
        assert tel.enabled is False
        with tel.discovery.search("x") as q:
            q.set_results(3)
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        tel.security.pii_detected("email")
        assert tel.summary()["discovery"]["total_queries"] == 0
        assert tel.metrics_data() is None
        n = 20000
        t0 = time.perf_counter()
        for _ in range(n):
            with tel.execution.run("python3") as ex:
                ex.set_result(0)
        per_op_us = (time.perf_counter() - t0) / n * 1e6
    assert per_op_us < 5  # the benchmark measures the real figure; this guards gross regressions


def test_spans_nest_under_the_session_span_and_end_at_exit():
    with capture() as cap:
        with cap.telemetry.filtering.operation("filter", 10) as f:
            f.set_output(1)
        session = cap.telemetry.session_span
    names = [s.name for s in cap.spans()]
    assert names == ["filtering.operation", "session"]
    filt, sess = cap.spans()
    assert filt.parent.span_id == sess.context.span_id
    assert filt.context.trace_id == sess.context.trace_id
    assert session.get_span_context().span_id == sess.context.span_id


def test_exit_flushes_and_shuts_down_even_when_the_block_raises():
    with pytest.raises(RuntimeError):
        with capture() as cap:
            with cap.telemetry.execution.run("python3") as ex:
                ex.set_result(0)
            raise RuntimeError("agent crashed")
    tel = cap.telemetry
    assert tel.closed
    assert tel.summary()["execution"]["total_executions"] == 1
    (session,) = cap.spans("session")
    assert session.attributes["error.type"] == "RuntimeError"
    tel.shutdown()  # idempotent


def test_records_after_shutdown_do_not_raise():
    tel = Telemetry(history=False)
    tel.shutdown()
    with tel.execution.run("python3") as ex:
        ex.set_result(0)
    tel.security.pii_detected("email")


def test_threads_record_exact_totals():
    with capture() as cap:
        tel = cap.telemetry

        def work() -> None:
            for _ in range(2000):
                with tel.execution.run("python3") as ex:
                    ex.set_result(0)
                tel.security.pii_detected("email")

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        s = cap.summary()
    assert s["execution"]["total_executions"] == 8000
    assert s["security"]["patterns"] == {"email": 8000}


def test_asyncio_tasks_get_their_own_parent_spans():
    async def agent(tel: Telemetry, i: int) -> None:
        with tel.tracer.start_as_current_span(f"task-{i}"):
            async with tel.discovery.search(f"k{i}") as q:
                await asyncio.sleep(0.001)
                q.set_results(1)

    async def main(tel: Telemetry) -> None:
        await asyncio.gather(*(agent(tel, i) for i in range(50)))

    with capture() as cap:
        asyncio.run(main(cap.telemetry))
        assert cap.summary()["discovery"]["total_queries"] == 50
    spans = cap.spans()
    by_id = {s.context.span_id: s for s in spans}
    searches = [s for s in spans if s.name == "discovery.search"]
    assert len(searches) == 50
    for s in searches:
        parent = by_id[s.parent.span_id]
        assert parent.name == f"task-{s.attributes['mcp_exec.discovery.keyword'][1:]}"


def test_set_global_installs_providers_only_when_none_is_set():
    import subprocess
    import sys

    # A fresh interpreter: OpenTelemetry's global providers can be set only once per process.
    code = """
from opentelemetry import metrics, trace
from mcp_exec_telemetry import observe
with observe(history=False, set_global=True) as first:
    assert trace.get_tracer_provider() is first.tracer_provider
    assert metrics.get_meter_provider() is first.meter_provider
    with observe(history=False, set_global=True) as second:
        assert trace.get_tracer_provider() is first.tracer_provider
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert "already set; leaving it in place" in out.stderr


@pytest.mark.parametrize("bad", ["", "_a", "1agent", "agent-x", "agent x", "agent\n", "caf\u00e9", "a" * 64, 42, None])
def test_a_namespace_opentelemetry_would_refuse_is_a_value_error_naming_the_rule(bad: object) -> None:
    # "_a" passed the old check, and OpenTelemetry then raised its own exception out of observe().
    with pytest.raises(ValueError, match=r"namespace must be a letter then at most 62 letters, digits or underscores"):
        observe(history=False, namespace=bad)


@pytest.mark.parametrize("good", ["agent", "a_", "A_1", "a" * 63])
def test_a_namespace_of_a_letter_then_letters_digits_and_underscores_names_every_instrument(good: str) -> None:
    with observe(history=False, namespace=good) as tel:
        tel.skills.record("s", 1.0)
        names = {m.name for m in tel.metrics_data().resource_metrics[0].scope_metrics[0].metrics}
    assert f"{good.lower()}.skills.duration" in names  # OpenTelemetry names are case-insensitive


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scrub_patterns": {"ticket": "TICKET-("}}, "extra pattern 'ticket' is not a regular expression"),
        ({"scrub_patterns": {"ticket": 42}}, "extra pattern 'ticket' is not a regular expression"),
        ({"span_processors": "BatchSpanProcessor"}, "span_processors must be a list or tuple"),
        ({"span_processors": [object()]}, "span_processors holds .* which has no on_start, on_end, shutdown, force_flush"),
        ({"metric_exporters": [object()]}, "metric_exporters holds .* which has no export, shutdown, force_flush"),
    ],
)
def test_a_bad_pattern_processor_or_exporter_is_a_value_error_at_observe_naming_it(options: dict, message: str) -> None:
    # Before: a bad pattern raised re.error out of observe(); a bad processor was taken, failed on
    # every span and printed a traceback at interpreter exit.
    with pytest.raises(ValueError, match=message):
        observe(history=False, **options)


def test_every_declared_instrument_is_created_by_its_step_with_its_declared_name_unit_and_kind():
    from opentelemetry.metrics import Counter, Histogram

    from mcp_exec_telemetry.steps import ALL_STEPS
    from mcp_exec_telemetry.views import STEP_INSTRUMENTS

    kinds = {"histogram": Histogram, "counter": Counter}
    with observe(history=False, namespace="ns") as tel:
        for step_class in ALL_STEPS:
            step = getattr(tel, step_class.name)
            assert step.SPECS, step_class.name
            for spec in step.SPECS:
                instrument = getattr(step, "_" + spec.measure)  # a step that forgets one fails here
                assert isinstance(instrument, kinds[spec.kind]), spec
                assert (instrument.name, instrument.unit) == (spec.name("ns"), spec.unit)
            # the views are built from the table, before the step's code is loaded: the same block
            assert step.SPECS is STEP_INSTRUMENTS[step_class.name]
    assert sorted(STEP_INSTRUMENTS) == sorted(step.name for step in ALL_STEPS)


def test_a_step_is_built_once_when_first_used_even_by_threads_racing_for_it():
    with observe(history=False) as tel:
        assert "execution" not in vars(tel)
        assert {"discovery", "execution", "sdk", "filtering", "skills", "security"} <= set(dir(tel))
        barrier = threading.Barrier(8)
        seen: list[object] = []

        def first_use() -> None:
            barrier.wait()
            seen.append(tel.execution)

        threads = [threading.Thread(target=first_use) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(seen) == 8 and all(step is seen[0] for step in seen)
        assert vars(tel)["execution"] is seen[0]  # later lookups are a plain attribute
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
        assert tel.get_execution_metrics().total_executions == 1
        with pytest.raises(AttributeError, match="no attribute 'executon'"):
            tel.executon  # a typo is still an AttributeError, not a step


def test_the_session_ends_without_waiting_for_a_step_being_built_and_that_step_drops_its_records(monkeypatch):
    """A SIGTERM's shutdown runs on a thread of its own while the agent's thread may be building a
    step: the end must not wait for it, and the step, once built, must not record into closed providers."""
    from mcp_exec_telemetry import steps as steps_package
    from mcp_exec_telemetry import telemetry as telemetry_module

    building, release = threading.Event(), threading.Event()
    real = steps_package.step_class("execution")

    class SlowToBuild(real):  # type: ignore[misc, valid-type]
        def __init__(self, session):
            building.set()
            release.wait(10)
            super().__init__(session)

    monkeypatch.setattr(telemetry_module, "step_class", lambda name: SlowToBuild if name == "execution" else steps_package.step_class(name))
    tel = observe(history=False)
    tel.__enter__()
    got: list[object] = []
    builder = threading.Thread(target=lambda: got.append(tel.execution))
    builder.start()
    assert building.wait(5)
    ender = threading.Thread(target=tel.shutdown)
    ender.start()
    ender.join(5)
    assert not ender.is_alive()  # ended while the step was still being built
    release.set()
    builder.join(5)
    with got[0].run("python3") as ex:
        ex.set_result(0)
    assert tel.dropped_after_close == (1, 1)  # the span and the duration, counted, not recorded
    assert tel.get_execution_metrics().total_executions == 0


def test_a_step_first_used_after_the_session_ended_drops_and_counts_its_records():
    tel = observe(history=False)
    with tel:
        with tel.execution.run("python3") as ex:
            ex.set_result(0)
    assert "skills" not in vars(tel) and "filtering" not in vars(tel)
    with tel.skills.run("late-skill"):  # one span, one duration
        pass
    assert tel.dropped_after_close == (1, 1)
    tel.filtering.record("filter", 10, 1, 1.0)  # one span; duration, input and output sizes
    assert tel.dropped_after_close == (2, 4)
    assert tel.get_skill_metrics().total_executions == 0
    assert tel.get_filtering_metrics().total_operations == 0
