"""The Docker backend, kept as an import path: see :mod:`lightd_agent.backend`."""

from lightd_agent.backend.base import (
    LABEL_NODE,
    LABEL_ROLE,
    LABEL_SCOPE,
    LABEL_SERVER,
    LABEL_SPEC,
    VOLUME_PREFIX,
    InstallOutcome,
)
from lightd_agent.backend.docker_sdk import DockerBackend
from lightd_agent.backend.docker_streams import EventReader
from lightd_agent.backend.docker_translate import stop_seconds

__all__ = [
    "LABEL_NODE",
    "LABEL_ROLE",
    "LABEL_SCOPE",
    "LABEL_SERVER",
    "LABEL_SPEC",
    "VOLUME_PREFIX",
    "DockerBackend",
    "EventReader",
    "InstallOutcome",
    "stop_seconds",
]
