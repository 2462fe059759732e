"""The resource history's stores; :func:`create_history` picks one after ``registry.provider``."""

from __future__ import annotations

from lightd_coordinator.config import RegistrySettings
from lightd_coordinator.history.base import StatsHistory
from lightd_coordinator.history.keeper import HistoryKeeper
from lightd_coordinator.history.memory import MemoryStatsHistory
from lightd_coordinator.history.sqlite import SqliteStatsHistory

__all__ = [
    "HistoryKeeper",
    "MemoryStatsHistory",
    "SqliteStatsHistory",
    "StatsHistory",
    "create_history",
]


def create_history(settings: RegistrySettings) -> StatsHistory:
    """The store beside the registry: the registry's sqlite file, else memory."""
    if settings.provider == "sqlite":
        return SqliteStatsHistory(settings.path)
    return MemoryStatsHistory()
