"""Issue 11: the skill store (integrations/skills.py) under concurrency and faults.

Eight threads running one skill five times each leave ``run_count`` at exactly 40; readers during
saves see one whole version or the other, never partial JSON, partial code or a missing file; a
corrupt ``skill.json`` is skipped by ``list()`` and ``search()`` with a warning; a save that fails
for lack of space (a real ``RLIMIT_FSIZE`` write failure in a subprocess) leaves the old skill intact.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mcp_exec_telemetry import observe
from mcp_exec_telemetry.integrations import CodeExecutor, SkillManager

THREADS, RUNS = 8, 5


def test_eight_threads_running_one_skill_count_every_run_exactly(tmp_path):
    with observe(history=False) as tel:
        skills = SkillManager(tmp_path / "skills", tel, CodeExecutor(tel))
        skills.save("s", "print('ok')")
        errors: list[BaseException] = []

        def runner():
            try:
                for _ in range(RUNS):
                    assert skills.run("s").success
            except BaseException as exc:  # collected: an exception must not escape run()
                errors.append(exc)

        threads = [threading.Thread(target=runner) for _ in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        meta = json.loads((tmp_path / "skills" / "s" / "skill.json").read_text())
        assert (meta["run_count"], meta["success_count"]) == (THREADS * RUNS, THREADS * RUNS)
        assert tel.get_skill_metrics().total_executions == THREADS * RUNS


def test_readers_during_saves_see_whole_versions_only(tmp_path):
    skills = SkillManager(tmp_path)
    versions = [f"# version {i}\n" + "x = 1\n" * (2000 + i) for i in range(2)]
    skills.save("s", versions[0], description="d0")
    stop = threading.Event()
    seen: list[str] = []
    problems: list[BaseException] = []

    def writer():
        i = 0
        while not stop.is_set():
            i += 1
            skills.save("s", versions[i % 2], description=f"d{i % 2}")

    def reader():
        other = SkillManager(tmp_path)  # another manager of the same store
        while not stop.is_set():
            try:
                s = other.load("s")
                assert s.code in versions, "partial code"
                assert s.description in ("d0", "d1")
                seen.append(s.code[:11])
            except BaseException as exc:
                problems.append(exc)
                return

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    stop.wait(1.5)
    stop.set()
    for t in threads:
        t.join(30)
    assert problems == [], problems[:1]
    assert len(seen) > 50 and set(seen) == {"# version 0", "# version 1"}
    assert not list((tmp_path / "s").glob(".*.tmp"))  # no temporary file left behind


def test_a_corrupt_skill_json_is_skipped_with_a_warning(tmp_path, caplog):
    skills = SkillManager(tmp_path)
    skills.save("good_parser", "print(1)", description="parse csv")
    skills.save("broken", "print(2)", description="parse json")
    (tmp_path / "broken" / "skill.json").write_text('{"name": "broken", "lang')  # cut short
    caplog.set_level(logging.WARNING, logger="mcp_exec_telemetry")
    assert [s.name for s in skills.list()] == ["good_parser"]
    assert [s.name for s in skills.search("parse")] == ["good_parser"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "mcp_exec_telemetry"]
    assert len(warnings) == 2 and all("'broken'" in w and "not valid JSON" in w for w in warnings), warnings
    skills.save("broken", "print(3)")  # a save replaces the corrupt file
    assert skills.load("broken").code == "print(3)"


FULL_DISK = r"""
import resource, signal, sys
from mcp_exec_telemetry.integrations import SkillManager
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    SkillManager(sys.argv[1]).save("s", "y = 2\n" * 10_000, description="new")
except OSError as exc:
    print(f"OSError {exc.errno}")
"""


def test_a_failed_save_leaves_the_old_skill_intact(tmp_path):
    skills = SkillManager(tmp_path)
    old_code = "x = 1\n" * 100
    skills.save("s", old_code, description="old")
    before = skills.load("s")
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("OSError"), (out.stdout, out.stderr)
    after = skills.load("s")
    assert (after.code, after.description, after.updated_at) == (old_code, "old", before.updated_at)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["skill.json", "skill.py"]


@pytest.mark.parametrize("bad", ["report\n", "", ".", "..", "a/b", "-x", "a" * 129, "caf\u00e9"])
def test_a_skill_name_that_is_not_a_plain_folder_name_is_refused(tmp_path, bad):
    # "report\n" passed the old check (a regex ending in "$" matches before a final newline) and made
    # a folder with a newline in its name.
    skills = SkillManager(tmp_path)
    with pytest.raises(ValueError, match="invalid skill name"):
        skills.save(bad, "print(1)")
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # no skill folder was made
