"""The ``redis`` resource history: in the Redis the replicas share, so every replica sees it.

Keys, below ``registry.redis_prefix`` beside the registry's (``<pair>`` is the JSON
``["<node id>","<server>"]``)::

    history:s:<pair>     sorted set: one server's samples (JSON), scored by their timestamp
    history:n:<node id>  set of the node's <pair>s: ``forget`` removes a node without a scan
    history:index        sorted set of every <pair> scored by its oldest sample: ``purge``
                         reads only the servers that hold something to drop

Each change is one Lua script, so a series, its node's set and the index never disagree, even
with several replicas writing. Its own connection to ``registry.redis_url`` (the registry keeps
its own; both through :mod:`lightd_coordinator.storage.redis`); when Redis cannot be reached an
operation raises
:class:`~lightd_coordinator.registry.base.RegistryUnavailable` (``503``), naming the URL with
its password masked.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from lightd_coordinator.history.base import StatsHistory
from lightd_coordinator.storage.redis import RedisConnection, guarded
from lightd_shared.stats import StatsSample

__all__ = ["RedisStatsHistory"]

_PURGE_BATCH = 500

_ADD = """
local series, nodeset, index, member = KEYS[1], KEYS[2], KEYS[3], ARGV[5]
redis.call('ZADD', series, ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', series, '-inf', ARGV[3])
local count, keep = redis.call('ZCARD', series), tonumber(ARGV[4])
if count > keep then redis.call('ZREMRANGEBYRANK', series, 0, count - keep - 1) end
local first = redis.call('ZRANGE', series, 0, 0, 'WITHSCORES')
if #first == 0 then
  redis.call('DEL', series)
  redis.call('SREM', nodeset, member)
  redis.call('ZREM', index, member)
else
  redis.call('SADD', nodeset, member)
  redis.call('ZADD', index, first[2], member)
end
return 1
"""

_PURGE = """
local index, prefix, before, batch = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local members = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. before, 'LIMIT', 0, batch)
local gone = 0
for _, member in ipairs(members) do
  local series = prefix .. 'history:s:' .. member
  gone = gone + redis.call('ZREMRANGEBYSCORE', series, '-inf', '(' .. before)
  local first = redis.call('ZRANGE', series, 0, 0, 'WITHSCORES')
  if #first == 0 then
    redis.call('DEL', series)
    redis.call('SREM', prefix .. 'history:n:' .. cjson.decode(member)[1], member)
    redis.call('ZREM', index, member)
  else
    redis.call('ZADD', index, first[2], member)
  end
end
return {gone, #members}
"""

_FORGET = """
local nodeset, index, prefix = KEYS[1], KEYS[2], ARGV[1]
for _, member in ipairs(redis.call('SMEMBERS', nodeset)) do
  redis.call('DEL', prefix .. 'history:s:' .. member)
  redis.call('ZREM', index, member)
end
redis.call('DEL', nodeset)
return 1
"""


def _pair(node_id: str, server: str) -> str:
    return json.dumps([node_id, server], separators=(",", ":"))


class RedisStatsHistory(StatsHistory):
    provider = "redis"

    def __init__(self, url: str, *, prefix: str = "lightd:", timeout: float = 5.0) -> None:
        self.connection = RedisConnection(
            url,
            what="stats history",
            timeout=timeout,
            scripts={"add": _ADD, "purge": _PURGE, "forget": _FORGET},
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

    def _series(self, node_id: str, server: str) -> str:
        return f"{self.prefix}history:s:{_pair(node_id, server)}"

    def _nodeset(self, node_id: str) -> str:
        return f"{self.prefix}history:n:{node_id}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}history:index"

    @guarded
    async def add(
        self, node_id: str, server: str, sample: StatsSample, *, keep: int, after: datetime
    ) -> None:
        await self.connection.script(
            "add",
            [self._series(node_id, server), self._nodeset(node_id), self._index],
            args=[
                sample.model_dump_json(),
                repr(sample.timestamp.timestamp()),
                repr(after.timestamp()),
                keep,
                _pair(node_id, server),
            ],
        )

    @guarded
    async def latest(self, node_id: str, server: str) -> datetime | None:
        found = await self.redis.zrange(self._series(node_id, server), -1, -1)
        return StatsSample.model_validate_json(found[0]).timestamp if found else None

    @guarded
    async def servers(self, node_id: str) -> set[str]:
        members = await self.redis.smembers(self._nodeset(node_id))
        return {str(json.loads(member)[1]) for member in members}

    @guarded
    async def read(
        self, node_id: str, server: str, *, since: datetime | None, limit: int
    ) -> list[StatsSample]:
        low = "-inf" if since is None else "(" + repr(since.timestamp())
        found = await self.redis.zrangebyscore(
            self._series(node_id, server), low, "+inf", start=0, num=limit
        )
        return [StatsSample.model_validate_json(body) for body in found]

    @guarded
    async def purge(self, before: datetime) -> int:
        gone = 0
        while True:
            dropped, seen = await self.connection.script(
                "purge", [self._index], [self.prefix, repr(before.timestamp()), _PURGE_BATCH]
            )
            gone += int(dropped)
            if int(seen) < _PURGE_BATCH:
                return gone

    @guarded
    async def forget(self, node_id: str) -> None:
        await self.connection.script("forget", [self._nodeset(node_id), self._index], [self.prefix])
