"""The bounds of the resource history, applied once above any store.

A node is trusted with nothing but its own servers' numbers:

- a sample stamped more than :data:`CLOCK_SKEW` ahead of the coordinator's clock is stamped
  with the coordinator's time; one older than ``stats_retention`` is dropped;
- at most one sample per server per ``stats_min_interval``: a node that reports faster has the
  extra samples dropped (counted, not kept), so its history still covers the retention;
- at most ``stats_max_samples`` samples per server, and ``stats_max_servers`` servers per node;
- one report holds at most one sample per server (the newest wins).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from lightd_coordinator.config import RegistrySettings
from lightd_coordinator.history.base import StatsHistory
from lightd_shared.containers import ContainerStats
from lightd_shared.stats import StatsReportAnswer, StatsSample
from lightd_shared.timestamps import utcnow

__all__ = ["CLOCK_SKEW", "HistoryKeeper"]

log = logging.getLogger(__name__)

CLOCK_SKEW = timedelta(seconds=60)


class HistoryKeeper:
    def __init__(
        self,
        store: StatsHistory,
        settings: RegistrySettings,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.retention = settings.stats_retention
        self.max_samples = settings.stats_max_samples
        self.min_interval = settings.stats_min_interval
        self.max_servers = settings.stats_max_servers
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}
        self.dropped = 0

    async def report(self, node_id: str, samples: list[ContainerStats]) -> StatsReportAnswer:
        now = self._clock()
        oldest = now - self.retention
        newest: dict[str, ContainerStats] = {}
        for stats in samples:
            seen = newest.get(stats.id)
            if seen is None or stats.timestamp >= seen.timestamp:
                newest[stats.id] = stats
        dropped = len(samples) - len(newest)
        accepted = 0
        # one report per node at a time (the bounds hold under races); nodes do not wait on
        # each other
        lock = self._locks.setdefault(node_id, asyncio.Lock())
        async with lock:
            known = await self.store.servers(node_id)
            for server, stats in sorted(newest.items()):
                stamp = now if stats.timestamp > now + CLOCK_SKEW else stats.timestamp
                if stamp <= oldest:
                    dropped += 1
                    continue
                if server not in known and len(known) >= self.max_servers:
                    dropped += 1
                    continue
                latest = await self.store.latest(node_id, server)
                if latest is not None and stamp < latest + self.min_interval:
                    dropped += 1
                    continue
                sample = StatsSample.model_validate(
                    {**stats.model_dump(exclude={"id"}), "timestamp": stamp}
                )
                await self.store.add(node_id, server, sample, keep=self.max_samples, after=oldest)
                known.add(server)
                accepted += 1
        if dropped:
            self.dropped += dropped
            log.debug(
                "node %s: kept %d stats samples, dropped %d (history bounds)",
                node_id,
                accepted,
                dropped,
                extra={"node_id": node_id},
            )
        return StatsReportAnswer(accepted=accepted, dropped=dropped)

    async def read(
        self, node_id: str, server: str, *, since: datetime | None, limit: int
    ) -> list[StatsSample]:
        return await self.store.read(node_id, server, since=since, limit=limit)

    async def forget(self, node_id: str) -> None:
        """The node was unregistered: its servers' history goes with it."""
        await self.store.forget(node_id)
        self._locks.pop(node_id, None)

    async def expire(self) -> int:
        return await self.store.purge(self._clock() - self.retention)
