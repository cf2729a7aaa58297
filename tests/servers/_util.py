"""Shared helpers for the real-backend test servers: free ports, bounded waits,
binary lookup and a child-process wrapper that always cleans up.

Everything here listens on or talks to 127.0.0.1 only.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, TypeVar

import pytest

T = TypeVar("T")

#: Debian package that provides each binary, for skip/fail messages.
_PACKAGE_OF: dict[str, str] = {
    "prometheus": "prometheus",
    "influxd": "influxdb",
    "influx": "influxdb-client",
}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    The kernel picks it (bind to port 0), so collisions are unlikely but not
    impossible if another process grabs it before the caller binds.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def refused_endpoint() -> str:
    """Return ``http://127.0.0.1:PORT`` where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


def require_binary(name: str) -> str:
    """Return the path of executable ``name`` or stop the current test.

    A missing binary is a hard failure under CI (``CI=true``, where ``.ci/run``
    is expected to install it) and a skip elsewhere, with a reason that says
    how to install it.
    """
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if path:
        return path
    package = _PACKAGE_OF.get(name, name)
    reason = f"{name!r} binary not found on PATH; install it with `apt-get install -y {package}`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)
    raise AssertionError("unreachable")  # pragma: no cover - pytest.skip raises


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    message: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Raises ``TimeoutError`` with ``message`` (a string or a callable producing
    one, evaluated only on failure) after ``timeout`` seconds. Exceptions from
    the predicate propagate.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise TimeoutError(f"timed out after {timeout:.1f}s: {text}")
        time.sleep(interval)


def http_request(
    url: str,
    data: bytes | None = None,
    method: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """Do one HTTP request with urllib and return ``(status, body)``.

    HTTP error statuses are returned, not raised; connection errors raise
    ``OSError`` (``urllib.error.URLError`` is a subclass).
    """
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        body = err.read() if err.fp is not None else b""
        return int(err.code), body


# --------------------------------------------------------------------------- processes

_LIVE: set[ManagedProcess] = set()
_LIVE_LOCK = threading.Lock()


def _kill_leftovers() -> None:
    """At interpreter exit, stop any server a test forgot to stop."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for proc in leftovers:
        proc.stop(timeout=3.0)


atexit.register(_kill_leftovers)


class ManagedProcess:
    """A server binary run as a child process with its own temporary directory.

    Output goes to ``<tmpdir>/<name>.log``; ``log_tail()`` reads the end for error
    messages. ``stop()`` terminates, then kills after a timeout, and removes the
    temp dir (unless ``keep_dir``). Safe to call ``stop()`` more than once.
    """

    def __init__(self, name: str, keep_dir: bool = False) -> None:
        self.name = name
        self.keep_dir = keep_dir
        self.dir = Path(tempfile.mkdtemp(prefix=f"mcp-exec-{name}-"))
        self.log_path = self.dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        """Start ``argv`` with stdout and stderr appended to the log file."""
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_file = log
        try:
            self.proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(self.dir),
                env=dict(env) if env is not None else None,
            )
        except BaseException:
            self.stop()
            raise
        with _LIVE_LOCK:
            _LIVE.add(self)

    @property
    def running(self) -> bool:
        """True while the child process exists and has not exited."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of the process log (best effort)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no log>"
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until true; fail early if the process exits, with the log tail.

        ``what`` describes the readiness condition for error messages. On any
        failure the process is stopped before the exception propagates.
        """

        def ready() -> bool:
            if not self.running:
                code = self.proc.returncode if self.proc is not None else None
                raise RuntimeError(
                    f"{self.name} exited with code {code} before it was ready ({what}); log tail:\n{self.log_tail()}"
                )
            try:
                return check()
            except OSError:
                return False

        try:
            wait_until(ready, timeout, lambda: f"{self.name} not ready ({what}); log tail:\n{self.log_tail()}", 0.1)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate (SIGTERM), then kill after ``timeout`` s; return the exit code."""
        code: int | None = None
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    code = proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait(timeout=5)
                except ProcessLookupError:
                    code = proc.poll()
            else:
                code = proc.returncode
        with _LIVE_LOCK:
            _LIVE.discard(self)
        log = self._log_file
        if log is not None:
            log.close()
            self._log_file = None
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
        return code


class BinaryServer:
    """What the binary-backed servers share: port-retrying start, stop, context manager, log tail.

    Subclasses set ``BINARY`` and implement ``_start_once(binary)``, which creates ``self._proc``.
    """

    BINARY = ""
    binary: str | None = None
    _proc: "ManagedProcess | None" = None

    def start(self):  # type: ignore[no-untyped-def]
        """Start the binary and wait until it is ready.

        Retried (up to 3 attempts) only if a picked free port was taken meanwhile.
        """
        binary = self.binary or require_binary(self.BINARY)
        for attempt in range(3):
            try:
                return self._start_once(binary)
            except RuntimeError as err:
                if "address already in use" not in str(err) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self, binary: str):  # type: ignore[no-untyped-def]  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self) -> None:
        """Terminate (then kill) the process and remove its temp dir."""
        if self._proc is not None:
            self._proc.stop()

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server log, for diagnostics."""
        return self._proc.log_tail(lines) if self._proc is not None else "<not started>"
