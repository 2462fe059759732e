"""Registry providers; :func:`create_registry` picks one from ``registry.provider``."""

from __future__ import annotations

from lightd_coordinator.config import RegistrySettings
from lightd_coordinator.registry.base import (
    HeartbeatOutcome,
    Registry,
    RegistryUnavailable,
    StoredEvent,
    StoredNode,
)
from lightd_coordinator.registry.memory import MemoryRegistry
from lightd_coordinator.registry.sqlite import SqliteRegistry

__all__ = [
    "HeartbeatOutcome",
    "MemoryRegistry",
    "Registry",
    "RegistryUnavailable",
    "SqliteRegistry",
    "StoredEvent",
    "StoredNode",
    "create_registry",
]


def create_registry(settings: RegistrySettings) -> Registry:
    """The store named by ``registry.provider``: ``memory``, ``sqlite`` at ``registry.path``, or
    ``redis`` at ``registry.redis_url`` (imported only then)."""
    if settings.provider == "redis":
        from lightd_coordinator.registry.redis import RedisRegistry

        return RedisRegistry(settings.redis_url, prefix=settings.redis_prefix)
    if settings.provider == "sqlite":
        return SqliteRegistry(settings.path)
    return MemoryRegistry()
