"""The ``memory`` resource history: one bounded deque per server; gone on restart."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from lightd_coordinator.history.base import StatsHistory
from lightd_shared.stats import StatsSample

__all__ = ["MemoryStatsHistory"]


class MemoryStatsHistory(StatsHistory):
    provider = "memory"

    def __init__(self) -> None:
        self._samples: dict[tuple[str, str], deque[StatsSample]] = {}

    async def add(
        self, node_id: str, server: str, sample: StatsSample, *, keep: int, after: datetime
    ) -> None:
        ring = self._samples.get((node_id, server))
        if ring is None or ring.maxlen != keep:
            ring = deque(ring or (), maxlen=keep)
            self._samples[(node_id, server)] = ring
        ring.append(sample)
        while ring and ring[0].timestamp <= after:
            ring.popleft()

    async def latest(self, node_id: str, server: str) -> datetime | None:
        ring = self._samples.get((node_id, server))
        return ring[-1].timestamp if ring else None

    async def servers(self, node_id: str) -> set[str]:
        return {server for (node, server), ring in self._samples.items() if node == node_id}

    async def read(
        self, node_id: str, server: str, *, since: datetime | None, limit: int
    ) -> list[StatsSample]:
        ring = self._samples.get((node_id, server)) or ()
        found = [s for s in ring if since is None or s.timestamp > since]
        return found[:limit]

    async def purge(self, before: datetime) -> int:
        gone = 0
        for key, ring in list(self._samples.items()):
            while ring and ring[0].timestamp < before:
                ring.popleft()
                gone += 1
            if not ring:
                del self._samples[key]
        return gone

    async def forget(self, node_id: str) -> None:
        for key in [key for key in self._samples if key[0] == node_id]:
            del self._samples[key]
