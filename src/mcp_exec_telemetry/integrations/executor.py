"""Run agent-written Python 3 and JavaScript (node) in a child process, measured and reported.

``CodeExecutor(telemetry).execute(code, "python3")`` writes the code to a private work folder and
runs it in a new process group with:

* a **timeout**: when it passes, the code's whole process group gets SIGKILL and the run counts as a
  timeout (``ExecutionResult.timed_out``, the execution step's ``timeout`` outcome);
* an **output cap**: stdout and stderr keep at most ``output_limit_bytes`` each (the rest is read
  and dropped, so the child never blocks on a full pipe) and ``output_truncated`` says so;
* a **memory limit**: ``RLIMIT_AS`` set in the child before ``exec``. Python gets exactly
  ``memory_limit_mb`` of address space. V8 reserves far more address space than it ever touches
  (its pointer cage and code range), so node gets ``--max-old-space-size=<memory_limit_mb>`` for
  its heap plus an address-space limit of ``memory_limit_mb + NODE_ADDRESS_SPACE_HEADROOM_MB``.

What is measured is real: the wall-clock duration from fork to reaping, the exit code (negative
signal number when killed, as in ``subprocess``), the child's peak resident set size from the
kernel (``ru_maxrss`` of the ``rusage`` that ``os.wait4`` returns for that child, which Linux
reports in KiB), and the result size (bytes of captured stdout). All of it is reported through
``tel.execution.run(language)``. The code is started, limited, timed out and reaped by a tiny
launcher process (``_LAUNCHER``), because a child forked straight from a large agent process
carries the size of its copy of the parent into ``ru_maxrss``; the launcher's own fork is small,
so the figure is the code's own peak (an empty ``python3`` run measures about 8.5 MiB).

Trace context and tool calls: the child gets ``TRACEPARENT`` (and ``TRACESTATE``) of the execution
span. When the executor has a ``tool_handler``, it also serves a Unix socket whose path is in
``MCP_EXEC_IPC``; the generated SDK (:mod:`.sdkgen`) sends each tool call there as one JSON line
carrying the child's ``TRACEPARENT``. The executor's IPC thread continues that context and calls
``tool_handler(name, arguments)`` in it, so the ``tools/call`` client span (and through
``params._meta`` the server's span) lands under the execution span:
session -> execution.run -> tools/call {tool} -> tools/call {tool} (server). The child exports no
spans of its own; proxying keeps the MCP connection, and its telemetry, in the parent. The same
socket takes ``{"type": "filtering", ...}`` reports from the child's filtering helpers, recorded
through the filtering step under the execution span.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["CodeExecutor", "ExecutionResult", "LANGUAGES", "NODE_ADDRESS_SPACE_HEADROOM_MB"]

_PROPAGATOR = TraceContextTextMapPropagator()
# Address space node needs beyond its heap: V8 reserves its pointer-compression cage and code range up front.
NODE_ADDRESS_SPACE_HEADROOM_MB = 16 * 1024
LANGUAGES = {"python3": "python3", "python": "python3", "py": "python3", "javascript": "javascript", "js": "javascript", "node": "javascript"}
_SUFFIX = {"python3": ".py", "javascript": ".js"}
_READ_CHUNK = 65536
_LAUNCHER_GRACE_S = 5.0

# The launcher sits between the executor and the code. A child forked straight from the (large)
# agent process starts life as a copy of the parent's anonymous memory, and the kernel keeps that
# copy's size in the child's ru_maxrss across exec; forked from this small launcher instead, the
# code's ru_maxrss is its own peak. The launcher sets RLIMIT_AS in the fork before exec, puts the
# code in a process group of its own, enforces the timeout (SIGKILL to that whole group), reaps it
# with wait4 and writes one JSON report (wait status, ru_maxrss, pid, timed_out, duration) to fd 3.
_LAUNCHER = r"""
import json, os, resource, signal, sys, time
fd, limit, timeout, argv = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4:]
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.close(fd)
        os.setpgid(0, 0)
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
timed_out = []
def on_alarm(*_):
    timed_out.append(1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, timeout)
_, status, ru = os.wait4(pid, 0)
signal.setitimer(signal.ITIMER_REAL, 0)
duration_ms = (time.perf_counter() - t0) * 1000.0
os.write(fd, json.dumps({"status": status, "maxrss_kb": ru.ru_maxrss, "pid": pid, "timed_out": bool(timed_out), "duration_ms": duration_ms}).encode())
os.close(fd)
"""


def _parse_report(raw: bytes) -> dict[str, Any] | None:
    try:
        report = json.loads(raw)
        return report if isinstance(report, dict) and "status" in report else None
    except ValueError:
        return None


@dataclass
class ExecutionResult:
    """What one execution did; ``memory_mb`` is the child's peak RSS in MiB."""

    language: str
    exit_code: int
    stdout: str
    stderr: str
    duration_ms: float
    peak_rss_bytes: int
    timed_out: bool = False
    output_truncated: bool = False
    result_size_bytes: int = 0
    tool_calls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return self.exit_code == 0 and not self.timed_out

    @property
    def memory_mb(self) -> float:
        return self.peak_rss_bytes / (1024 * 1024)

    def json(self) -> Any:
        """stdout parsed as JSON (its last non-empty line when the whole output is not JSON)."""
        text = self.stdout.strip()
        try:
            return json.loads(text)
        except ValueError:
            lines = [line for line in text.splitlines() if line.strip()]
            return json.loads(lines[-1]) if lines else None


class _Capped:
    """Drain a pipe on a thread, keeping at most ``limit`` bytes."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.data = bytearray()
        self.total = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                chunk = self.stream.read1(_READ_CHUNK) if hasattr(self.stream, "read1") else self.stream.read(_READ_CHUNK)
                if not chunk:
                    break
                self.total += len(chunk)
                room = self.limit - len(self.data)
                if room > 0:
                    self.data += chunk[:room]
        except (OSError, ValueError):
            pass

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class _IpcServer:
    """The Unix-socket endpoint the generated SDK calls tools through (one JSON line per message)."""

    def __init__(self, path: str, handler: Callable[[str, dict[str, Any]], Any] | None, telemetry: Any) -> None:
        self.path = path
        self.handler = handler
        self.telemetry = telemetry
        self.calls = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        self._sock.listen(16)
        self._stop = False
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def _accept_loop(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                reply = self._handle(msg)
                if reply is not None:
                    try:
                        f.write(json.dumps(reply, default=str).encode() + b"\n")
                        f.flush()
                    except OSError:
                        return

    def _handle(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        carrier = {k: msg[k] for k in ("traceparent", "tracestate") if isinstance(msg.get(k), str)}
        token = otel_context.attach(_PROPAGATOR.extract(carrier)) if carrier.get("traceparent") else None
        try:
            if msg.get("type") == "filtering":
                self._filtering(msg)
                return None
            self.calls += 1
            if self.handler is None:
                return {"id": msg.get("id"), "error": "no tool handler: this executor cannot call tools"}
            try:
                result = self.handler(str(msg.get("tool")), dict(msg.get("arguments") or {}))
                return {"id": msg.get("id"), "result": result}
            except Exception as exc:
                return {"id": msg.get("id"), "error": str(exc) or type(exc).__name__}
        finally:
            if token is not None:
                otel_context.detach(token)

    def _filtering(self, msg: dict[str, Any]) -> None:
        if self.telemetry is None:
            return
        try:
            self.telemetry.filtering.record(str(msg.get("operation", "filter")), int(msg["input_bytes"]), int(msg["output_bytes"]), float(msg.get("duration_ms", 0.0)))
        except (KeyError, TypeError, ValueError):
            pass

    def close(self) -> None:
        self._stop = True
        try:
            self._sock.close()
        except OSError:
            pass
        for t in self._threads:
            t.join(timeout=5)


class CodeExecutor:
    """Runs code in a subprocess and reports each run through the execution step.

    ``sdk_dir`` (a folder from :class:`~.sdkgen.SdkGenerator`) goes on ``PYTHONPATH`` and
    ``NODE_PATH``; ``tool_handler(name, arguments)`` answers the child's tool calls (e.g. a
    :class:`~.mcp.ToolBridge`). ``telemetry`` may be None to run unobserved.
    """

    def __init__(
        self,
        telemetry: Any = None,
        *,
        sdk_dir: str | os.PathLike[str] | None = None,
        tool_handler: Callable[[str, dict[str, Any]], Any] | None = None,
        python: str | None = None,
        node: str | None = None,
        timeout_s: float = 30.0,
        memory_limit_mb: int = 512,
        output_limit_bytes: int = 1 << 20,
    ) -> None:
        self.telemetry = telemetry
        self.sdk_dir = str(sdk_dir) if sdk_dir is not None else None
        self.tool_handler = tool_handler
        self.python = python or sys.executable or shutil.which("python3") or "python3"
        self.node = node or shutil.which("node") or "/usr/bin/node"
        self.timeout_s = timeout_s
        self.memory_limit_mb = memory_limit_mb
        self.output_limit_bytes = output_limit_bytes

    def command(self, language: str, script: str, memory_limit_mb: int | None) -> list[str]:
        if language == "python3":
            return [self.python, "-u", script]
        argv = [self.node]
        if memory_limit_mb:
            argv.append(f"--max-old-space-size={memory_limit_mb}")
        return argv + [script]

    def execute(
        self,
        code: str,
        language: str = "python3",
        *,
        timeout_s: float | None = None,
        memory_limit_mb: int | None = None,
        output_limit_bytes: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecutionResult:
        """Run ``code``; ``memory_limit_mb=0`` turns the memory limit off."""
        lang = LANGUAGES.get(language)
        if lang is None:
            raise ValueError(f"unsupported language {language!r}: use python3 or javascript")
        if self.telemetry is None:
            return self._run(code, lang, timeout_s, memory_limit_mb, output_limit_bytes, env, None)
        with self.telemetry.execution.run(lang) as op:
            result = self._run(code, lang, timeout_s, memory_limit_mb, output_limit_bytes, env, op)
            if result.timed_out:
                op.set_timed_out()
            op.set_result(result.exit_code, memory_mb=round(result.memory_mb, 3), result_size_bytes=result.result_size_bytes)
            op.span.set_attribute("mcp_exec.execution.tool_calls", result.tool_calls)
            if result.output_truncated:
                op.span.set_attribute("mcp_exec.execution.output_truncated", True)
        return result

    async def execute_async(self, code: str, language: str = "python3", **kwargs: Any) -> ExecutionResult:
        """:meth:`execute` on a worker thread (with the caller's context), leaving the event loop free
        to serve the child's tool calls."""
        import asyncio
        import functools

        return await asyncio.to_thread(functools.partial(self.execute, code, language, **kwargs))

    def _run(self, code: str, lang: str, timeout_s: float | None, memory_limit_mb: int | None, output_limit_bytes: int | None, env: Mapping[str, str] | None, op: Any) -> ExecutionResult:
        timeout = self.timeout_s if timeout_s is None else timeout_s
        mem = self.memory_limit_mb if memory_limit_mb is None else memory_limit_mb
        cap = self.output_limit_bytes if output_limit_bytes is None else output_limit_bytes
        workdir = tempfile.mkdtemp(prefix="mcp-exec-")
        ipc: _IpcServer | None = None
        try:
            script = os.path.join(workdir, "main" + _SUFFIX[lang])
            Path(script).write_text(code, encoding="utf-8")
            child_env = self._environment(workdir, env)
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            if "traceparent" in carrier:
                child_env["TRACEPARENT"] = carrier["traceparent"]
            if "tracestate" in carrier:
                child_env["TRACESTATE"] = carrier["tracestate"]
            ipc = _IpcServer(os.path.join(workdir, "ipc.sock"), self.tool_handler, self.telemetry)
            child_env["MCP_EXEC_IPC"] = ipc.path
            limit_bytes = None
            if mem:
                limit_mb = mem if lang == "python3" else mem + NODE_ADDRESS_SPACE_HEADROOM_MB
                limit_bytes = limit_mb * 1024 * 1024

            report_r, report_w = os.pipe()
            t0 = time.perf_counter()
            try:
                proc = subprocess.Popen(
                    [self.python, "-I", "-S", "-c", _LAUNCHER, str(report_w), str(limit_bytes or 0), repr(float(timeout)), *self.command(lang, script, mem or None)],
                    cwd=workdir,
                    env=child_env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    pass_fds=(report_w,),
                )
            finally:
                os.close(report_w)
            out = _Capped(proc.stdout, cap)
            err = _Capped(proc.stderr, cap)
            with os.fdopen(report_r, "rb") as report_file:
                report_box: dict[str, bytes] = {}
                report_reader = threading.Thread(target=lambda: report_box.setdefault("r", report_file.read()), daemon=True)
                report_reader.start()
                # The launcher enforces the timeout itself; this outer bound only catches a stuck launcher.
                status, usage, killed = self._wait(proc, timeout + _LAUNCHER_GRACE_S)
                report_reader.join(timeout=2)
            duration_ms = (time.perf_counter() - t0) * 1000.0
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4; keep Popen from waiting again
            report = _parse_report(report_box.get("r", b""))
            if report is not None:
                exit_code = os.waitstatus_to_exitcode(report["status"])
                peak_rss_bytes = report["maxrss_kb"] * 1024  # Linux reports KiB
                timed_out = bool(report["timed_out"]) or killed
                duration_ms = report.get("duration_ms", duration_ms)
            else:  # the launcher itself failed or was killed: the best measure left is its own
                exit_code = proc.returncode
                peak_rss_bytes = usage.ru_maxrss * 1024
                timed_out = killed
            _kill_group(proc.pid)  # leftovers (daemonised grandchildren) of the run's groups
            if report is not None and report.get("pid"):
                _kill_group(report["pid"])
            for reader in (out, err):
                reader.thread.join(timeout=2)
            for stream in (proc.stdout, proc.stderr):
                try:
                    stream.close()  # type: ignore[union-attr]
                except OSError:
                    pass
            return ExecutionResult(
                language=lang,
                exit_code=exit_code,
                stdout=out.text(),
                stderr=err.text(),
                duration_ms=duration_ms,
                peak_rss_bytes=peak_rss_bytes,
                timed_out=timed_out,
                output_truncated=out.truncated or err.truncated,
                result_size_bytes=len(out.data),
                tool_calls=ipc.calls,
            )
        finally:
            if ipc is not None:
                ipc.close()
            shutil.rmtree(workdir, ignore_errors=True)

    @staticmethod
    def _wait(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, Any, bool]:
        """Reap the child with ``os.wait4`` (for its rusage), killing its group at the deadline."""
        box: dict[str, Any] = {}

        def reap() -> None:
            while True:
                try:
                    _, status, usage = os.wait4(proc.pid, 0)
                    box["r"] = (status, usage)
                    return
                except InterruptedError:
                    continue
                except ChildProcessError as exc:  # pragma: no cover - reaped by someone else
                    box["e"] = exc
                    return

        waiter = threading.Thread(target=reap, daemon=True)
        waiter.start()
        waiter.join(timeout)
        timed_out = waiter.is_alive()
        if timed_out:
            _kill_group(proc.pid)
            waiter.join()
        if "e" in box:  # pragma: no cover
            raise box["e"]
        status, usage = box["r"]
        return status, usage, timed_out

    def _environment(self, workdir: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": workdir,
            "TMPDIR": workdir,
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONIOENCODING": "utf-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if self.sdk_dir:
            env["PYTHONPATH"] = self.sdk_dir
            env["NODE_PATH"] = self.sdk_dir
        if extra:
            env.update(extra)
        return env


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
