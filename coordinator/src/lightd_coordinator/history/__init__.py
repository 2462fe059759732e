"""The resource history's stores; :func:`create_history` picks one after ``registry.provider``."""

from __future__ import annotations

import logging

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

log = logging.getLogger(__name__)


def create_history(settings: RegistrySettings) -> StatsHistory:
    """The store beside the registry: the registry's sqlite file, else memory.

    A provider without a history store of its own (add one beside ``memory.py`` and
    ``sqlite.py``, and a branch here) keeps the history in memory, and says so.
    """
    provider: str = settings.provider
    if provider == "sqlite":
        return SqliteStatsHistory(settings.path)
    if provider != "memory":
        log.warning(
            "registry provider %r has no stats history store yet: the servers' resource "
            "history is kept in memory (lost on restart)",
            provider,
        )
    return MemoryStatsHistory()
