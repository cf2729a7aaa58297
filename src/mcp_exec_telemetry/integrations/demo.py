"""The demo: a scripted agent (no LLM, no network) running the whole code-execution loop with MCP.

``python -m mcp_exec_telemetry.integrations.demo`` (and ``mcp-exec-telemetry demo``) starts the
demo MCP server (:mod:`.demo_server`) over stdio and, observed by one telemetry session:

1. lists and searches the server's tools at the three detail levels (discovery);
2. generates the Python and JavaScript tool SDK, then again from its cache (SDK generation);
3. runs Python code that calls tools through the SDK and filters their large results inside the
   sandbox, and JavaScript code that does the same (execution, filtering, ``tools/call`` spans
   under the execution span, server spans continuing the trace);
4. tokenizes the PII left in the code's output before it would reach the model (security);
5. saves the Python code as a skill, finds it again and reuses it twice (skills).

It then prints the KPI dashboard and the JSON summary and writes the session to the metrics
history. With ``--otlp-endpoint`` (or ``OTEL_EXPORTER_OTLP_ENDPOINT``) the agent's and the
server's traces and the agent's metrics are exported there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "run_demo", "ANALYSIS_PY", "WEATHER_JS"]

ANALYSIS_PY = '''import json
import mcp_tools as t

customers = t.list_customers(limit=200)
enterprise = t.filter_data("filter", customers, lambda cs: [c for c in cs if c["tier"] == "enterprise"])
top = t.filter_data("reduce", enterprise, lambda cs: sorted(cs, key=lambda c: -c["lifetime_value"])[:3])
orders = t.get_orders(customer_id=top[0]["id"], limit=50)
spend = t.filter_data("reduce", orders, lambda os_: round(sum(o["amount"] for o in os_ if o["status"] != "returned"), 2))
try:
    t.flaky_lookup(key="gamma")
    lookup = "found"
except t.ToolError:
    lookup = "missing"
print(json.dumps({
    "enterprise_customers": len(enterprise),
    "top": [{"id": c["id"], "name": c["name"], "email": c["email"], "phone": c["phone"]} for c in top],
    "top_customer_spend": spend,
    "last_card": orders[0]["card"],
    "lookup": lookup,
}))
'''

WEATHER_JS = '''const t = require("mcp_tools");
(async () => {
  const customers = await t.listCustomers({ limit: 40 });
  const regions = await t.filterData("map", customers, (cs) => {
    const counts = {};
    for (const c of cs) counts[c.region] = (counts[c.region] || 0) + 1;
    return counts;
  });
  const weather = await t.getWeather({ city: "Lisbon" });
  console.log(JSON.stringify({ regions, weather: weather.conditions }));
})().catch((e) => { console.error(e); process.exit(1); });
'''


def _server_parameters(otlp_endpoint: str | None, protocol: str | None) -> Any:
    from mcp import StdioServerParameters

    env = {"PYTHONUNBUFFERED": "1"}
    if otlp_endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_endpoint
        if protocol:
            env["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
    return StdioServerParameters(command=sys.executable, args=["-m", "mcp_exec_telemetry.integrations.demo_server"], env=env)


async def run_demo(tel: Any, workdir: Path, log: Any = None) -> dict[str, Any]:
    """Run the scripted agent inside the telemetry session ``tel``; returns what it found."""
    from mcp import ClientSession, stdio_client

    from ..pii import PiiTokenizer
    from .discovery import ToolDiscovery
    from .executor import CodeExecutor
    from .filtering import select_fields
    from .mcp import ToolBridge, instrument_mcp, uninstrument_mcp
    from .sdkgen import SdkGenerator
    from .skills import SkillManager

    def say(text: str) -> None:
        if log is not None:
            print(text, file=log)

    cfg = tel.config
    instrument_mcp(tel)
    try:
        async with stdio_client(_server_parameters(cfg.otlp_endpoint, cfg.otlp_protocol), errlog=sys.stderr) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                # 1. discovery
                discovery = await ToolDiscovery.from_session(session, tel)
                say(f"discovery: {len(discovery.tools)} tools listed")
                names = discovery.search("customers", "name-only")
                # 2. SDK (acting on what was found: the query above was a hit)
                generator = SdkGenerator(workdir / "sdk", tel)
                sdk = generator.generate(discovery.tools)
                generator.generate(discovery.tools)  # the same tools again: answered from the cache
                say(f"sdk: {len(sdk.tools)} tools -> {sdk.python_path.name}, {sdk.javascript_path.name}")
                described = discovery.search("customer orders", "name-and-description")
                full = discovery.search("orders", "full", limit=1)
                say(f"discovery: 'customers' -> {[t['name'] for t in names]}; 'customer orders' -> {len(described)} tools; 'orders' -> {full[0]['name']}")
                # 3. execution
                executor = CodeExecutor(tel, sdk_dir=sdk.directory, tool_handler=ToolBridge(session), timeout_s=30, memory_limit_mb=512)
                analysis = await executor.execute_async(ANALYSIS_PY, "python3")
                if not analysis.success:
                    raise RuntimeError(f"analysis failed ({analysis.exit_code}): {analysis.stderr[-2000:]}")
                say(f"execution: python3 exit {analysis.exit_code}, {analysis.tool_calls} tool calls, {analysis.duration_ms:.0f} ms, peak {analysis.memory_mb:.1f} MiB")
                regions = await executor.execute_async(WEATHER_JS, "javascript")
                if not regions.success:
                    raise RuntimeError(f"javascript failed ({regions.exit_code}): {regions.stderr[-2000:]}")
                say(f"execution: javascript exit {regions.exit_code}, {regions.tool_calls} tool calls, {regions.duration_ms:.0f} ms, peak {regions.memory_mb:.1f} MiB")
                # 4. PII: tokenize what the code printed before it would reach the model
                tokenizer = PiiTokenizer(telemetry=tel)
                safe, token_map = tokenizer.tokenize_json(analysis.json())
                contacts = select_fields(tel, safe["top"], ["id", "email"])
                say(f"security: {len(token_map)} PII values tokenized; model sees {json.dumps(contacts[0])}")
                # 5. skills
                discovery.search("customers", "name-only")  # asked again: answered from the cache
                skills = SkillManager(workdir / "skills", tel, executor)
                skills.save("top_enterprise_customers", ANALYSIS_PY, "python3", description="Top enterprise customers and their spend", tags=["customers", "enterprise"])
                skills.save("regions_and_weather", WEATHER_JS, "javascript", description="Customers per region and the weather", tags=["customers", "regions"])
                found = skills.search("enterprise customers")
                reuse = [await skills.run_async(found[0].name) for _ in range(2)]
                say(f"skills: saved 2, found {found[0].name!r}, reused {sum(r.success for r in reuse)}/2 times")
                return {
                    "tools": [t.name for t in discovery.tools],
                    "analysis": safe,
                    "regions": regions.json(),
                    "tokens": len(token_map),
                    "skill_runs": [r.success for r in reuse],
                }
    finally:
        uninstrument_mcp()


def _parser() -> argparse.ArgumentParser:
    from ..cli import _Parser  # a usage error is one line, as for every other command

    p = _Parser(prog="mcp-exec-telemetry demo", description="Run a scripted agent against a real MCP server over stdio and show its telemetry.")
    p.add_argument("--otlp-endpoint", default=None, help="export traces and metrics over OTLP here (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    p.add_argument("--otlp-protocol", default=None, choices=("grpc", "http/protobuf"))
    p.add_argument("--history", default=None, help="metrics history folder (default: MCP_EXEC_METRICS_DIR or .mcp_exec/metrics)")
    p.add_argument("--no-history", action="store_true", help="do not write the session to the history")
    p.add_argument("--workdir", default=None, help="folder for the generated SDK and the skills (default: a new temporary folder)")
    p.add_argument("--json", action="store_true", help="print only the JSON summary")
    p.add_argument("--width", type=int, default=None, help="dashboard width")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .. import observe

    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mcp-exec-demo-"))
    options: dict[str, Any] = {"service_name": "mcp-exec-demo"}
    if args.otlp_endpoint:
        options["otlp_endpoint"] = args.otlp_endpoint
    if args.otlp_protocol:
        options["otlp_protocol"] = args.otlp_protocol
    options["history"] = False if args.no_history else (args.history or True)
    log = None if args.json else sys.stdout
    with observe(**options) as tel:
        asyncio.run(run_demo(tel, workdir, log))
        summary = tel.summary()
        if not args.json:
            print()
            print(_dashboard(summary, args.width))
            print()
        print(json.dumps(summary, indent=2))
    if not args.json:
        if tel.saved_path is not None:
            print(f"\nsession written to {tel.saved_path}")
        if tel.config.otlp_endpoint:
            print(f"traces and metrics exported to {tel.config.otlp_endpoint}")
    return 0


def _dashboard(summary: dict[str, Any], width: int | None) -> str:
    try:
        from ..dashboard import render
    except ImportError:  # pragma: no cover - the dashboard ships with the package
        return "\n".join(f"{step}: {json.dumps(values)}" for step, values in summary.items() if isinstance(values, dict))
    return render(summary, width=width)


if __name__ == "__main__":
    raise SystemExit(main())
