"""Quickstart: observe a small agent session and print its JSON summary and KPI dashboard.

Run it with ``python examples/quickstart.py``; no collector is needed. The session mimics an agent
that searches for tools, generates their SDK, runs code in two languages (one run times out),
filters big tool results, tokenizes PII and reuses a saved skill.
"""

from __future__ import annotations

import json
import time

from mcp_exec_telemetry import DetailLevel, observe
from mcp_exec_telemetry.dashboard import render


def agent_session(tel) -> None:
    with tel.discovery.search("customer records", DetailLevel.NAME_ONLY) as q:
        q.set_results(0)  # nothing: the agent rephrases
    with tel.discovery.search("customers", DetailLevel.NAME_AND_DESCRIPTION) as q:
        q.set_results(3)
    with tel.sdk.generate(tools_included=3) as g:
        g.set_result(ipc_handler_size_bytes=4_096)
    for language, exit_code, seconds in [("python3", 0, 0.05), ("python3", 0, 0.12), ("javascript", 0, 0.03)]:
        with tel.execution.run(language) as ex:
            time.sleep(seconds)  # the sandboxed code runs here
            ex.set_result(exit_code, memory_mb=48, result_size_bytes=1_800)
    with tel.execution.run("python3") as ex:
        ex.set_timed_out()
    with tel.filtering.operation("filter", input_bytes=250_000) as f:
        f.set_output(4_000)
    with tel.filtering.operation("reduce", input_bytes=40_000) as f:
        f.set_output(600)
    tel.security.pii_detected("email", count=2)
    tel.security.tokens_created(2)
    tel.security.audit("tokenized", "email")
    tel.skills.save("top_enterprise_customers", "python3")
    for _ in range(2):
        with tel.skills.run("top_enterprise_customers"):
            time.sleep(0.01)


def main() -> None:
    with observe(service_name="quickstart-agent", history=False) as tel:
        agent_session(tel)
        summary = tel.summary()
        print(json.dumps(summary, indent=2))
        print(render(tel, width=72))


if __name__ == "__main__":
    main()
