"""Issue 11: docs/RELIABILITY.md's host-safety section names only tests that exist."""

from __future__ import annotations

import re

from tests.conftest import repo_root


def test_the_host_safety_rows_name_existing_tests():
    doc = (repo_root() / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    section = doc.split("## The host is never broken", 1)[1]
    named = re.findall(r"`(test_host_safety_\w+\.py)::(\w+)`", section)
    assert len(named) >= 25, named
    for file, test in named:
        source = (repo_root() / "tests" / file).read_text(encoding="utf-8")
        assert f"def {test}(" in source, f"docs/RELIABILITY.md names {file}::{test}, which does not exist"
