"""What the MCP integration tests share: connecting over stdio or streamable HTTP on mcp 1.x and
2.x, finding the real servers (PyPI's ``mcp-server-time`` and ``mcp-server-git``, npm's
``@modelcontextprotocol/server-everything``) and reading spans and metric points.

A missing server skips locally and fails under ``CI=true`` (where ``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client

from mcp_exec_telemetry.integrations.mcp import mcp_major
from tests.servers._util import free_port

ROOT = Path(__file__).resolve().parent.parent
MCP_MAJOR = mcp_major()
EVERYTHING = ROOT / ".ci" / "node" / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
LOOPBACK = Path(__file__).resolve().parent / "servers" / "node_loopback.cjs"
DEMO = [sys.executable, "-m", "mcp_exec_telemetry.integrations.demo_server"]


def missing(what: str, how: str) -> None:
    reason = f"{what} not found; {how}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def python_server(name: str) -> str:
    """Path of a PyPI server's console script: this interpreter's venv, the checkout's .venv, PATH.

    The servers require mcp 2.x, so the mcp 1.x environment runs them from the main venv, as a
    user runs a server from its own environment (``uvx``) beside a client on mcp 1.x.
    """
    for candidate in (Path(sys.executable).parent / name, ROOT / ".venv" / "bin" / name):
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    missing(name, f"`pip install {name}` (.ci/run installs it)")
    raise AssertionError("unreachable")


def everything() -> list[str]:
    """``node <server-everything>`` bound to 127.0.0.1 (its HTTP transport listens on every interface otherwise)."""
    node = shutil.which("node")
    if node is None or not EVERYTHING.exists():
        missing("@modelcontextprotocol/server-everything", "`npm install --prefix .ci/node @modelcontextprotocol/server-everything` (.ci/run does)")
    return [str(node), "--require", str(LOOPBACK), str(EVERYTHING)]


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(extra)
    return env


@asynccontextmanager
async def stdio_session(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env if env is not None else server_env(), cwd=cwd)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session


@asynccontextmanager
async def http_session(url: str) -> AsyncIterator[tuple[ClientSession, Any]]:
    """A session over streamable HTTP and the SDK's transport-level view of the session id."""
    from mcp.client import streamable_http

    # streamablehttp_client before mcp 1.24, streamable_http_client since
    connect = getattr(streamable_http, "streamable_http_client", None) or streamable_http.streamablehttp_client
    async with connect(url) as streams:
        read, write = streams[0], streams[1]
        get_session_id = streams[2] if len(streams) > 2 else None  # mcp 1.x hands it out
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session, get_session_id


class HttpServer:
    """A server process listening on 127.0.0.1:<free port> over streamable HTTP."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, path: str = "/mcp", port_arg: bool = False) -> None:
        self.port = free_port()
        if port_arg:
            argv = [*argv, str(self.port)]
        self.url = f"http://127.0.0.1:{self.port}{path}"
        full_env = server_env(PORT=str(self.port), **(env or {}))
        self.proc = subprocess.Popen([*argv], env=full_env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self) -> "HttpServer":
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode(errors='replace')[-2000:] if self.proc.stderr else ''}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.1)
        self.__exit__()
        raise TimeoutError("server did not listen")

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def client_spans(cap: Any) -> list[Any]:
    return [s for s in cap.spans() if s.kind.name == "CLIENT"]


def points(cap: Any, name: str) -> list[Any]:
    data = cap.telemetry.metrics_data()
    return [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics if m.name == name for p in m.data.data_points]


def by_request_id(spans: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for span in spans:
        rid = span.attributes.get("jsonrpc.request.id")
        if rid is not None:
            assert rid not in out, f"two spans for request {rid}: {out[rid].name}, {span.name}"
            out[rid] = span
    return out


def iter_methods(spans: list[Any]) -> Iterator[str]:
    for span in spans:
        yield span.attributes["mcp.method.name"]
