"""smolagents' CodeAgent observed with one line: a scripted model, real code execution, a real MCP server.

The MCP server is ``mcp-server-time`` from PyPI, loaded with ``ToolCollection.from_mcp`` (through
``mcpadapt``, which runs the MCP session on a thread of its own); for the server spans it runs traced
by ``instrument_mcp`` and exports over OTLP to a real receiver. These tests need the ``smolagents``
extra (smolagents with mcp 1.x); ``.ci/run`` runs them in a venv of their own with
``MCP_EXEC_REQUIRE_SMOLAGENTS=1``, where a missing package is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Any, Iterator

import pytest


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is not None:
        return
    reason = f"{module} is not installed (pip install -e '.[smolagents]' mcp-server-time)"
    if os.environ.get("MCP_EXEC_REQUIRE_SMOLAGENTS") == "1":
        pytest.fail(f"{reason}; MCP_EXEC_REQUIRE_SMOLAGENTS=1, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


for _module in ("smolagents", "mcpadapt", "mcp_server_time"):
    _require(_module)

import smolagents.local_python_executor as lpe  # noqa: E402
from mcp import StdioServerParameters  # noqa: E402
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402
from smolagents import CodeAgent, Tool, ToolCollection, tool  # noqa: E402
from smolagents.models import ChatMessage, MessageRole, Model  # noqa: E402

from mcp_exec_telemetry.integrations import mcp as mcp_integration  # noqa: E402
from mcp_exec_telemetry.integrations.smolagents import FILTERING_KIND, instrument_smolagents, is_instrumented, uninstrument_smolagents  # noqa: E402
from mcp_exec_telemetry.testing import capture  # noqa: E402
from tests.servers.otlp import OtlpReceiver  # noqa: E402
from tests.time_server import command  # noqa: E402

class ScriptedModel(Model):
    """A model that answers with the next scripted reply (a thought and a code block)."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model_id="scripted")
        self.replies = list(replies)

    def generate(self, messages: Any, stop_sequences: Any = None, response_format: Any = None, tools_to_call_from: Any = None, **kwargs: Any) -> ChatMessage:
        return ChatMessage(role=MessageRole.ASSISTANT, content=self.replies.pop(0))


def code(thought: str, source: str) -> str:
    return f"Thought: {thought}\n<code>\n{source}\n</code>"


TOKYO = code(
    "Convert noon UTC to Tokyo time, keep only the hour.",
    "import json\n"
    'raw = convert_time(source_timezone="UTC", time="12:00", target_timezone="Asia/Tokyo")\n'
    'hour = json.loads(raw)["target"]["datetime"][11:16]\n'
    "print(hour)",
)
ANSWER = code(
    "Check the zone's name with the server, then answer.",
    'now = get_current_time(timezone="Asia/Tokyo")\n'
    'final_answer(hour + " " + json.loads(now)["timezone"])',
)


def time_server(otlp_endpoint: str | None = None) -> StdioServerParameters:
    cmd, args, env = command(otlp_endpoint)
    return StdioServerParameters(command=cmd, args=args, env=env)


def agent(tools: list[Any], replies: list[str], **kwargs: Any) -> CodeAgent:
    return CodeAgent(tools=tools, model=ScriptedModel(replies), verbosity_level=0, additional_authorized_imports=["json"], **kwargs)


@pytest.fixture(autouse=True)
def _uninstrument() -> Iterator[None]:
    yield
    uninstrument_smolagents()
    mcp_integration.uninstrument_mcp()


def points(cap: Any, name: str) -> list[Any]:
    return cap.metric_points(name)


def test_two_step_code_agent_with_an_mcp_tool_gives_executions_tool_and_server_spans_and_the_token_saving() -> None:
    with OtlpReceiver() as rx, capture() as cap:
        tel = cap.telemetry
        instrument_smolagents(tel)  # the one line
        with ToolCollection.from_mcp(time_server(rx.grpc_endpoint), trust_remote_code=True, structured_output=False) as tools:
            bot = agent(list(tools.tools), [TOKYO, ANSWER])
            answer = bot.run("What time is it in Tokyo at noon UTC?")
        state = bot.python_executor.state
        returned = [state["raw"], state["now"]]  # what the MCP tool calls returned into the code
        observations = [s.observations for s in bot.memory.steps if type(s).__name__ == "ActionStep"]
        summary = cap.summary()
        spans = cap.spans()
        server_spans = rx.wait_for_spans(2, name=None, timeout=15)

    assert answer == "21:00 Asia/Tokyo"
    tool_bytes = [len(r.encode("utf-8")) for r in returned]
    observation_bytes = [len(o.encode("utf-8")) for o in observations]
    assert observations == ["Execution logs:\n21:00\nLast output from code snippet:\nNone", "Execution logs:\nLast output from code snippet:\n21:00 Asia/Tokyo"]
    assert observation_bytes == [57, 63]
    assert tool_bytes[0] > 200 and tool_bytes[1] > 80  # the tools' JSON: times, zones, weekdays, DST flags

    # Executions: one per code action, both succeeded (the second is the final answer).
    execution = summary["execution"]
    assert (execution["total_executions"], execution["successful_executions"], execution["failed_executions"]) == (2, 2, 0)
    assert execution["languages"] == {"python3": 2}
    runs = [s for s in spans if s.name == "execution.run"]
    assert [r.attributes["mcp_exec.execution.result_size_bytes"] for r in runs] == observation_bytes
    assert [p.sum for p in points(cap, "execution.result_size")] == [sum(observation_bytes)]

    # One parent span for the run; both executions under it; it sits under the session span.
    (run,) = [s for s in spans if s.name == "invoke_agent CodeAgent"]
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["mcp_exec.agent.steps"] == 2
    assert [r.parent.span_id for r in runs] == [run.context.span_id] * 2
    assert run.parent.span_id == tel.session_span.get_span_context().span_id
    for r in runs:  # the real durations: inside the run
        assert run.start_time <= r.start_time < r.end_time <= run.end_time

    # Each execution span has its MCP tool call's client span under it, and the server span under that.
    calls = [s for s in spans if s.name in ("tools/call convert_time", "tools/call get_current_time")]
    assert [c.name for c in calls] == ["tools/call convert_time", "tools/call get_current_time"]
    assert [c.kind for c in calls] == [SpanKind.CLIENT] * 2
    assert [c.parent.span_id for c in calls] == [r.context.span_id for r in runs]
    served = {s.parent_span_id: s for s in server_spans if s.kind == "server" and s.name.startswith("tools/call")}
    for c in calls:
        server = served[f"{c.context.span_id:016x}"]
        assert server.name == c.name
        assert server.resource["service.name"] == "mcp-server-time"
        assert server.trace_id == f"{run.context.trace_id:032x}"

    # In-sandbox filtering: each step's tool bytes in, its observation's bytes out, under its execution.
    filters = [s for s in spans if s.name == "filtering.operation"]
    assert [f.parent.span_id for f in filters] == [r.context.span_id for r in runs]
    assert [(f.attributes["mcp_exec.filtering.input_bytes"], f.attributes["mcp_exec.filtering.output_bytes"]) for f in filters] == list(zip(tool_bytes, observation_bytes))
    filtering = summary["filtering"]
    assert filtering["operations"] == {FILTERING_KIND: 2}
    assert (filtering["total_input_bytes"], filtering["total_output_bytes"]) == (sum(tool_bytes), sum(observation_bytes))
    assert filtering["estimated_tokens_saved"] == int((sum(tool_bytes) - sum(observation_bytes)) / 4) > 0

    # The MCP tool listing at start-up is one discovery query that found the server's two tools.
    (query,) = [s for s in spans if s.name == "discovery.search"]
    assert query.attributes["mcp_exec.discovery.result_count"] == 2
    assert summary["discovery"]["total_queries"] == 1
    assert query.parent.span_id == tel.session_span.get_span_context().span_id


def test_a_failing_code_step_is_a_failed_execution_with_the_error_type_of_the_code() -> None:
    failing = code("Divide.", "ratio = 1 / 0")
    with capture() as cap:
        instrument_smolagents(cap.telemetry, instrument_mcp_sessions=False)
        bot = agent([], [failing, code("Give up.", 'final_answer("no ratio")')])
        assert bot.run("Compute the ratio.") == "no ratio"
        steps = [s for s in bot.memory.steps if type(s).__name__ == "ActionStep"]
        summary = cap.summary()
        runs = cap.spans("execution.run")

    assert "ZeroDivisionError" in str(steps[0].error)  # the agent saw the failure and went on
    execution = summary["execution"]
    assert (execution["total_executions"], execution["successful_executions"], execution["failed_executions"]) == (2, 1, 1)
    assert runs[0].attributes["error.type"] == "ZeroDivisionError"
    assert runs[0].status.status_code == StatusCode.ERROR
    assert runs[0].attributes["process.exit.code"] == 1
    assert "error.type" not in runs[1].attributes and runs[1].status.status_code == StatusCode.UNSET
    by_outcome = {(p.attributes["outcome"], p.attributes.get("error.type")): p.count for p in cap.metric_points("execution.duration")}
    assert by_outcome == {("error", "ZeroDivisionError"): 1, ("success", None): 1}
    assert summary["filtering"]["total_operations"] == 0  # no tool returned anything into the code


def test_code_stopped_by_the_executor_time_limit_is_a_timeout() -> None:
    slow = code("Wait.", "import time\ntime.sleep(1.5)")
    with capture() as cap:
        instrument_smolagents(cap.telemetry, instrument_mcp_sessions=False)
        bot = CodeAgent(tools=[], model=ScriptedModel([slow, code("Done.", 'final_answer("late")')]), verbosity_level=0, additional_authorized_imports=["time"], executor_kwargs={"timeout_seconds": 1})
        assert bot.run("Wait a bit.") == "late"
        execution = cap.summary()["execution"]
        (timed_out, ok) = cap.spans("execution.run")
    assert (execution["total_executions"], execution["timeouts"], execution["successful_executions"]) == (2, 1, 1)
    assert timed_out.attributes["mcp_exec.execution.timed_out"] is True
    # smolagents raises at the limit (1 s) but its worker thread finishes the sleep first: the real duration.
    assert 1.4 < (timed_out.end_time - timed_out.start_time) / 1e9 < 10
    assert ok.status.status_code == StatusCode.UNSET


@tool
def list_orders(customer: str) -> list:
    """List every order of a customer.

    Args:
        customer: The customer id.
    """
    return [{"order": f"{customer}-{n:03d}", "amount": 10 + n, "status": "shipped" if n % 3 else "returned"} for n in range(40)]


def test_a_plain_tool_called_from_code_is_an_execute_tool_span_and_its_bytes_are_measured() -> None:
    returned = code(
        "Count returned orders.",
        'orders = list_orders(customer="C7")\nreturned = [o["order"] for o in orders if o["status"] == "returned"]\nlen(returned)',
    )
    with capture() as cap:
        instrument_smolagents(cap.telemetry, instrument_mcp_sessions=False)
        bot = agent([list_orders], [returned, code("Answer.", "final_answer(len(returned))")])
        assert bot.run("How many orders of C7 were returned?") == 14
        first = [s for s in bot.memory.steps if type(s).__name__ == "ActionStep"][0]
        runs = cap.spans("execution.run")
        (span,) = cap.spans("execute_tool list_orders")
        summary = cap.summary()
    tool_bytes = len(json.dumps(list_orders(customer="C7"), separators=(",", ":")).encode())
    observation_bytes = len(first.observations.encode())
    assert first.observations == "Execution logs:\nLast output from code snippet:\n14"
    assert span.parent.span_id == runs[0].context.span_id
    assert (span.attributes["gen_ai.tool.name"], span.attributes["gen_ai.operation.name"]) == ("list_orders", "execute_tool")
    assert (summary["filtering"]["total_input_bytes"], summary["filtering"]["total_output_bytes"]) == (tool_bytes, observation_bytes)
    assert summary["filtering"]["estimated_tokens_saved"] == int((tool_bytes - observation_bytes) / 4)
    assert not cap.spans("execute_tool final_answer")  # the final answer is no tool call of the code


@tool
def count_returned(customer: str) -> int:
    """Count a customer's returned orders (a tool that calls another tool).

    Args:
        customer: The customer id.
    """
    return sum(1 for o in list_orders(customer=customer) if o["status"] == "returned")


def test_a_tool_that_calls_a_tool_counts_only_what_reached_the_code() -> None:
    """The inner call's list went into the outer tool, not into the code: its bytes are no tool bytes of the step."""
    with capture() as cap:
        instrument_smolagents(cap.telemetry, instrument_mcp_sessions=False)
        bot = agent([count_returned], [code("Count.", 'n = count_returned(customer="C7")\nprint(n)'), code("Answer.", "final_answer(n)")])
        assert bot.run("How many orders of C7 were returned?") == 14
        first = [s for s in bot.memory.steps if type(s).__name__ == "ActionStep"][0]
        (outer,) = cap.spans("execute_tool count_returned")
        (inner,) = cap.spans("execute_tool list_orders")
        summary = cap.summary()
    assert inner.parent.span_id == outer.context.span_id  # still traced, under the tool that called it
    (op,) = cap.spans("filtering.operation")
    assert op.attributes["mcp_exec.smolagents.tool_calls"] == 1
    assert (summary["filtering"]["total_input_bytes"], summary["filtering"]["total_output_bytes"]) == (len(b"14"), len(first.observations.encode()))


def test_a_streamed_run_is_one_span_around_its_steps() -> None:
    with capture() as cap:
        instrument_smolagents(cap.telemetry, instrument_mcp_sessions=False)
        bot = agent([], [code("Add.", "x = 2 + 3"), code("Answer.", "final_answer(x)")])
        events = list(bot.run("Add two and three.", stream=True))
        (run,) = cap.spans("invoke_agent CodeAgent")
        runs = cap.spans("execution.run")
    assert type(events[-1]).__name__ == "FinalAnswerStep" and events[-1].output == 5
    assert [r.parent.span_id for r in runs] == [run.context.span_id] * 2


def test_a_run_that_reaches_max_steps_is_a_failed_run_span() -> None:
    with capture() as cap:
        instrument_smolagents(cap.telemetry, instrument_mcp_sessions=False)
        bot = agent([], [code("Think.", "x = 1"), "Out of steps: x is 1"], max_steps=1)
        assert bot.run("Loop.") == "Out of steps: x is 1"  # smolagents asks the model for an answer
        (run,) = cap.spans("invoke_agent CodeAgent")
        assert cap.summary()["execution"]["total_executions"] == 1
    assert run.attributes["error.type"] == "AgentMaxStepsError"
    assert run.status.status_code == StatusCode.ERROR


def test_uninstrument_restores_smolagents_and_records_nothing_more() -> None:
    originals = (CodeAgent.run, CodeAgent._step_stream, Tool.__call__, lpe.timeout)
    with capture() as cap:
        instrument_smolagents(cap.telemetry)
        assert is_instrumented() and mcp_integration.is_instrumented()
        assert CodeAgent.run is not originals[0] and lpe.timeout is not originals[3]
        uninstrument_smolagents()
        assert not is_instrumented() and not mcp_integration.is_instrumented()
        assert (CodeAgent.run, CodeAgent._step_stream, Tool.__call__, lpe.timeout) == originals
        bot = agent([], [code("Answer.", "final_answer(1)")])
        assert bot.run("One.") == 1
        assert cap.summary()["execution"]["total_executions"] == 0
        assert not cap.spans("invoke_agent CodeAgent")


def test_uninstrument_leaves_inherited_methods_inherited_so_later_patches_of_the_base_class_apply() -> None:
    """``CodeAgent.run`` is ``MultiStepAgent.run``: after uninstrument, a patch of the base (as other
    smolagents instrumentations make) must reach ``CodeAgent`` runs, not be shadowed by a stale copy."""
    from smolagents.agents import MultiStepAgent

    own_before = {name for name in ("run", "_step_stream") if name in CodeAgent.__dict__}
    with capture() as cap:
        instrument_smolagents(cap.telemetry, instrument_mcp_sessions=False)
        uninstrument_smolagents()
    assert {name for name in ("run", "_step_stream") if name in CodeAgent.__dict__} == own_before

    original_run = MultiStepAgent.run
    runs_seen: list[str] = []

    def counting_run(self: Any, task: str, *args: Any, **kwargs: Any) -> Any:
        runs_seen.append(task)
        return original_run(self, task, *args, **kwargs)

    MultiStepAgent.run = counting_run  # type: ignore[method-assign]
    try:
        assert agent([], [code("Answer.", "final_answer(3)")]).run("Three.") == 3
    finally:
        MultiStepAgent.run = original_run  # type: ignore[method-assign]
    assert runs_seen == ["Three."]


def test_an_mcp_instrumentation_made_elsewhere_is_left_in_place() -> None:
    with capture() as cap:
        mcp_integration.instrument_mcp(cap.telemetry)
        instrument_smolagents(cap.telemetry)
        uninstrument_smolagents()
        assert mcp_integration.is_instrumented()


def test_telemetry_that_fails_never_breaks_the_agent() -> None:
    class Broken:
        """A telemetry whose every step raises: the agent must not notice."""

        tracer = None

        def __getattr__(self, name: str) -> Any:
            raise RuntimeError("telemetry is down")

    instrument_smolagents(Broken(), instrument_mcp_sessions=False)
    bot = agent([list_orders], [code("Count.", 'n = len(list_orders(customer="C1"))\nprint(n)'), code("Answer.", "final_answer(n)")])
    assert bot.run("How many orders?") == 40


def test_the_example_runs_offline_and_prints_the_summary_and_the_dashboard() -> None:
    import subprocess

    from tests.conftest import repo_root

    out = subprocess.run([sys.executable, str(repo_root() / "examples" / "smolagents_code_agent.py")], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "answer: Asia/Tokyo, Asia/Kolkata, Africa/Nairobi\n" in text
    start = text.index("\n{\n") + 1
    summary = json.loads(text[start : text.index("\n}\n", start) + 2])
    assert summary["service_name"] == "smolagents-code-agent"
    execution = summary["execution"]
    assert (execution["total_executions"], execution["successful_executions"], execution["failed_executions"]) == (3, 2, 1)
    assert summary["discovery"]["total_queries"] == 1
    filtering = summary["filtering"]
    assert filtering["operations"] == {FILTERING_KIND: 1}
    # Eight convert_time answers went into the code; one short list came back to the model.
    assert filtering["total_input_bytes"] > 2000 and filtering["total_output_bytes"] < 120
    assert filtering["estimated_tokens_saved"] == int((filtering["total_input_bytes"] - filtering["total_output_bytes"]) / 4)
    assert "MCP Execution Metrics Dashboard" in text
    assert "Execution Success Rate:    66.7%" in text
    assert f"Token Savings (est):       {filtering['estimated_tokens_saved']:,} tokens" in text


def test_the_instrumentor_reports_into_a_given_session_or_one_of_its_own() -> None:
    from importlib.metadata import entry_points

    from mcp_exec_telemetry.integrations.agents_instrumentor import SmolagentsInstrumentor

    (ep,) = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "smolagents"]
    assert ep.load() is SmolagentsInstrumentor  # what opentelemetry-instrument finds
    assert list(SmolagentsInstrumentor().instrumentation_dependencies()) == ["smolagents >= 1.26"]
    with capture() as cap:
        SmolagentsInstrumentor().instrument(telemetry=cap.telemetry, instrument_mcp_sessions=False)
        assert agent([], [code("Answer.", "final_answer(7)")]).run("Seven.") == 7
        SmolagentsInstrumentor().uninstrument()
        assert agent([], [code("Answer.", "final_answer(8)")]).run("Eight.") == 8
        assert cap.summary()["execution"]["total_executions"] == 1
    assert not is_instrumented()

    SmolagentsInstrumentor().instrument(instrument_mcp_sessions=False)  # no session given: one from the environment
    try:
        owned = SmolagentsInstrumentor._owned
        assert owned is not None and not owned.closed
        assert agent([], [code("Answer.", "final_answer(9)")]).run("Nine.") == 9
        assert owned.summary()["execution"]["total_executions"] == 1
    finally:
        SmolagentsInstrumentor().uninstrument()
    assert owned.closed and not is_instrumented()
