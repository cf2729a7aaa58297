"""Content capture (MCP tool arguments and results) is opt-in and scrubbed by the same engine.

A real MCP server (the demo server, over stdio) receives arguments that hold the kinds the
detector gained -- an IBAN, a PEM key in a JSON string, a quoted password, a credential URL --
and the captured ``gen_ai.tool.call.arguments`` hold none of them.  Without ``capture_content``
no argument or result is recorded at all.
"""

from __future__ import annotations

import pytest

pytest.importorskip("mcp")

import anyio  # noqa: E402

from mcp_exec_telemetry.integrations.mcp import instrument_mcp, uninstrument_mcp  # noqa: E402
from mcp_exec_telemetry.testing import capture  # noqa: E402
from tests.mcp_support import DEMO, stdio_session  # noqa: E402

SECRETS = {
    "iban": "DE89 3704 0044 0532 0130 00",
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEpQIBAAKCAQEAn6/O8li+SX4m98LLYt/PKSzEmQ++ZBD7Loh9P13f4yQ92EF3\n-----END RSA PRIVATE KEY-----",
    "password": "correct horse battery staple",
    "dsn": "postgresql://admin:s3cr3t-pw@localhost/app",
}


def _call(capture_content: bool):
    with capture() as cap:
        instrument_mcp(cap.telemetry, capture_content=capture_content)
        try:
            async def scenario() -> None:
                async with stdio_session(DEMO) as session:
                    await session.call_tool("get_weather", {"city": f"Oslo, IBAN {SECRETS['iban']}",
                                                            "note": {"key": SECRETS["pem"], "password": SECRETS["password"],
                                                                     "db": SECRETS["dsn"]}})

            anyio.run(scenario)
        finally:
            uninstrument_mcp()
        (span,) = cap.spans("tools/call get_weather")
    return span


def test_captured_arguments_hold_none_of_the_new_kinds():
    span = _call(capture_content=True)
    args = span.attributes["gen_ai.tool.call.arguments"]
    assert "Oslo" in args  # content is there, only the values are gone
    assert SECRETS["iban"] not in args and "MIIEpQIBAAKCAQEAn6" not in args
    assert SECRETS["password"] not in args and "s3cr3t-pw" not in args
    assert "[REDACTED:iban]" in args and "[REDACTED:private_key]" in args


def test_without_capture_content_no_argument_or_result_is_recorded():
    span = _call(capture_content=False)
    assert "gen_ai.tool.call.arguments" not in span.attributes
    assert "gen_ai.tool.call.result" not in span.attributes
