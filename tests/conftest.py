"""Shared test setup: a private metrics-history folder and a clean OpenTelemetry environment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

_OTEL_VARS = (
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_METRIC_EXPORT_INTERVAL",
)


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test writes history into its own folder and sees no OTEL_* settings from the machine."""
    for name in _OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MCP_EXEC_METRICS_DIR", str(tmp_path_factory.mktemp("metrics-history")))
    yield


class FakeClock:
    """A wall clock in nanoseconds that tests move by hand."""

    def __init__(self, start_ns: int) -> None:
        self.now = start_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


@pytest.fixture
def fake_clock() -> FakeClock:
    from datetime import datetime, timezone

    return FakeClock(int(datetime(2024, 11, 8, 10, 30, 0, tzinfo=timezone.utc).timestamp() * 1e9))


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


os.environ.setdefault("PYTHONHASHSEED", "0")
