"""A small MCP server for the demo and the tests: ``python -m mcp_exec_telemetry.integrations.demo_server``.

It serves over stdio (or streamable HTTP on 127.0.0.1 with ``--http PORT``, the legacy SSE
transport with ``--sse PORT``) with the SDK's ``MCPServer`` (``FastMCP`` in mcp 1.x) and is traced by
:func:`~mcp_exec_telemetry.integrations.mcp.instrument_mcp` into a session of its own
(``service.name`` ``mcp-demo-server``), which exports over OTLP when ``OTEL_EXPORTER_OTLP_ENDPOINT``
is set. Its tools are deterministic: ``list_customers`` and ``get_orders`` return large records
that carry PII (emails, phone numbers, card numbers), ``get_weather`` is small, and ``flaky_lookup``
answers with a tool error for unknown keys. A prompt (``summarize_customer``) and a resource
(``demo://readme``) let clients exercise ``prompts/*`` and ``resources/*``.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Ken", "Margaret", "Linus", "Frances"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Thompson", "Hamilton", "Torvalds", "Allen"]
# Luhn-valid test card numbers (the public test numbers of the card networks).
CARDS = ["4111 1111 1111 1111", "5555 5555 5555 4444", "4012 8888 8888 1881", "3782 822463 10005"]
REGIONS = ["north", "south", "east", "west"]


def customers(count: int = 200) -> list[dict[str, Any]]:
    """``count`` synthetic customers; every fifth is an enterprise customer."""
    out = []
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
        out.append(
            {
                "id": f"C{i:04d}",
                "name": f"{first} {last}",
                "email": f"{first.lower()}.{last.lower()}{i}@example.com",
                "phone": f"+1-555-{100 + i % 900:03d}-{1000 + i:04d}",
                "region": REGIONS[i % len(REGIONS)],
                "tier": "enterprise" if i % 5 == 0 else "standard",
                "lifetime_value": 1000 + (i * 7919) % 50000,
                "notes": "Customer since 2019; prefers email contact. " * 3,
            }
        )
    return out


def orders(customer_id: str, count: int = 50) -> list[dict[str, Any]]:
    seed = sum(ord(c) for c in customer_id)
    return [
        {
            "order_id": f"{customer_id}-O{n:03d}",
            "amount": round(10 + ((seed + n * 37) % 990) + 0.99, 2),
            "status": ["shipped", "delivered", "returned", "pending"][(seed + n) % 4],
            "card": CARDS[(seed + n) % len(CARDS)],
        }
        for n in range(count)
    ]


def build_server(port: int | None = None) -> Any:
    options: dict[str, Any] = {"instructions": "Demo tools for mcp-exec-telemetry", "log_level": "WARNING"}
    try:
        from mcp.server.mcpserver import MCPServer as Server
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError:  # mcp 1.x: FastMCP, which takes its HTTP address at construction
        from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]
        from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

        if port is not None:
            options.update(host="127.0.0.1", port=port)
    server = Server("mcp-exec-demo", **options)

    @server.tool(description="List customer records (large: id, name, email, phone, region, tier, lifetime value, notes)")
    def list_customers(limit: int = 200) -> list[dict[str, Any]]:
        return customers(limit)

    @server.tool(description="Get the order history of one customer, with the card used for each order")
    def get_orders(customer_id: str, limit: int = 50) -> list[dict[str, Any]]:
        return orders(customer_id, limit)

    @server.tool(description="Get the current weather of a city")
    def get_weather(city: str) -> dict[str, Any]:
        return {"city": city, "temperature_c": 21, "conditions": "clear"}

    @server.tool(description="Look up a key in the reference table; unknown keys fail")
    def flaky_lookup(key: str) -> str:
        table = {"alpha": "first", "beta": "second"}
        if key not in table:
            raise ToolError(f"unknown key {key}")
        return table[key]

    @server.prompt(description="Ask for a one-paragraph summary of a customer")
    def summarize_customer(customer_id: str) -> str:
        return f"Summarize customer {customer_id} in one paragraph, without contact details."

    @server.resource("demo://readme", description="What this server is for")
    def readme() -> str:
        return "Demo tools for mcp-exec-telemetry: customers, orders, weather, lookups."

    return server


def _http_port(argv: list[str]) -> int | None:
    for flag in ("--http", "--sse"):
        if flag in argv:
            return int(argv[argv.index(flag) + 1])
    return None


def main() -> int:
    from mcp_exec_telemetry import observe
    from mcp_exec_telemetry.integrations.mcp import instrument_mcp

    # Closing stdin is how a stdio client asks us to stop; a SIGTERM must still flush the spans.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    options: dict[str, Any] = {"service_name": "mcp-demo-server", "history": False, "export_timeout_ms": 1500}
    with observe(**options) as tel:
        instrument_mcp(tel, capture_content=os.environ.get("MCP_EXEC_CAPTURE_CONTENT") == "1")
        port = _http_port(sys.argv[1:])
        transport = "sse" if "--sse" in sys.argv[1:] else "streamable-http"  # --sse: the legacy SSE transport
        server = build_server(port)
        try:
            if port is None:
                server.run("stdio")
            elif type(server).__module__.startswith("mcp.server.fastmcp"):  # mcp 1.x FastMCP
                server.run(transport)
            else:
                server.run(transport, host="127.0.0.1", port=port)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
