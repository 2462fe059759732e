"""Where the coordinator keeps the resource history: per server, the agents' stats samples.

A small storage interface, so a provider is one class beside the others::

    StatsHistory             the interface (this module)
    ├── MemoryStatsHistory   history/memory.py  gone on restart
    └── SqliteStatsHistory   history/sqlite.py  the registry's file; survives a restart

Stores keep what they are given; the bounds (what a node may add) are applied once, above
them, by :class:`~lightd_coordinator.history.keeper.HistoryKeeper`. Rules every store follows:

- ``add`` appends one sample and, in the same step, keeps only the newest ``keep`` samples of
  that server newer than ``after`` (so a server's history never grows past its bound);
- ``read`` answers oldest first, strictly after ``since``;
- ``purge`` drops every sample older than its argument (servers that stopped reporting).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from lightd_shared.stats import StatsSample

__all__ = ["StatsHistory"]


class StatsHistory(ABC):
    provider: str = "abstract"

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or load; called once before the first operation."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``open`` took."""

    @abstractmethod
    async def add(
        self, node_id: str, server: str, sample: StatsSample, *, keep: int, after: datetime
    ) -> None:
        """Append ``sample``; keep the newest ``keep`` samples newer than ``after``."""

    @abstractmethod
    async def latest(self, node_id: str, server: str) -> datetime | None:
        """The newest sample's timestamp (``None``: no history)."""

    @abstractmethod
    async def servers(self, node_id: str) -> set[str]:
        """The servers of ``node_id`` that have a history."""

    @abstractmethod
    async def read(
        self, node_id: str, server: str, *, since: datetime | None, limit: int
    ) -> list[StatsSample]:
        """At most ``limit`` samples after ``since`` (all when ``None``), oldest first."""

    @abstractmethod
    async def purge(self, before: datetime) -> int:
        """Forget every sample older than ``before``; how many went."""

    @abstractmethod
    async def forget(self, node_id: str) -> None:
        """Forget every sample of ``node_id`` (it was unregistered)."""
