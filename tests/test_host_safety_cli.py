"""Issue 11: the command line never blocks or prints a usage screen on a bad argument.

``--session`` naming a FIFO (or any path that is not a regular file) used to block forever on the
read; ``demo --bogus`` printed five lines of usage. Both are now one-line errors with a non-zero
status, like every other bad argument.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.test_cli import one_line_error, run


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
@pytest.mark.parametrize("name", ["session_001.json", "pipe"])
@pytest.mark.parametrize("command", ["report", "dashboard"])
def test_a_session_that_is_a_fifo_is_a_one_line_error_not_a_hang(tmp_path: Path, command: str, name: str) -> None:
    fifo = tmp_path / name
    os.mkfifo(fifo)
    line = one_line_error(run(command, "--session", str(fifo), timeout=20), 1, f"--session {fifo}: not a regular file")
    assert line.startswith("mcp-exec-telemetry")


def test_a_session_that_is_a_folder_is_a_one_line_error(tmp_path: Path) -> None:
    line = one_line_error(run("report", "--session", str(tmp_path), timeout=20), 1, "not a regular file")
    assert str(tmp_path) in line


def test_demo_with_an_unknown_option_is_a_one_line_error() -> None:
    line = one_line_error(run("demo", "--bogus", timeout=30), 2, "unrecognized arguments: --bogus")
    assert line == "mcp-exec-telemetry demo: error: unrecognized arguments: --bogus (see mcp-exec-telemetry demo --help)"
