"""docs/MCP.md's conformance table cannot drift: its "conventions" column must be what the MCP
semantic conventions' model files say (tests/data/semconv_mcp, resolved through ``extends``), with
one row for every attribute of every span and metric, and its "ours" column must be what a
recorded run shows: "yes" rows appear, "no" and "opt-in" rows never appear by default ("when ..."
rows depend on a condition the run does not meet).

Run ``python -m tests.test_mcp_conformance`` to print the conventions' rows for a new revision.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

pytest.importorskip("mcp")

from mcp_exec_telemetry.integrations.mcp import instrument_mcp, uninstrument_mcp
from mcp_exec_telemetry.testing import capture
from tests.mcp_support import DEMO, HttpServer, http_session, points
from tests.servers.otlp import OtlpReceiver

ROOT = Path(__file__).resolve().parent.parent
MODEL = Path(__file__).resolve().parent / "data" / "semconv_mcp"
DOC = ROOT / "docs" / "MCP.md"
SIGNALS = {  # table label -> conventions group
    "CLIENT span": "span.mcp.client",
    "SERVER span": "span.mcp.server",
    "mcp.client.operation.duration": "metric.mcp.client.operation.duration",
    "mcp.server.operation.duration": "metric.mcp.server.operation.duration",
    "mcp.client.session.duration": "metric.mcp.client.session.duration",
    "mcp.server.session.duration": "metric.mcp.server.session.duration",
}


def groups() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(MODEL.glob("*.yaml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            out[group["id"]] = group
    return out


def level(requirement: Any) -> str:
    if requirement is None:
        return "recommended"
    if isinstance(requirement, str):
        return requirement.replace("_", "-")
    ((key, text),) = requirement.items()
    return f"{key.replace('_', ' ')}: {' '.join(str(text).split())}"


def resolve(all_groups: dict[str, dict[str, Any]], group_id: str) -> dict[str, str]:
    group = all_groups[group_id]
    attrs = resolve(all_groups, group["extends"]) if group.get("extends") else {}
    for attribute in group.get("attributes", []):
        attrs[attribute["ref"]] = level(attribute.get("requirement_level"))
    return attrs


def conventions_rows() -> list[tuple[str, str, str]]:
    all_groups = groups()
    rows = []
    for label, group_id in SIGNALS.items():
        group = all_groups[group_id]
        if group["type"] == "span":
            rows.append((label, "(span kind)", group["span_kind"]))
        else:
            rows.append((label, "(instrument)", f"{group['instrument']}, unit {group['unit']}"))
        rows.extend((label, key, text) for key, text in resolve(all_groups, group_id).items())
    return rows


def doc_rows() -> list[tuple[str, str, str, str]]:
    text = DOC.read_text()
    start = text.index("<!-- conformance:start -->")
    end = text.index("<!-- conformance:end -->")
    rows = []
    for line in text[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) != 4 or cells[0] in ("signal", "") or set(cells[0]) <= {"-", ":"}:
            continue
        rows.append(tuple(c.strip("`") if i < 2 else c for i, c in enumerate(cells)))  # type: ignore[misc]
    return rows  # type: ignore[return-value]


def test_the_table_lists_every_attribute_of_every_span_and_metric_with_the_conventions_level() -> None:
    expected = conventions_rows()
    got = [(signal, attribute, conventions) for signal, attribute, conventions, _ in doc_rows()]
    assert got == expected
    for _, _, _, ours in doc_rows():
        assert re.match(r"^(yes|no|opt-in|when)\b", ours), ours


def recorded_run() -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """What each signal carried in a run over streamable HTTP with every method and failures: (kind or unit, attributes)."""
    seen: dict[str, list[tuple[str, dict[str, Any]]]] = {label: [] for label in SIGNALS}
    with OtlpReceiver() as rx, capture() as cap:
        instrument_mcp(cap.telemetry)
        try:
            env = {"OTEL_EXPORTER_OTLP_ENDPOINT": rx.grpc_endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_METRIC_EXPORT_INTERVAL": "200"}
            with HttpServer([*DEMO, "--http"], env=env, port_arg=True) as srv:

                async def scenario() -> None:
                    async with http_session(srv.url) as (session, _):
                        await session.send_ping()
                        await session.list_tools()
                        await session.call_tool("get_weather", {"city": "Paris"})
                        await session.call_tool("flaky_lookup", {"key": "zeta"})
                        await session.get_prompt("summarize_customer", {"customer_id": "C1"})
                        await session.read_resource("demo://readme")  # type: ignore[arg-type]
                        with pytest.raises(Exception):
                            await session.read_resource("demo://missing")  # type: ignore[arg-type]
                        with pytest.raises(Exception), warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            await session.set_logging_level("info")

                anyio.run(scenario)
                rx.wait_for_spans(9, name=None, timeout=20)
            for span in cap.spans():
                if span.kind.name == "CLIENT":
                    seen["CLIENT span"].append(("client", dict(span.attributes)))
            for span in rx.spans():
                if span.kind == "server":
                    seen["SERVER span"].append(("server", dict(span.attributes)))
            data = cap.telemetry.metrics_data()
            for rm in data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name in ("mcp.client.operation.duration", "mcp.client.session.duration"):
                            kind = f"{type(metric.data).__name__.lower()}, unit {metric.unit}"
                            seen[metric.name].extend((kind, dict(p.attributes)) for p in metric.data.data_points)
            for name in ("mcp.server.operation.duration", "mcp.server.session.duration"):
                seen[name].extend(("histogram, unit s", dict(p.attributes)) for p in rx.metric_points(name))
            assert points(cap, "mcp.client.session.duration")
        finally:
            uninstrument_mcp()
    return seen


def test_the_ours_column_is_what_a_recorded_run_shows() -> None:
    seen = recorded_run()
    for label, items in seen.items():
        assert items, f"nothing recorded for {label}"
    for signal, attribute, conventions, ours in doc_rows():
        items = seen[signal]
        if attribute == "(span kind)":
            assert {kind for kind, _ in items} == {conventions}
            continue
        if attribute == "(instrument)":
            assert {kind for kind, _ in items} == {conventions}, signal
            continue
        present = any(attribute in attrs for _, attrs in items)
        if ours.startswith("yes"):
            assert present, f"{signal} {attribute}: the doc says yes, the run never carried it"
        elif ours.startswith(("no", "opt-in")):
            assert not present, f"{signal} {attribute}: the doc says {ours.split()[0]}, the run carried it"


if __name__ == "__main__":  # pragma: no cover
    for row in conventions_rows():
        print("| `{}` | `{}` | {} |  |".format(*row))
