"""The six steps of an agent's code-execution loop, one module each, each creating its instruments.

A step's module is loaded when a session first uses the step (see ``Telemetry.__getattr__``), so
a process that only runs code loads only the execution step. The names below are imported on
first use (PEP 562); every step's instrument declarations are in :mod:`mcp_exec_telemetry.views`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs; at run time see __getattr__
    from .discovery import DiscoveryStep, SearchOperation
    from .execution import ExecutionStep, RunOperation
    from .filtering import FilteringStep, FilterOperation
    from .sdk import GenerateOperation, SdkStep
    from .security import SecurityStep
    from .skills import SkillRunOperation, SkillsStep

__all__ = [
    "ALL_STEPS",
    "STEP_CLASSES",
    "DiscoveryStep",
    "ExecutionStep",
    "SdkStep",
    "FilteringStep",
    "SkillsStep",
    "SecurityStep",
    "SearchOperation",
    "RunOperation",
    "GenerateOperation",
    "FilterOperation",
    "SkillRunOperation",
]

STEP_CLASSES: dict[str, tuple[str, str]] = {
    "discovery": ("discovery", "DiscoveryStep"),
    "execution": ("execution", "ExecutionStep"),
    "sdk": ("sdk", "SdkStep"),
    "filtering": ("filtering", "FilteringStep"),
    "skills": ("skills", "SkillsStep"),
    "security": ("security", "SecurityStep"),
}
"""Each step's name (its attribute on ``Telemetry``) -> the module of this package and the class."""

_OPERATIONS = {
    "SearchOperation": "discovery",
    "RunOperation": "execution",
    "GenerateOperation": "sdk",
    "FilterOperation": "filtering",
    "SkillRunOperation": "skills",
}


def step_class(name: str) -> Any:
    """The class of the step called ``name``, loading its module."""
    module, cls = STEP_CLASSES[name]
    return getattr(import_module(f".{module}", __name__), cls)


def __getattr__(name: str) -> Any:
    if name == "ALL_STEPS":
        value: Any = tuple(step_class(step) for step in STEP_CLASSES)
    elif name in _OPERATIONS:
        value = getattr(import_module(f".{_OPERATIONS[name]}", __name__), name)
    else:
        for step, (_, cls) in STEP_CLASSES.items():
            if cls == name:
                value = step_class(step)
                break
        else:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value
