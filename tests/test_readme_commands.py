"""README's first commands ("See it work") work on a fresh clone exactly as written.

The test copies the repository's tracked files (what a clone holds) to an empty folder and runs the
README's bash block there, unchanged, with bash: a new venv, an install from the checkout (pip, from
the package index for the dependencies), the demo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import repo_root


def see_it_work_commands() -> str:
    readme = (repo_root() / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## See it work") :]
    section = section[: section.index("\n## ", 1)]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "README's 'See it work' has no bash block"
    return match.group(1)


def test_see_it_work_installs_from_the_checkout_not_from_the_package_index() -> None:
    commands = see_it_work_commands()
    assert "pip install -e '.[all]'" in commands
    assert "mcp-exec-telemetry[" not in commands  # the package is not published


def fresh_clone(dest: Path) -> Path:
    root = repo_root()
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=False)
    if listed.returncode != 0 or not listed.stdout:
        pytest.skip("not a git checkout: no tracked files to clone")
    for name in listed.stdout.decode().split("\0"):
        if not name:
            continue
        src = root / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


@pytest.mark.slow
def test_see_it_work_runs_on_a_fresh_clone_exactly_as_written(tmp_path: Path) -> None:
    clone = fresh_clone(tmp_path / "clone")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(repo_root())))
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", MCP_EXEC_METRICS_DIR=str(tmp_path / "history"))
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", see_it_work_commands()], cwd=clone, env=env, capture_output=True, text=True, timeout=540)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    assert "MCP Execution Metrics Dashboard" in text
    start = text.index("\n{\n") + 1
    summary = json.loads(text[start : text.index("\n}\n", start) + 2])
    assert summary["execution"]["total_executions"] >= 1
    assert summary["discovery"]["total_queries"] >= 1
    # The demo ran from the clone's own venv, installed from the clone.
    assert (clone / ".venv" / "bin" / "mcp-exec-telemetry").exists()
