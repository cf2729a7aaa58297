"""Run agent-written Python 3 and JavaScript (node) in a sandbox, measured and reported.

``CodeExecutor(telemetry).execute(code, "python3")`` writes the code to a private work folder and
runs it with (see :mod:`.sandbox` for what each isolation holds):

* **isolation**: ``isolation="bwrap"`` (the default when bubblewrap works here) runs the code in a
  bubblewrap sandbox, a security boundary; ``isolation="process"`` runs it as a plain child process,
  which is not one;
* a **timeout** that bounds :meth:`CodeExecutor.execute`: when it passes, everything the code started
  is killed (under bubblewrap, the whole PID namespace) and ``execute()`` returns within about one
  second with ``timed_out=True``, whatever the code did with its output, its sessions or its parent;
* **resource limits** (:class:`~.sandbox.Limits`): memory (data segment, node's ``Buffer`` included),
  CPU seconds, file size, disk (under bubblewrap, what the work folder holds) and process count;
  the reason a run ended is ``ExecutionResult.exit_reason`` (``exit``, ``signal``, ``timeout``,
  ``memory``, ``cpu_time``, ``file_size``, ``disk``, ``process_count``, ``sandbox_error``), also on
  the span as ``mcp_exec.execution.exit_reason``;
* an **output cap**: stdout and stderr keep at most ``output_limit_bytes`` each (the rest is read
  and dropped, so the child never blocks on a full pipe) and ``output_truncated`` says so.

What is measured is real and is the code's own: ``duration_ms`` is the run's time from its start (the
fork of its process, or the hand-over to a sandbox set up ahead) to the reaping of its exit, measured
by the fork server next to it (the execution step's ``execution.duration``); ``overhead_ms`` is the
rest of the ``execute()`` call (work folder, socket, pipes, reading the output), reported apart as
``mcp_exec.execution.overhead_ms`` and the ``execution.overhead`` histogram. ``peak_rss_bytes`` is the kernel's peak resident size of the
run's processes (``ru_maxrss`` from ``wait4``), ``exit_code`` the exit status (a negative signal
number when killed, as in ``subprocess``; under bubblewrap a status above 128 is read as
``128 + signal``, as the shell does), ``result_size_bytes`` the bytes of captured stdout.

Trace context and tool calls: the child gets ``TRACEPARENT`` (and ``TRACESTATE``) of the execution
span. A Unix socket in the work folder (path in ``MCP_EXEC_IPC``) is the sandbox's one door out: the
generated SDK (:mod:`.sdkgen`) sends each tool call there as one JSON line carrying the child's
``TRACEPARENT``, and ``tool_handler(name, arguments)`` answers it in that context, so the
``tools/call`` client span (and through ``params._meta`` the server's span) lands under the execution
span. The same socket takes ``{"type": "filtering", ...}`` reports from the child's filtering helpers.
The door serves at most ``max_connections`` open connections at once (when it is full, connections
that have already ended are retired first; more are closed as they arrive) on
the executing thread's own event loop, and tool calls run on at most ``ipc_workers`` threads shared
by the executor's runs: no thread per connection.
"""

from __future__ import annotations

import collections
import json
import os
import select
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .sandbox import ISOLATIONS, STARTER, ForkServer, Limits, bwrap_command, bwrap_path, bwrap_problem, default_isolation, fork_server, hidden_trees, under

__all__ = ["CodeExecutor", "ExecutionResult", "EXIT_REASONS", "LANGUAGES", "Limits"]

_PROPAGATOR = TraceContextTextMapPropagator()
LANGUAGES = {"python3": "python3", "python": "python3", "py": "python3", "javascript": "javascript", "js": "javascript", "node": "javascript"}
_SUFFIX = {"python3": ".py", "javascript": ".js"}
_READ_CHUNK = 65536
_KILL_GRACE_S = 0.9  # after the timeout's kill, how long execute() waits for the exit report
_DRAIN_GRACE_S = 0.25  # after the exit, how long output held open by leftovers is still read
_SETTLE_S = 0.5  # after the exit, how long messages the code sent before it ended may still be handled
_MAX_LINE = 16 << 20  # one IPC message
_PREPARED_WAIT_S = 1.0  # how long a run waits for the sandbox being set up for it before starting its own
_SANDBOXES_AHEAD = 4  # default of ``sandboxes_ahead``: enough for a burst of runs back to back
_LOW_SPARES = 1  # with this few left, the next is set up at once, even beside a running code
_QUIET_S = 0.01  # otherwise a set-up starts only once no run has been in progress for this long

EXIT_REASONS = ("exit", "signal", "timeout", "memory", "cpu_time", "file_size", "disk", "process_count", "sandbox_error")
_SIGXCPU, _SIGXFSZ, _SIGKILL = 24, 25, 9
# What the interpreters print when a limit stops them (the kernel only reports an error number).
_REASON_TEXT = (
    ("memory", ("MemoryError", "heap out of memory", "Array buffer allocation failed", "Cannot allocate memory", "Fatal process out of memory", "ENOMEM")),
    ("file_size", ("File too large", "EFBIG")),
    ("disk", ("No space left on device", "ENOSPC")),
    ("process_count", ("Resource temporarily unavailable", "EAGAIN", "can't start new thread")),
)


@dataclass
class ExecutionResult:
    """What one execution did; ``memory_mb`` is the code's peak RSS in MiB.

    ``duration_ms`` is the code's own run time, ``overhead_ms`` what the executor spent around it,
    ``exit_reason`` why it ended (one of :data:`EXIT_REASONS`), ``isolation`` where it ran.
    """

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
    exit_reason: str = "exit"
    overhead_ms: float = 0.0
    isolation: str = "process"

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
    """Output of one pipe, keeping at most ``limit`` bytes."""

    __slots__ = ("limit", "data", "total")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class _Conn:
    """One connection to the IPC door: bytes read so far, complete lines waiting, one worker at a time."""

    __slots__ = ("sock", "buf", "pending", "busy", "closing", "lock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.pending: collections.deque[bytes] = collections.deque()
        self.busy = False
        self.closing = False  # the peer is gone: the worker closes the socket once its lines are handled
        self.lock = threading.Lock()


class _Door:
    """The run's IPC socket: accepted and read on the executing thread, messages handled on the pool."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.executor: CodeExecutor | None = None
        self.telemetry: Any = None
        self.calls = 0
        self.refused = 0
        self.in_flight = 0  # connections whose lines are being handled on the pool
        self.conns: dict[int, _Conn] = {}
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.ctx = otel_context.get_current()

    def bind(self, executor: "CodeExecutor") -> None:
        """Serve ``executor``'s tool handler in the caller's trace context (a prepared door has none)."""
        self.executor = executor
        self.telemetry = executor.telemetry
        self.ctx = otel_context.get_current()

    def accept(self, sel: selectors.BaseSelector) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if self.executor is not None and len(self.conns) >= self.executor.max_connections:
                self.reap(sel)  # connections that already sent their line and ended free their slots
            if self.executor is None or len(self.conns) >= self.executor.max_connections:
                self.refused += 1
                sock.close()
                continue
            sock.settimeout(10.0)  # replies are sent from the pool with a bound; reads only when ready
            conn = _Conn(sock)
            self.conns[sock.fileno()] = conn
            sel.register(sock, selectors.EVENT_READ, conn)

    def read(self, conn: _Conn, sel: selectors.BaseSelector) -> None:
        try:
            chunk = conn.sock.recv(_READ_CHUNK)
        except (BlockingIOError, InterruptedError, socket.timeout):
            return
        except OSError:
            chunk = b""
        if not chunk or len(conn.buf) + len(chunk) > _MAX_LINE:
            # A peer that ends its side after a report is the normal case: its lines are still handled.
            self.drop(conn, sel, discard=bool(chunk))
            return
        conn.buf += chunk
        if b"\n" not in chunk:
            return
        *lines, rest = bytes(conn.buf).split(b"\n")
        conn.buf = bytearray(rest)
        with conn.lock:
            conn.pending.extend(line for line in lines if line.strip())
            start = bool(conn.pending) and not conn.busy
            if start:
                conn.busy = True
        if start:
            with self.lock:
                self.in_flight += 1
            self.executor._ipc_pool().submit(self._drain, conn)  # type: ignore[union-attr]

    def drop(self, conn: _Conn, sel: selectors.BaseSelector, discard: bool = False) -> None:
        """Stop reading ``conn``; its waiting lines are still handled unless ``discard`` (an oversized line)."""
        try:
            sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        self.conns.pop(conn.sock.fileno(), None)
        with conn.lock:
            if discard:
                conn.pending.clear()
            conn.closing = True
            close_now = not conn.busy
        if close_now:
            conn.sock.close()

    def _drain(self, conn: _Conn) -> None:
        try:
            self._drain_lines(conn)
        finally:
            with self.lock:
                self.in_flight -= 1

    def _drain_lines(self, conn: _Conn) -> None:
        while True:
            with conn.lock:
                if not conn.pending:
                    conn.busy = False
                    close_now = conn.closing
                    break
                line = conn.pending.popleft()
            reply = self._handle_line(line)
            if reply is not None:
                try:
                    conn.sock.sendall(json.dumps(reply, default=str).encode("utf-8", "surrogatepass") + b"\n")
                except (OSError, ValueError):
                    pass
        if close_now:
            conn.sock.close()

    def settle(self, sel: selectors.BaseSelector, bound_s: float = _SETTLE_S) -> None:
        """After the code ended: take in what it wrote before it ended, and let those messages be handled.

        Filtering reports are written just before the code exits, so they may still sit in the
        listener's backlog or a connection's buffer when the exit report arrives; reading them here
        keeps them from being lost. Waiting on the pool is bounded: a tool call the code no longer
        awaits does not hold ``execute()``.
        """
        self.accept(sel)
        self.reap(sel)
        end = time.perf_counter() + bound_s
        while self.in_flight and time.perf_counter() < end:
            time.sleep(0.001)

    def reap(self, sel: selectors.BaseSelector) -> None:
        """Read every connection that has bytes or its end waiting, without blocking.

        A report is one short-lived connection: by the time the door is full, most connections have
        written their line and ended. Reading them here hands their lines to the pool and closes
        them, so a burst of reports queued while this thread was busy is served, not refused.
        """
        for conn in list(self.conns.values()):
            while conn.sock.fileno() in self.conns:
                ready, _, _ = select.select([conn.sock], [], [], 0)
                if not ready:
                    break
                self.read(conn, sel)

    def _handle_line(self, line: bytes) -> dict[str, Any] | None:
        try:
            msg = json.loads(line)
        except ValueError:
            return None
        if not isinstance(msg, dict):
            return None
        carrier = {k: msg[k] for k in ("traceparent", "tracestate") if isinstance(msg.get(k), str)}
        token = otel_context.attach(_PROPAGATOR.extract(carrier, context=self.ctx) if carrier.get("traceparent") else self.ctx)
        try:
            if msg.get("type") == "filtering":
                self._filtering(msg)
                return None
            with self.lock:
                self.calls += 1
            handler = self.executor.tool_handler if self.executor is not None else None
            if handler is None:
                return {"id": msg.get("id"), "error": "no tool handler: this executor cannot call tools"}
            try:
                result = handler(str(msg.get("tool")), dict(msg.get("arguments") or {}))
                return {"id": msg.get("id"), "result": result}
            except Exception as exc:
                return {"id": msg.get("id"), "error": str(exc) or type(exc).__name__}
        finally:
            otel_context.detach(token)

    def _filtering(self, msg: dict[str, Any]) -> None:
        if self.telemetry is None:
            return
        try:
            self.telemetry.filtering.record(str(msg.get("operation", "filter")), int(msg["input_bytes"]), int(msg["output_bytes"]), float(msg.get("duration_ms", 0.0)))
        except (KeyError, TypeError, ValueError):
            pass

    def close(self) -> None:
        for conn in list(self.conns.values()):
            try:
                conn.sock.close()
            except OSError:
                pass
        self.conns.clear()
        try:
            self.listener.close()
        except OSError:
            pass
        self.executor = None
        self.telemetry = None


@dataclass
class _Prepared:
    """A bubblewrap sandbox set up ahead of the run that will use it, waiting on its --block-fd."""

    server: Any
    run_id: int
    workdir: str
    door: _Door
    out_r: int
    err_r: int
    rep_r: int
    ready_r: int

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for its starter to be up; False if it died or is still setting up.

        A sandbox already being set up has a head start on a fresh one, so a run waits for it
        rather than starting another set-up beside it on the same cores.
        """
        readable, _, _ = select.select([self.ready_r, self.rep_r], [], [], timeout_s)
        return self.ready_r in readable and self.rep_r not in readable

    def dead(self) -> bool:
        """Its sandbox already exited (it failed to set up, or the fork server is gone)."""
        if not self.server.alive():
            return True
        readable, _, _ = select.select([self.rep_r], [], [], 0)
        return bool(readable)

    def discard(self) -> None:
        if self.server.owner == os.getpid():  # not a fork server inherited across os.fork()
            self.server.kill(self.run_id)
        self.door.close()
        for fd in (self.out_r, self.err_r, self.rep_r, self.ready_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.workdir, ignore_errors=True)


def _discard_prepared(ready: list[_Prepared]) -> None:
    """Discard each sandbox set up ahead (``list.pop`` is atomic: none is discarded twice)."""
    while ready:
        try:
            prepared = ready.pop()
        except IndexError:
            return
        prepared.discard()


def _remove_folders(folders: list[str]) -> None:
    """Remove the work folders of ended runs.

    A folder leaves the list only once it is removed, so a remover that finds the list empty (as
    ``close()`` does) knows every folder is gone, even one the chore thread is still removing (two
    removers of one folder are harmless)."""
    while folders:
        try:
            folder = folders[0]
        except IndexError:
            return
        shutil.rmtree(folder, ignore_errors=True)
        try:
            folders.remove(folder)
        except ValueError:
            pass  # the other remover took it off first


def _release(ready: list[_Prepared], folders: list[str]) -> None:
    _discard_prepared(ready)
    _remove_folders(folders)


class CodeExecutor:
    """Runs code in a sandbox and reports each run through the execution step.

    ``sdk_dir`` (a folder from :class:`~.sdkgen.SdkGenerator`) goes on ``PYTHONPATH`` and
    ``NODE_PATH``; ``tool_handler(name, arguments)`` answers the child's tool calls (e.g. a
    :class:`~.mcp.ToolBridge`). ``telemetry`` may be None to run unobserved.

    ``isolation`` is ``"bwrap"`` (a security boundary; an error when bubblewrap cannot run here) or
    ``"process"`` (no boundary); by default bubblewrap when it works, else ``"process"`` with a loud
    warning. ``allow_network`` lets sandboxed code reach the network. Limits: ``memory_limit_mb``,
    ``cpu_time_limit_s`` (default: the timeout), ``file_size_limit_mb``, ``disk_limit_mb`` (bubblewrap
    only: the work folder is a tmpfs of that size, not the host's disk), ``process_limit``; ``0``
    turns one off. ``sandboxes_ahead`` (bubblewrap only) is how many sandboxes wait set up for the
    next runs, each three idle processes (5 MiB resident, under 1 MiB their own); ``0`` sets each
    run's up on its own path, and below 3 a replacement is set up beside the next run's code.
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
        isolation: str | None = None,
        allow_network: bool = False,
        cpu_time_limit_s: float | None = None,
        file_size_limit_mb: int = 64,
        disk_limit_mb: int = 256,
        process_limit: int = 64,
        max_connections: int = 32,
        sandboxes_ahead: int = _SANDBOXES_AHEAD,
        ipc_workers: int = 4,
    ) -> None:
        self.telemetry = telemetry
        self.sdk_dir = str(sdk_dir) if sdk_dir is not None else None
        self.tool_handler = tool_handler
        self.python = python or sys.executable or shutil.which("python3") or "python3"
        self.node = node or shutil.which("node") or "/usr/bin/node"
        self.timeout_s = timeout_s
        self.memory_limit_mb = memory_limit_mb
        self.output_limit_bytes = output_limit_bytes
        if isolation is None:
            isolation = default_isolation()
        elif isolation not in ISOLATIONS:
            raise ValueError(f"unknown isolation {isolation!r}: use 'bwrap' or 'process'")
        elif isolation == "bwrap":
            problem = bwrap_problem()
            if problem is not None:
                raise RuntimeError(f"isolation='bwrap' was asked for but {problem}")
        self.isolation = isolation
        self._bwrap = bwrap_path() if isolation == "bwrap" else None
        self.allow_network = allow_network
        self.cpu_time_limit_s = cpu_time_limit_s
        self.file_size_limit_mb = file_size_limit_mb
        self.disk_limit_mb = disk_limit_mb
        self.process_limit = process_limit
        self.max_connections = max_connections
        if isinstance(sandboxes_ahead, bool) or not isinstance(sandboxes_ahead, int) or sandboxes_ahead < 0:
            raise ValueError(f"sandboxes_ahead must be an int >= 0, got {sandboxes_ahead!r}")
        self.sandboxes_ahead = sandboxes_ahead
        self.ipc_workers = ipc_workers
        self._pool: ThreadPoolExecutor | None = None
        # One worker for the work around runs (setting up the next sandbox, removing a run's folder):
        # handing it a chore costs microseconds, where starting a thread per run cost a millisecond.
        self._chores: ThreadPoolExecutor | None = None
        self._pools_pid = os.getpid()
        self._pool_lock = threading.Lock()
        # Sandboxes set up ahead, oldest first, so that a run skips the set-up. A set-up beside a
        # running code slows that code (a python ``print(1)`` by 1.5-3.5 ms), so they are set up
        # between runs: once no run has been in progress for ``_QUIET_S`` (runs apart, as an
        # agent's runs follow its model's answers), or at once when only ``_LOW_SPARES`` are left
        # (a long stream of runs back to back). ``_preparing`` says one is on its way to
        # ``_ready`` (a run waits for it rather than setting up its own beside it).
        self._ready: list[_Prepared] = []
        self._ready_lock = threading.Condition(threading.Lock())
        self._preparing = False
        self._running = 0
        self._last_end = 0.0  # time.monotonic() when the last run ended
        self._closes = 0  # a set-up begun before close() is discarded, not kept
        # Work folders of ended runs: removed by the chore after each run (or by close()).
        self._leftovers: list[str] = []
        weakref.finalize(self, _release, self._ready, self._leftovers)

    def close(self) -> None:
        """Discard the sandboxes set up ahead for the next runs and remove ended runs' work folders
        (also done when the executor is collected or the interpreter exits).

        A later run still works; it sets up its own sandbox and the next ones again."""
        with self._ready_lock:
            self._closes += 1
            self._ready_lock.notify_all()  # a top-up waiting for a quiet moment stops
            self._ready_lock.wait_for(lambda: not self._preparing, _PREPARED_WAIT_S)
            _discard_prepared(self._ready)
        _remove_folders(self._leftovers)

    def _forget_workers_after_fork(self) -> None:
        """In a child forked from the agent the pools' threads are gone: start new pools there."""
        if self._pools_pid != os.getpid():
            self._pools_pid, self._pool, self._chores = os.getpid(), None, None

    def _ipc_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            self._forget_workers_after_fork()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=max(1, self.ipc_workers), thread_name_prefix="mcp-exec-ipc")
            return self._pool

    def _chore(self, fn: Callable[..., None], *args: Any) -> bool:
        """Run ``fn(*args)`` on the executor's chore thread; False if it cannot take work any more."""
        with self._pool_lock:
            self._forget_workers_after_fork()
            if self._chores is None:
                self._chores = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-exec-chores")
            chores = self._chores
        try:
            chores.submit(fn, *args)
            return True
        except RuntimeError:  # the interpreter is shutting down
            return False

    def command(self, language: str, script: str, memory_limit_mb: int | None) -> list[str]:
        """The interpreter's command line for ``script``.

        The memory limit is the data-segment limit for both languages (:class:`~.sandbox.Limits`),
        which holds V8's heap too: a runaway heap ends with V8's "JavaScript heap out of memory".
        So node gets no ``--max-old-space-size``: any such flag costs node about a quarter of its
        start-up (measured 46.5 against 37.5 ms for ``console.log(1)``).
        """
        if language == "python3":
            return [self.python, "-u", script]
        return [self.node, script]

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
            return self._run(code, lang, timeout_s, memory_limit_mb, output_limit_bytes, env)
        with self.telemetry.execution.run(lang) as op:
            result = self._run(code, lang, timeout_s, memory_limit_mb, output_limit_bytes, env)
            if result.timed_out:
                op.set_timed_out()
            op.set_result(result.exit_code, memory_mb=round(result.memory_mb, 3), result_size_bytes=result.result_size_bytes)
            op.set_code_duration(result.duration_ms, result.overhead_ms)
            span = op.span
            span.set_attribute("mcp_exec.execution.tool_calls", result.tool_calls)
            span.set_attribute("mcp_exec.execution.exit_reason", result.exit_reason)
            span.set_attribute("mcp_exec.execution.isolation", result.isolation)
            if result.output_truncated:
                span.set_attribute("mcp_exec.execution.output_truncated", True)
        return result

    async def execute_async(self, code: str, language: str = "python3", **kwargs: Any) -> ExecutionResult:
        """:meth:`execute` on a worker thread (with the caller's context), leaving the event loop free
        to serve the child's tool calls."""
        import asyncio
        import functools

        return await asyncio.to_thread(functools.partial(self.execute, code, language, **kwargs))

    def _limits(self, mem: int | None, timeout: float) -> Limits:
        cpu = self.cpu_time_limit_s if self.cpu_time_limit_s is not None else timeout
        return Limits(memory_mb=mem or None, cpu_time_s=cpu or None, file_size_mb=self.file_size_limit_mb or None, processes=self.process_limit or None)

    def _run(self, code: str, lang: str, timeout_s: float | None, memory_limit_mb: int | None, output_limit_bytes: int | None, env: Mapping[str, str] | None) -> ExecutionResult:
        t_call = time.perf_counter()
        timeout = self.timeout_s if timeout_s is None else timeout_s
        mem = self.memory_limit_mb if memory_limit_mb is None else memory_limit_mb
        cap = self.output_limit_bytes if output_limit_bytes is None else output_limit_bytes
        limits = self._limits(mem, timeout)
        with self._ready_lock:
            self._running += 1
        fds: list[int] = []
        try:
            prepared = self._take_prepared()
            if prepared is not None:
                workdir, door = prepared.workdir, prepared.door
                fds += [prepared.out_r, prepared.err_r, prepared.rep_r]
            else:
                workdir, door = tempfile.mkdtemp(prefix="mcp-exec-"), None
        except BaseException:  # e.g. no room for a work folder: this run never started
            self._run_ended()
            raise
        try:
            script = os.path.join(workdir, "main" + _SUFFIX[lang])
            with open(script, "wb") as f:
                # A lone surrogate cannot be UTF-8: write it as the escape it would be in a string literal.
                f.write(code.encode("utf-8", "backslashreplace"))
            if door is None:
                door = _Door(os.path.join(workdir, "ipc.sock"))
            door.bind(self)
            child_env = self._environment(workdir, env)
            carrier: dict[str, str] = {}
            _PROPAGATOR.inject(carrier)
            if "traceparent" in carrier:
                child_env["TRACEPARENT"] = carrier["traceparent"]
            if "tracestate" in carrier:
                child_env["TRACESTATE"] = carrier["tracestate"]
            child_env["MCP_EXEC_IPC"] = door.path
            argv = self.command(lang, script, mem or None)
            server = fork_server()
            if prepared is not None:
                server = prepared.server
                run_id = prepared.run_id
                server.go(run_id, argv, child_env, limits.rlimits(), limits.processes, memory_bytes=limits.memory_bytes)
                out_r, err_r, rep_r = prepared.out_r, prepared.err_r, prepared.rep_r
            else:
                if self._bwrap is not None:
                    argv = bwrap_command(
                        self._bwrap, argv, workdir, allow_network=self.allow_network, tmp_size_mb=self.file_size_limit_mb or None,
                        read_only=self._read_only_paths(), info_fd=3, work_size_mb=self.disk_limit_mb or None,
                    )
                out_r, out_w = os.pipe()
                fds += [out_r, out_w]
                err_r, err_w = os.pipe()
                fds += [err_r, err_w]
                rep_r, rep_w = os.pipe()
                fds += [rep_r, rep_w]
                try:
                    run_id = server.spawn(argv, child_env, workdir, limits.rlimits(), (out_w, err_w, rep_w), pids=limits.processes, info=self._bwrap is not None, memory_bytes=limits.memory_bytes, reuse_netns=self._bwrap is not None and not self.allow_network)
                except OSError as exc:
                    return self._failed(lang, f"mcp-exec: cannot start the code: {exc}\n", t_call)
                for fd in (out_w, err_w, rep_w):
                    os.close(fd)
                    fds.remove(fd)
            if prepared is None and self._bwrap is not None:
                self._chore(self._top_up, self._closes)  # nothing set up ahead (the first run, a burst): start now
            return self._serve(server, run_id, lang, timeout, cap, out_r, err_r, rep_r, door, t_call)
        finally:
            if door is not None:
                door.close()
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._leftovers.append(workdir)
            self._run_ended()
            self._chore(self._after_run, self._closes)  # off the caller's thread (at interpreter exit: not at all)

    def _run_ended(self) -> None:
        """Count a run out: a top-up waiting for a quiet moment starts its clock now."""
        with self._ready_lock:
            self._running -= 1
            self._last_end = time.monotonic()
            self._ready_lock.notify_all()

    def _after_run(self, closes: int) -> None:
        """The chore of a run that has ended: remove ended runs' folders, set up the next sandboxes."""
        _remove_folders(self._leftovers)
        if self._bwrap is not None:
            self._top_up(closes)

    def _take_prepared(self) -> _Prepared | None:
        """The sandbox set up ahead for this run, waiting (bounded) for one still being set up."""
        if self._bwrap is None:
            return None
        with self._ready_lock:
            self._ready_lock.wait_for(lambda: bool(self._ready) or not self._preparing, _PREPARED_WAIT_S)
            prepared = self._ready.pop(0) if self._ready else None
            self._ready_lock.notify_all()  # a top-up waiting for a quiet moment may now be short
        if prepared is None:
            return None
        if prepared.dead() or not prepared.wait_ready(_PREPARED_WAIT_S):
            prepared.discard()
            return None
        os.close(prepared.ready_r)
        prepared.ready_r = -1
        return prepared

    def _top_up(self, closes: int) -> None:
        """Set up sandboxes for the next runs, one at a time, until ``sandboxes_ahead`` wait.

        Each set-up waits for a quiet moment (no run in progress for ``_QUIET_S``) unless only
        ``_LOW_SPARES`` are left. ``closes`` is the count of ``close()`` calls when the chore was
        asked for: after a later ``close()`` nothing more is set up, and a set-up under way is
        discarded. Nothing is set up once the interpreter is exiting."""
        while True:
            with self._ready_lock:
                while True:
                    if len(self._ready) >= self.sandboxes_ahead or self._preparing or self._closes != closes:
                        return
                    if not threading.main_thread().is_alive():
                        return
                    quiet_for = time.monotonic() - self._last_end
                    if len(self._ready) <= _LOW_SPARES or (self._running == 0 and quiet_for >= _QUIET_S):
                        break
                    self._ready_lock.wait(_QUIET_S - quiet_for if self._running == 0 else 0.5)
                self._preparing = True
            prepared: _Prepared | None = None
            try:
                prepared = self._set_up_sandbox()
            finally:
                with self._ready_lock:
                    self._preparing = False
                    kept = prepared is not None and len(self._ready) < self.sandboxes_ahead and self._closes == closes
                    if kept:
                        self._ready.append(prepared)  # type: ignore[arg-type]
                    self._ready_lock.notify_all()
            if prepared is None:
                return  # it could not start: the next run sets up its own (and reports why)
            if not kept:
                prepared.discard()
                return

    def _set_up_sandbox(self) -> _Prepared | None:
        """Start a bubblewrap sandbox whose starter waits for a run; None if it cannot start."""
        workdir = tempfile.mkdtemp(prefix="mcp-exec-")
        made: list[int] = []
        door: _Door | None = None
        try:
            door = _Door(os.path.join(workdir, "ipc.sock"))
            for suffix in _SUFFIX.values():  # the run writes its script into one of them, in place
                open(os.path.join(workdir, "main" + suffix), "wb").close()
            for _ in range(4):
                made += os.pipe()
            out_r, out_w, err_r, err_w, rep_r, rep_w, ready_r, ready_w = made
            argv = bwrap_command(
                self._bwrap or "bwrap", list(STARTER), workdir,
                allow_network=self.allow_network, tmp_size_mb=self.file_size_limit_mb or None,
                read_only=self._read_only_paths(), info_fd=3, work_size_mb=self.disk_limit_mb or None,
            )
            server = fork_server()
            if not isinstance(server, ForkServer):  # bubblewrap runs only where the fork server does
                raise OSError("no fork server to set a sandbox up")
            run_id = server.prepare(argv, {"PATH": "/usr/bin:/bin"}, workdir, (out_w, err_w, rep_w, ready_w), pids=self.process_limit or None, reuse_netns=not self.allow_network)
            for fd in (out_w, err_w, rep_w, ready_w):
                os.close(fd)
                made.remove(fd)
        except OSError:
            if door is not None:
                door.close()
            for fd in made:
                try:
                    os.close(fd)
                except OSError:
                    pass
            shutil.rmtree(workdir, ignore_errors=True)
            return None
        return _Prepared(server, run_id, workdir, door, out_r, err_r, rep_r, ready_r)

    def _serve(self, server: Any, run_id: int, lang: str, timeout: float, cap: int, out_r: int, err_r: int, rep_r: int, door: _Door, t_call: float) -> ExecutionResult:
        """The run's event loop: output, the exit report, the IPC door, and the deadline."""
        out, err = _Capped(cap), _Capped(cap)
        report_raw = bytearray()
        report: dict[str, Any] | None = None
        report_eof = False
        sel = selectors.DefaultSelector()
        try:
            sel.register(out_r, selectors.EVENT_READ, out)
            sel.register(err_r, selectors.EVENT_READ, err)
            sel.register(rep_r, selectors.EVENT_READ, "report")
            sel.register(door.listener, selectors.EVENT_READ, "door")
            open_pipes = 2
            deadline = time.perf_counter() + timeout
            killed_at: float | None = None
            ended_at: float | None = None
            while True:
                now = time.perf_counter()
                if report_eof and open_pipes == 0:
                    break
                if report_eof and ended_at is None:
                    ended_at = now
                if ended_at is not None and now - ended_at >= _DRAIN_GRACE_S:
                    break  # output held open by processes the run left behind (process isolation)
                if killed_at is None and not report_eof and now >= deadline:
                    server.kill(run_id, inner=self._bwrap is not None)
                    killed_at = now
                if killed_at is not None and now - killed_at >= _KILL_GRACE_S:
                    break
                if ended_at is not None:
                    wait = ended_at + _DRAIN_GRACE_S - now
                elif killed_at is not None:
                    wait = killed_at + _KILL_GRACE_S - now
                else:
                    wait = deadline - now
                for key, _ in sel.select(max(0.0, wait)):
                    data = key.data
                    if data == "door":
                        door.accept(sel)
                    elif isinstance(data, _Conn):
                        door.read(data, sel)
                    else:
                        try:
                            chunk = os.read(key.fd, _READ_CHUNK)
                        except OSError:
                            chunk = b""
                        if data == "report":
                            if chunk:
                                report_raw += chunk
                            if not chunk or b"\n" in chunk:  # one line, then the fork server closes it
                                report_eof = True
                                sel.unregister(key.fd)
                        elif chunk:
                            data.feed(chunk)
                        else:
                            open_pipes -= 1
                            sel.unregister(key.fd)
            door.settle(sel)
        finally:
            sel.close()
        report = _parse_report(bytes(report_raw))
        timed_out = killed_at is not None
        if report is None:  # the fork server failed to start it, or the kill grace ran out
            exit_code = -_SIGKILL if timed_out else 127
            peak, duration_ms = 0, (time.perf_counter() - t_call) * 1000.0
        else:
            exit_code = os.waitstatus_to_exitcode(report["status"])
            if self._bwrap is not None and 128 < exit_code < 128 + 65:
                exit_code = 128 - exit_code  # bubblewrap reports a signal like the shell: 128 + n
            peak, duration_ms = int(report["maxrss_kb"]) * 1024, float(report["duration_ms"])
        stderr = err.text()
        if report is None and not timed_out:
            stderr += report_raw.decode(errors="replace")
        total_ms = (time.perf_counter() - t_call) * 1000.0
        return ExecutionResult(
            language=lang,
            exit_code=exit_code,
            stdout=out.text(),
            stderr=stderr,
            duration_ms=duration_ms,
            peak_rss_bytes=peak,
            timed_out=timed_out,
            output_truncated=out.truncated or err.truncated,
            result_size_bytes=len(out.data),
            tool_calls=door.calls,
            exit_reason="memory" if report is not None and report.get("oom") and not timed_out else _exit_reason(exit_code, timed_out, stderr, report is None, self._bwrap is not None),
            overhead_ms=max(0.0, total_ms - duration_ms),
            isolation=self.isolation,
        )

    def _failed(self, lang: str, message: str, t_call: float) -> ExecutionResult:
        return ExecutionResult(lang, 127, "", message, 0.0, 0, exit_reason="sandbox_error", overhead_ms=(time.perf_counter() - t_call) * 1000.0, isolation=self.isolation)

    def _read_only_paths(self) -> list[str]:
        """Inputs that live under the host's /tmp or /run, which the sandbox sees empty otherwise."""
        paths = []
        hidden = hidden_trees()
        prefixes = {os.path.dirname(os.path.dirname(os.path.abspath(p))) for p in (self.python, sys.executable)}
        for path in (self.sdk_dir, *sorted(prefixes)):
            if path and under(path, hidden) and os.path.isdir(path):
                paths.append(path)
        return paths

    def _environment(self, workdir: str, extra: Mapping[str, str] | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": workdir,
            "PWD": workdir,
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


def _parse_report(raw: bytes) -> dict[str, Any] | None:
    try:
        report = json.loads(raw)
        return report if isinstance(report, dict) and "status" in report else None
    except ValueError:
        return None


def _exit_reason(exit_code: int, timed_out: bool, stderr: str, no_report: bool, bwrap: bool) -> str:
    """Why a run ended, from its status and (for limits the kernel reports as an errno) its stderr."""
    if timed_out:
        return "timeout"
    if no_report or (bwrap and stderr.startswith("bwrap:")) or (exit_code == 127 and stderr.startswith("mcp-exec: cannot ")):
        return "sandbox_error"  # the code never ran: the sandbox, its limits or its interpreter failed
    if exit_code == -_SIGXCPU:
        return "cpu_time"
    if exit_code == -_SIGXFSZ:
        return "file_size"
    if exit_code == 0:
        return "exit"
    tail = stderr[-4096:]
    for reason, needles in _REASON_TEXT:
        if any(n in tail for n in needles):
            return reason
    return "signal" if exit_code < 0 else "exit"
