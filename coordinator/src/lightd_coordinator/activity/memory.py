"""The ``memory`` activity log: a bounded deque in the process; gone on restart."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from lightd_coordinator.activity.base import ActivityStore, Draft, to_entry
from lightd_shared.activity import ActivityEntry, ActivityQuery

__all__ = ["MemoryActivityStore"]


class MemoryActivityStore(ActivityStore):
    provider = "memory"

    def __init__(self) -> None:
        self._entries: deque[ActivityEntry] = deque()
        self._last = 0

    async def append(self, draft: Draft, *, keep: int) -> int:
        self._last += 1
        self._entries.append(to_entry(self._last, draft))
        while len(self._entries) > keep:
            self._entries.popleft()
        return self._last

    async def page(self, query: ActivityQuery, limit: int) -> list[ActivityEntry]:
        found: list[ActivityEntry] = []
        for entry in reversed(self._entries):
            if len(found) >= limit:
                break
            if query.matches(entry):
                found.append(entry)
        return found

    async def purge(self, before: datetime) -> int:
        kept = deque(entry for entry in self._entries if entry.time >= before)
        gone = len(self._entries) - len(kept)
        self._entries = kept
        return gone
