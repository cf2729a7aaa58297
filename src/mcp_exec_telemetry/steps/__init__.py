"""The six steps of an agent's code-execution loop, one module each, each owning its instruments."""

from .discovery import DiscoveryStep, SearchOperation
from .execution import ExecutionStep, RunOperation
from .filtering import FilteringStep, FilterOperation
from .sdk import GenerateOperation, SdkStep
from .security import SecurityStep
from .skills import SkillRunOperation, SkillsStep

ALL_STEPS = (DiscoveryStep, ExecutionStep, SdkStep, FilteringStep, SkillsStep, SecurityStep)

__all__ = [
    "ALL_STEPS",
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
