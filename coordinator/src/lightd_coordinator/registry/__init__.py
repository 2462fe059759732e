"""Registry providers; :func:`create_registry` picks one from ``registry.provider``."""

from __future__ import annotations

from lightd_coordinator.config import RegistrySettings
from lightd_coordinator.registry.base import HeartbeatOutcome, Registry, StoredEvent, StoredNode
from lightd_coordinator.registry.memory import MemoryRegistry
from lightd_coordinator.registry.sqlite import SqliteRegistry

__all__ = [
    "HeartbeatOutcome",
    "MemoryRegistry",
    "Registry",
    "SqliteRegistry",
    "StoredEvent",
    "StoredNode",
    "create_registry",
]


def create_registry(settings: RegistrySettings) -> Registry:
    """The store named by ``registry.provider`` (``memory`` or ``sqlite`` at ``registry.path``)."""
    if settings.provider == "sqlite":
        return SqliteRegistry(settings.path)
    return MemoryRegistry()
