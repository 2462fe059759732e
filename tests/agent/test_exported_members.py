"""The agent's public packages export exactly their ``__all__`` (as httpx pins its own)."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

EXPORTS = {
    "lightd_agent": ["__version__"],
    "lightd_agent.backend": [
        "Backend",
        "ContainerInfo",
        "EngineError",
        "EngineEvent",
        "EventWatch",
        "ImageMissing",
        "InstallOutcome",
        "PortInUse",
        "Usage",
    ],
    "lightd_agent.servers": [
        "STATES",
        "TRANSITIONS",
        "Cause",
        "IllegalTransition",
        "Machine",
        "Server",
        "ServerManager",
    ],
    "lightd_agent.remote": ["RemoteSync"],
    "lightd_agent.schedules": [
        "SCHEDULES_FILE",
        "AgentTaskActions",
        "Clock",
        "ManualClock",
        "Schedule",
        "ScheduleStore",
        "Scheduler",
        "SystemClock",
        "TaskActions",
        "TaskFailed",
    ],
}


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_all_is_pinned(name: str) -> None:
    module = importlib.import_module(name)
    assert list(module.__all__) == EXPORTS[name]
    for member in module.__all__:
        assert hasattr(module, member), f"{name}.{member} is in __all__ but missing"


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_every_public_member_is_in_all(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        member
        for member, value in vars(module).items()
        if not member.startswith("_") and not isinstance(value, ModuleType)
    }
    public.discard("annotations")  # from __future__
    assert public <= set(module.__all__), sorted(public - set(module.__all__))
