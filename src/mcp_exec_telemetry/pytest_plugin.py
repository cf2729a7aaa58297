"""pytest plugin: the ``telemetry_capture`` fixture, a strict in-memory session per test."""

from __future__ import annotations

from typing import Iterator

import pytest

from .testing import Capture, capture


@pytest.fixture
def telemetry_capture() -> Iterator[Capture]:
    """A strict :func:`mcp_exec_telemetry.testing.capture` session, shut down after the test."""
    with capture() as cap:
        yield cap
