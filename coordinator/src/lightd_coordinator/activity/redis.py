"""The ``redis`` activity log: in the Redis the replicas share, so every replica reads one log.

Keys, below ``registry.redis_prefix`` beside the registry's::

    activity       sorted set: one member per entry, ``"<id> <entry JSON>"``, scored by its id
    activity_seq   the id counter (``INCR``): ids increase fleet-wide, whichever replica writes

An append is one Lua script (the next ids, the entries, and the count bound in one step; one
call takes every entry the log grouped), so replicas writing at once never share an id nor
overrun ``activity.max_entries``. Reads page newest first by score (``before`` is a score
bound) and filter with :meth:`~lightd_shared.activity.ActivityQuery.matches`. The connection is
:class:`~lightd_coordinator.storage.redis.RedisConnection`, as for the registry; when Redis
cannot be reached an operation raises
:class:`~lightd_coordinator.registry.base.RegistryUnavailable`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from lightd_coordinator.activity.base import ActivityStore, Draft, to_entry
from lightd_coordinator.storage.redis import RedisConnection, guarded
from lightd_shared.activity import ActivityEntry, ActivityQuery

__all__ = ["RedisActivityStore"]

_BATCH = 500
_SKEW = timedelta(seconds=60)
"""How far apart replicas' clocks may be: a read for ``since`` stops this much older."""

_APPEND = """
local log, seq, keep = KEYS[1], KEYS[2], tonumber(ARGV[1])
local ids = {}
for i = 2, #ARGV do
  local id = redis.call('INCR', seq)
  redis.call('ZADD', log, id, id .. ' ' .. ARGV[i])
  ids[#ids + 1] = id
end
if #ids > 0 then redis.call('ZREMRANGEBYSCORE', log, '-inf', ids[#ids] - keep) end
return ids
"""
"""Append the entries ``ARGV[2..]`` in order, then bound the log to the newest ``ARGV[1]``."""


def _split(member: str) -> tuple[int, str]:
    entry_id, _, body = member.partition(" ")
    return int(entry_id), body


class RedisActivityStore(ActivityStore):
    provider = "redis"
    grouped = True

    def __init__(self, url: str, *, prefix: str = "lightd:", timeout: float = 5.0) -> None:
        self.connection = RedisConnection(
            url, what="activity log", timeout=timeout, scripts={"append": _APPEND}
        )
        self.url = url
        self.display_url = self.connection.display_url
        self.prefix = prefix

    async def open(self) -> None:
        await self.connection.open()

    async def close(self) -> None:
        await self.connection.close()

    @property
    def redis(self) -> Any:
        return self.connection.client

    @property
    def _log(self) -> str:
        return f"{self.prefix}activity"

    async def append(self, draft: Draft, *, keep: int) -> int:
        return (await self.append_many([draft], keep=keep))[0]

    @guarded
    async def append_many(self, drafts: list[Draft], *, keep: int) -> list[int]:
        bodies = [json.dumps(draft, separators=(",", ":")) for draft in drafts]
        ids = await self.connection.script(
            "append", [self._log, f"{self.prefix}activity_seq"], [keep, *bodies]
        )
        return [int(entry_id) for entry_id in ids]

    @guarded
    async def page(self, query: ActivityQuery, limit: int) -> list[ActivityEntry]:
        found: list[ActivityEntry] = []
        high: str = "+inf" if query.before is None else f"({query.before}"
        oldest = None
        if query.since is not None and query.since - datetime.min.replace(tzinfo=UTC) > _SKEW:
            oldest = query.since - _SKEW
        while len(found) < limit:
            members = await self.redis.zrevrangebyscore(
                self._log, high, "-inf", start=0, num=_BATCH
            )
            for member in members:
                entry_id, body = _split(member)
                entry = to_entry(entry_id, body)
                if oldest is not None and entry.time < oldest:
                    return found
                if query.matches(entry):
                    found.append(entry)
                    if len(found) >= limit:
                        return found
            if len(members) < _BATCH:
                break
            high = f"({_split(members[-1])[0]}"
        return found

    @guarded
    async def purge(self, before: datetime) -> int:
        # oldest first: ids follow time (one counter), so the old entries are a prefix
        gone = 0
        while True:
            members = await self.redis.zrange(self._log, 0, _BATCH - 1)
            old = [m for m in members if to_entry(*_split(m)).time < before]
            if old:
                gone += int(await self.redis.zrem(self._log, *old))
            if len(old) < len(members) or len(members) < _BATCH:
                return gone
