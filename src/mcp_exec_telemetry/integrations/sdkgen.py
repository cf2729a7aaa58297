"""Generate Python and JavaScript wrappers for MCP tools, for code that runs in the executor.

``SdkGenerator(out_dir, telemetry).generate(tools)`` writes ``mcp_tools.py`` and ``mcp_tools.js``
into ``out_dir``: one function per tool (Python: keyword arguments from the tool's input schema,
required ones first; JavaScript: one ``args`` object, returning a Promise) on top of a small IPC
handler. The handler sends each call as one JSON line to the Unix socket named by ``MCP_EXEC_IPC``
(served by :class:`~.executor.CodeExecutor`) with the process's ``TRACEPARENT``/``TRACESTATE``, so
the executor continues the trace, and reads one JSON line back. Both modules also offer
``filter_data(kind, data, fn)`` (JavaScript ``filterData``), which applies ``fn`` and reports the
input and output JSON sizes over the same socket.

Each generation reports through ``tel.sdk.generate(tools_included)`` with the bytes of the two IPC
handlers as ``ipc_handler_size_bytes``. The same tool list generated again into the same folder is
a cache hit: the files are left as they are.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .discovery import ToolInfo, tool_info

__all__ = ["SdkGenerator", "GeneratedSdk", "PYTHON_IPC_HANDLER", "JS_IPC_HANDLER"]

PYTHON_IPC_HANDLER = r'''import json as _json
import os as _os
import socket as _socket
import time as _time

_conn = None
_next_id = 0


class ToolError(RuntimeError):
    """A tool call that failed; the message is the tool's error."""


def _send(message):
    global _conn
    if _conn is None:
        path = _os.environ.get("MCP_EXEC_IPC")
        if not path:
            raise ToolError("MCP_EXEC_IPC is not set: run this code through the mcp-exec CodeExecutor")
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.connect(path)
        _conn = sock.makefile("rwb")
    for key in ("TRACEPARENT", "TRACESTATE"):
        if _os.environ.get(key):
            message[key.lower()] = _os.environ[key]
    _conn.write(_json.dumps(message).encode("utf-8") + b"\n")
    _conn.flush()


def call_tool(name, arguments=None):
    """Call the MCP tool ``name`` through the executor and return its result."""
    global _next_id
    _next_id += 1
    _send({"id": _next_id, "tool": name, "arguments": arguments or {}})
    reply = _json.loads(_conn.readline())
    if reply.get("error") is not None:
        raise ToolError(reply["error"])
    return reply.get("result")


def _size(value):
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(_json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8"))


def filter_data(kind, data, fn):
    """Apply ``fn`` to ``data`` and report the sizes going in and out as a filtering operation."""
    t0 = _time.perf_counter()
    out = fn(data)
    ms = (_time.perf_counter() - t0) * 1000.0
    try:
        _send({"type": "filtering", "operation": kind, "input_bytes": _size(data), "output_bytes": _size(out), "duration_ms": ms})
    except (OSError, ToolError):
        pass
    return out
'''

JS_IPC_HANDLER = r'''"use strict";
const net = require("net");

function _send(message, expectReply) {
  return new Promise((resolve, reject) => {
    const path = process.env.MCP_EXEC_IPC;
    if (!path) return reject(new Error("MCP_EXEC_IPC is not set: run this code through the mcp-exec CodeExecutor"));
    if (process.env.TRACEPARENT) message.traceparent = process.env.TRACEPARENT;
    if (process.env.TRACESTATE) message.tracestate = process.env.TRACESTATE;
    const sock = net.createConnection(path);
    let buf = "";
    sock.on("error", reject);
    sock.on("data", (chunk) => {
      buf += chunk;
      const i = buf.indexOf("\n");
      if (i < 0) return;
      sock.end();
      const reply = JSON.parse(buf.slice(0, i));
      if (reply.error !== undefined && reply.error !== null) reject(new Error(reply.error));
      else resolve(reply.result);
    });
    sock.write(JSON.stringify(message) + "\n", () => { if (!expectReply) sock.end(resolve); });
  });
}

let _nextId = 0;
function callTool(name, args) {
  _nextId += 1;
  return _send({ id: _nextId, tool: name, arguments: args || {} }, true);
}

function _size(value) {
  return Buffer.byteLength(typeof value === "string" ? value : JSON.stringify(value));
}

async function filterData(kind, data, fn) {
  const t0 = process.hrtime.bigint();
  const out = fn(data);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  try {
    await _send({ type: "filtering", operation: kind, input_bytes: _size(data), output_bytes: _size(out), duration_ms: ms }, false);
  } catch (e) { /* reporting never breaks the code */ }
  return out;
}
'''


@dataclass
class GeneratedSdk:
    """Where the SDK was written and what the generation did."""

    directory: Path
    python_path: Path
    javascript_path: Path
    tools: list[str]
    ipc_handler_size_bytes: int
    cache_hit: bool


def _ident(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    if not ident or ident[0].isdigit():
        ident = "_" + ident
    if keyword.iskeyword(ident):
        ident += "_"
    return ident


def _js_ident(name: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", name)
    ident = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return ident if ident and not ident[0].isdigit() else "_" + ident


def python_module(tools: list[ToolInfo]) -> str:
    lines = ['"""MCP tool wrappers generated by mcp-exec-telemetry; call them from code run by the CodeExecutor."""', "", PYTHON_IPC_HANDLER, ""]
    for tool in tools:
        props = tool.input_schema.get("properties") or {}
        required = [p for p in tool.input_schema.get("required") or [] if p in props]
        optional = [p for p in props if p not in required]
        params = [_ident(p) for p in required] + [f"{_ident(p)}=None" for p in optional]
        lines.append(f"def {_ident(tool.name)}({', '.join(params)}):")
        lines.append(f"    {json.dumps(tool.description or tool.name)}")
        pairs = ", ".join(f"({json.dumps(p)}, {_ident(p)})" for p in list(required) + optional)
        lines.append(f"    arguments = {{k: v for k, v in ({pairs}{',' if len(props) == 1 else ''}) if v is not None}}" if props else "    arguments = {}")
        lines.append(f"    return call_tool({json.dumps(tool.name)}, arguments)")
        lines.append("")
        lines.append("")
    lines.append(f"TOOLS = {json.dumps([t.name for t in tools])}")
    return "\n".join(lines) + "\n"


def javascript_module(tools: list[ToolInfo]) -> str:
    lines = ["// MCP tool wrappers generated by mcp-exec-telemetry; require() them from code run by the CodeExecutor.", JS_IPC_HANDLER]
    names = []
    for tool in tools:
        fn = _js_ident(tool.name)
        names.append(fn)
        lines.append(f"/** {(tool.description or tool.name).replace('*/', '* /')} */")
        lines.append(f"function {fn}(args) {{ return callTool({json.dumps(tool.name)}, args); }}")
    exports = ", ".join(["callTool", "filterData"] + names)
    lines.append(f"module.exports = {{ {exports}, TOOLS: {json.dumps([t.name for t in tools])} }};")
    return "\n".join(lines) + "\n"


class SdkGenerator:
    """Writes the tool SDK into ``out_dir`` and reports each generation through the SDK step."""

    MANIFEST = ".mcp_tools.sha256"

    def __init__(self, out_dir: str | Path, telemetry: Any = None) -> None:
        self.out_dir = Path(out_dir)
        self.telemetry = telemetry

    def generate(self, tools: Iterable[Any]) -> GeneratedSdk:
        infos = [tool_info(t) for t in tools]
        if self.telemetry is None:
            return self._generate(infos)
        with self.telemetry.sdk.generate(len(infos)) as op:
            sdk = self._generate(infos)
            op.set_result(sdk.ipc_handler_size_bytes, cache_hit=sdk.cache_hit)
        return sdk

    def _generate(self, infos: list[ToolInfo]) -> GeneratedSdk:
        digest = hashlib.sha256(json.dumps([t.shaped("full") for t in infos], sort_keys=True).encode()).hexdigest()
        py_path = self.out_dir / "mcp_tools.py"
        js_path = self.out_dir / "mcp_tools.js"
        manifest = self.out_dir / self.MANIFEST
        handler_bytes = len(PYTHON_IPC_HANDLER.encode()) + len(JS_IPC_HANDLER.encode())
        cache_hit = manifest.is_file() and manifest.read_text() == digest and py_path.is_file() and js_path.is_file()
        if not cache_hit:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            py_path.write_text(python_module(infos), encoding="utf-8")
            js_path.write_text(javascript_module(infos), encoding="utf-8")
            manifest.write_text(digest)
        return GeneratedSdk(self.out_dir, py_path, js_path, [t.name for t in infos], handler_bytes, cache_hit)
