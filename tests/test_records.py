"""The records' and the configuration's written-out ``__init__``, ``__repr__`` and ``__eq__`` behave as ``@dataclass`` would make them."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import datetime, timezone
from typing import Any

import pytest

from mcp_exec_telemetry import records

CLASSES = [getattr(records, name) for name in records.__all__ if name != "DetailLevel"]


def _reference(cls: type) -> type:
    """The class ``@dataclass`` generates from the same fields (same defaults, same slots)."""
    spec = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            spec.append((f.name, Any, dataclasses.field(default=f.default)))
        elif f.default_factory is not dataclasses.MISSING:
            spec.append((f.name, Any, dataclasses.field(default_factory=f.default_factory)))
        else:
            spec.append((f.name, Any))
    return dataclasses.make_dataclass(cls.__name__, spec, slots=hasattr(cls, "__slots__"))


def _assert_same_defaults(cls: type, ref: type) -> None:
    """The written-out ``__init__`` takes the same parameters as the generated one, and leaving one
    out gives the field's declared default (or a fresh value of its factory)."""
    ours, theirs = inspect.signature(cls).parameters, inspect.signature(ref).parameters
    assert list(ours) == list(theirs)
    for name, p in ours.items():
        assert (p.default is inspect.Parameter.empty) == (theirs[name].default is inspect.Parameter.empty), name
    required = {n: f"{n}-value" for n, p in ours.items() if p.default is inspect.Parameter.empty}
    made, reference = cls(**required), ref(**required)
    for f in dataclasses.fields(cls):
        assert getattr(made, f.name) == getattr(reference, f.name), f.name


def _sample(cls: type, seed: int) -> dict[str, Any]:
    """A value for every field, distinct per ``seed``."""
    ts = datetime(2026, 1, 1 + seed, tzinfo=timezone.utc)
    return {f.name: {0: ts, 1: f"{f.name}-{seed}", 2: seed + 0.5, 3: {f.name: seed}}[i % 4] for i, f in enumerate(dataclasses.fields(cls))}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_a_record_is_the_dataclass_its_fields_describe(cls: type) -> None:
    ref = _reference(cls)
    assert dataclasses.is_dataclass(cls)
    assert [p.name for p in inspect.signature(cls).parameters.values()] == [p.name for p in inspect.signature(ref).parameters.values()]
    _assert_same_defaults(cls, ref)
    values = _sample(cls, 1)
    ours, theirs = cls(**values), ref(**values)
    assert repr(ours) == repr(theirs)
    assert dataclasses.asdict(ours) == dataclasses.asdict(theirs)
    assert ours == cls(**values) and not (ours != cls(**values))
    assert ours != cls(**_sample(cls, 2))
    assert ours != theirs  # another class, as between two dataclasses
    with pytest.raises(TypeError):
        hash(ours)
    assert hasattr(cls, "__slots__") == hasattr(ref, "__slots__")
    changed = dataclasses.replace(ours, **{dataclasses.fields(cls)[0].name: "other"})
    assert changed != ours and getattr(changed, dataclasses.fields(cls)[0].name) == "other"


@pytest.mark.parametrize("cls", [c for c in CLASSES if any(f.default_factory is not dataclasses.MISSING for f in dataclasses.fields(c))],
                         ids=lambda c: c.__name__)
def test_defaults_made_by_a_factory_are_fresh_per_instance(cls: type) -> None:
    required = {f.name: 0 for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    a, b = cls(**required), cls(**required)
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(a, f.name) == f.default_factory() and getattr(a, f.name) is not getattr(b, f.name)
    assert repr(a) == repr(_reference(cls)(**required))


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_no_method_is_generated_at_import(cls: type) -> None:
    """``@dataclass`` would ``exec`` each class's ``__init__``, ``__repr__`` and ``__eq__`` at import
    (about 0.4 ms a class in every process that imports ``observe``); these are compiled with the module."""
    for method in ("__init__", "__repr__", "__eq__"):
        assert getattr(cls, method).__code__.co_filename == records.__file__, method


def test_the_telemetry_config_shares_the_records_repr_and_eq_and_behaves_as_its_dataclass() -> None:
    from mcp_exec_telemetry import config
    from mcp_exec_telemetry.config import TelemetryConfig

    ref = _reference(TelemetryConfig)
    assert dataclasses.is_dataclass(TelemetryConfig)
    _assert_same_defaults(TelemetryConfig, ref)
    for method in ("__init__", "__repr__", "__eq__"):  # none generated and compiled at import
        assert getattr(TelemetryConfig, method).__code__.co_filename in (records.__file__, config.__file__), method
    assert TelemetryConfig(resource_attributes={"a": 1}).resource_attributes == {"a": 1}
    assert TelemetryConfig().resource_attributes is not TelemetryConfig().resource_attributes
    a, b = TelemetryConfig(namespace="agent", strict=True), TelemetryConfig(namespace="agent", strict=True)
    kwargs = {f.name: getattr(a, f.name) for f in dataclasses.fields(TelemetryConfig)}
    assert repr(a) == repr(ref(**kwargs)).replace(ref.__qualname__, "TelemetryConfig", 1)
    assert a == b and a != TelemetryConfig(namespace="other") and a != kwargs
    assert TelemetryConfig.__hash__ is None  # mutable and compared by value, as @dataclass makes it
    assert dataclasses.replace(a, strict=False) == TelemetryConfig(namespace="agent")
