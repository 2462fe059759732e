"""Where the coordinator keeps its activity log: one interface, a store per registry provider::

    ActivityStore              the interface (this module)
    ├── MemoryActivityStore    activity/memory.py  gone on restart
    ├── SqliteActivityStore    activity/sqlite.py  the registry's file; survives a restart
    └── RedisActivityStore     activity/redis.py   the replicas' shared Redis: one log for all

Rules every store follows:

- ``append`` gives the entry the next id (increasing: a page's ``before`` cursor) and, in the
  same step, keeps only the newest ``keep`` entries; ``append_many`` does that for several
  entries in order (a ``grouped`` store in one round trip or one transaction for all);
- ``page`` answers newest first, at most ``limit`` entries that pass ``query.matches``
  (:class:`~lightd_shared.activity.ActivityQuery`: one definition of the filters for all);
- ``purge`` drops every entry older than its argument (``activity.retention``).

Stores keep what they are given; what goes into an entry (and what never does) is decided once,
above them, by :class:`~lightd_coordinator.activity.log.ActivityLog`.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from lightd_shared.activity import ActivityEntry, ActivityQuery

__all__ = ["ActivityStore", "Draft", "to_entry"]

Draft = dict[str, Any]
"""An entry without its id, as JSON (``ActivityEntry.model_dump(mode="json")`` less ``id``)."""


def to_entry(entry_id: int, body: str | Draft) -> ActivityEntry:
    """The stored JSON (or draft) with its id, read back into the shared model."""
    fields = json.loads(body) if isinstance(body, str) else body
    return ActivityEntry.model_validate({**fields, "id": entry_id})


class ActivityStore(ABC):
    provider: str = "abstract"

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Connect or load; called once before the first operation."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``open`` took."""

    grouped: bool = False
    """``append_many`` costs about what one ``append`` does (one Redis round trip, one sqlite
    transaction): :class:`~lightd_coordinator.activity.log.ActivityLog` then writes the entries
    of requests that end together in one call."""

    @abstractmethod
    async def append(self, draft: Draft, *, keep: int) -> int:
        """Store ``draft`` as the newest entry; keep the newest ``keep``; its id."""

    async def append_many(self, drafts: list[Draft], *, keep: int) -> list[int]:
        """Store ``drafts``, in order, as the newest entries; keep the newest ``keep``; ids."""
        return [await self.append(draft, keep=keep) for draft in drafts]

    @abstractmethod
    async def page(self, query: ActivityQuery, limit: int) -> list[ActivityEntry]:
        """At most ``limit`` entries matching ``query``, newest first."""

    @abstractmethod
    async def purge(self, before: datetime) -> int:
        """Forget every entry older than ``before``; how many went."""
