"""The container engine behind one interface (:class:`~.base.Backend`).

- :mod:`.base`        the interface, its dataclasses and errors
- :mod:`.docker_sdk`  the Docker SDK implementation (the only module importing ``docker``)
- :mod:`.memory`      an in-memory implementation for tests of the rules (imported by
                      name, so the agent itself never loads it)
"""

from lightd_agent.backend.base import (
    Backend,
    ContainerInfo,
    EngineError,
    EngineEvent,
    EventWatch,
    ImageMissing,
    InstallOutcome,
    PortInUse,
    Usage,
)

__all__ = [
    "Backend",
    "ContainerInfo",
    "EngineError",
    "EngineEvent",
    "EventWatch",
    "ImageMissing",
    "InstallOutcome",
    "PortInUse",
    "Usage",
]
