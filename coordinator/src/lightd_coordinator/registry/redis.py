"""The ``redis`` registry: one fleet shared by several coordinator replicas through Redis.

Every replica talks to the same Redis server (``registry.redis_url``); no replica is special.
Keys, all below ``registry.redis_prefix`` (``lightd:``)::

    node:<id>              hash: record (JSON), status, last_seen, seen (ms), services (JSON),
                           active_since, revision, dispatch_key, operator ("1": registered by an
                           operator), idx (the node's index keys)
    nodes                  sorted set of every id (score 0: ordered by id, paged with ZRANGE)
    idx:status:<state>     set of ids per status
    idx:provider:<name>    set of ids per provider
    idx:label:<[k, v]>     set of ids per label (key and value as a JSON pair)
    seen                   sorted set of the active ids by last heartbeat (ms): the sweep's index
    health                 hash id -> health_url (the health probe's targets)
    result:<command id>    a command's result (JSON), expiring after ``registry.result_ttl``
    idem:<key>             the command id an Idempotency-Key is bound to, same expiry
    events / event_seq     the event log (a stream trimmed to the history) and its counter
    lease:<name>           which replica holds a lease (the liveness sweep's), with an expiry
    remote:<id>            the configuration a node pushed to /api/v1/remote/<id>/config

Every change is one Lua script, so it is atomic without a lock in any process: a heartbeat is
one round trip, and so is a brand-new node's registration with its ``node_registered`` event;
a node that times out turns ``inactive`` exactly once however many replicas sweep, and the
first final result of a command wins. Event ids come from ``INCR`` in the same
script that appends to the stream, with the stream entry id ``<n>-0``, so ids increase by one
per event fleet-wide and a resume is a range read.

When Redis cannot be reached every operation raises :class:`RegistryUnavailable` (the API
answers ``503``); redis-py reconnects on the next call once Redis is back. The URL's password is
never logged: messages name the URL with its user info masked. The connection and that guard
are :mod:`lightd_coordinator.storage.redis`, shared with the history and the activity log.

Over 400 lines: one idea, the Registry interface on Redis; most of its length is the Lua
scripts that keep each change atomic across replicas.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lightd_coordinator.registry.base import (
    HeartbeatOutcome,
    NodeChanged,
    Registry,
    StoredEvent,
    StoredNode,
)
from lightd_coordinator.storage.redis import RedisConnection, guarded
from lightd_shared.commands import CommandResult
from lightd_shared.events import Event
from lightd_shared.nodes import NodeRecord, NodeState
from lightd_shared.remote import ConfigDocument
from lightd_shared.services import Service
from lightd_shared.timestamps import format_timestamp, parse_timestamp, utcnow

__all__ = ["RedisRegistry"]

_PAGE = 500
"""Nodes fetched per pipeline when reading many."""
_SWEEP_BATCH = 1000
_HISTORY = 1000
"""Events kept when :meth:`RedisRegistry.mark_inactive` appends (``websocket.history_size``)."""

_PUT_NODE = """
local key, prefix, id = KEYS[1], ARGV[1], ARGV[2]
local current = redis.call('HGET', key, 'revision')
if ARGV[9] == '0' then
  if current then return 0 end
elseif tonumber(current) ~= tonumber(ARGV[9]) - 1 then
  return 0
end
local old_idx = redis.call('HGET', key, 'idx')
if old_idx then
  for k in string.gmatch(old_idx, '[^\\n]+') do redis.call('SREM', k, id) end
end
local old_status = redis.call('HGET', key, 'status')
if old_status then redis.call('SREM', prefix .. 'idx:status:' .. old_status, id) end
redis.call('DEL', key)
redis.call('HSET', key, 'record', ARGV[3], 'status', ARGV[4], 'last_seen', ARGV[5],
  'seen', ARGV[6], 'active_since', ARGV[8], 'revision', ARGV[9], 'idx', ARGV[11])
if ARGV[7] ~= '' then redis.call('HSET', key, 'services', ARGV[7]) end
if ARGV[10] ~= '' then redis.call('HSET', key, 'dispatch_key', ARGV[10]) end
if ARGV[13] ~= '' then redis.call('HSET', key, 'operator', ARGV[13]) end
for k in string.gmatch(ARGV[11], '[^\\n]+') do redis.call('SADD', k, id) end
redis.call('SADD', prefix .. 'idx:status:' .. ARGV[4], id)
redis.call('ZADD', prefix .. 'nodes', 0, id)
if ARGV[4] == 'active' then
  redis.call('ZADD', prefix .. 'seen', ARGV[6], id)
else
  redis.call('ZREM', prefix .. 'seen', id)
end
if ARGV[12] ~= '' then
  redis.call('HSET', prefix .. 'health', id, ARGV[12])
else
  redis.call('HDEL', prefix .. 'health', id)
end
return 1
"""

_CREATE_NODE_ANNOUNCED = (
    "local function put()\n"
    + _PUT_NODE
    + """end
if put() == 0 then return false end
local n = redis.call('INCR', KEYS[3])
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[16], n .. '-0', 'n', ARGV[2], 't', ARGV[14],
  'b', ARGV[15])
return n
"""
)
"""The put script as a create-if-absent (revision 0) and, when it stored, the node's event."""

_DELETE_NODE = """
local key, prefix, id = KEYS[1], ARGV[1], ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
local old_idx = redis.call('HGET', key, 'idx')
if old_idx then
  for k in string.gmatch(old_idx, '[^\\n]+') do redis.call('SREM', k, id) end
end
redis.call('SREM', prefix .. 'idx:status:' .. redis.call('HGET', key, 'status'), id)
redis.call('ZREM', prefix .. 'nodes', id)
redis.call('ZREM', prefix .. 'seen', id)
redis.call('HDEL', prefix .. 'health', id)
redis.call('DEL', key)
return 1
"""

_HEARTBEAT = """
local key, prefix, id, status = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', key) == 0 then return false end
local prev = redis.call('HGET', key, 'status')
local changed = 0
if ARGV[6] ~= '' then
  if redis.call('HGET', key, 'services') ~= ARGV[6] then
    changed = 1
    redis.call('HSET', key, 'services', ARGV[6])
  end
end
if status == 'active' and prev ~= 'active' then
  redis.call('HSET', key, 'active_since', ARGV[4])
end
if prev ~= status then
  redis.call('SREM', prefix .. 'idx:status:' .. prev, id)
  redis.call('SADD', prefix .. 'idx:status:' .. status, id)
end
redis.call('HSET', key, 'status', status, 'last_seen', ARGV[4], 'seen', ARGV[5])
redis.call('HINCRBY', key, 'revision', 1)
if status == 'active' then
  redis.call('ZADD', prefix .. 'seen', ARGV[5], id)
else
  redis.call('ZREM', prefix .. 'seen', id)
end
local out = {prev, changed, redis.call('HGET', key, 'active_since')}
if prev ~= status or changed == 1 then table.insert(out, redis.call('HGET', key, 'record')) end
return out
"""

_SWEEP = """
local prefix, cutoff, keep = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local seen_key = prefix .. 'seen'
local out = {}
for i = 4, #ARGV, 2 do
  local id, body = ARGV[i], ARGV[i + 1]
  local key = prefix .. 'node:' .. id
  local seen = redis.call('ZSCORE', seen_key, id)
  if seen and tonumber(seen) < cutoff then
    redis.call('ZREM', seen_key, id)
    if body ~= '' and redis.call('HGET', key, 'status') == 'active' then
      redis.call('HSET', key, 'status', 'inactive')
      redis.call('HINCRBY', key, 'revision', 1)
      redis.call('SREM', prefix .. 'idx:status:active', id)
      redis.call('SADD', prefix .. 'idx:status:inactive', id)
      local n = redis.call('INCR', KEYS[2])
      redis.call('XADD', KEYS[1], 'MAXLEN', keep, n .. '-0',
        'n', id, 't', 'node_inactive', 'b', body)
      table.insert(out, id)
    end
  end
end
return out
"""

_APPEND_EVENT = """
local id = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[4], id .. '-0', 'n', ARGV[1], 't', ARGV[2], 'b', ARGV[3])
return id
"""

_FINISH_RESULT = """
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and (decoded['status'] == 'success' or decoded['status'] == 'failed'
             or decoded['status'] == 'timeout') then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

_LEASE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _label_key(prefix: str, key: str, value: str) -> str:
    return f"{prefix}idx:label:{json.dumps([key, value], separators=(',', ':'))}"


class RedisRegistry(Registry):
    provider = "redis"
    persistent = True
    shared = True
    atomic_heartbeat = True

    def __init__(self, url: str, *, prefix: str = "lightd:", timeout: float = 5.0) -> None:
        super().__init__()
        self.connection = RedisConnection(
            url,
            what="registry",
            timeout=timeout,
            scripts={
                "put_node": _PUT_NODE,
                "create_node_announced": _CREATE_NODE_ANNOUNCED,
                "delete_node": _DELETE_NODE,
                "heartbeat": _HEARTBEAT,
                "sweep": _SWEEP,
                "append_event": _APPEND_EVENT,
                "finish_result": _FINISH_RESULT,
                "lease": _LEASE,
            },
        )
        self.url = url
        self.display_url = self.connection.display_url
        self.prefix = prefix

    # -- connection ----------------------------------------------------------------------
    async def open(self) -> None:
        await self.connection.open()

    async def close(self) -> None:
        await self.connection.close()

    @property
    def redis(self) -> Any:
        return self.connection.client

    async def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self.connection.script(name, keys, args)

    @guarded
    async def ping(self) -> None:
        await self.redis.ping()

    def _key(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    # -- nodes ---------------------------------------------------------------------------
    def _decode(self, fields: dict[str, str]) -> StoredNode | None:
        if not fields or "record" not in fields:
            return None
        record = json.loads(fields["record"])
        record["status"] = fields["status"]
        record["last_seen"] = fields["last_seen"]
        services = fields.get("services")
        return StoredNode.model_validate(
            {
                "record": record,
                "services": json.loads(services) if services is not None else None,
                "active_since": fields["active_since"],
                "revision": int(fields.get("revision", 0)),
                "dispatch_key": fields.get("dispatch_key"),
                "operator_registered": fields.get("operator") == "1",
            }
        )

    @guarded
    async def get_node(self, node_id: str) -> StoredNode | None:
        return self._decode(await self.redis.hgetall(self._key("node:", node_id)))

    @guarded
    async def create_node(self, node: StoredNode) -> bool:
        # revision 0 makes the put script a create-if-absent: one script call, one round trip
        if node.revision != 0:
            raise ValueError("create_node takes a new node (revision 0)")
        try:
            await self.put_node(node)
        except NodeChanged:
            return False
        return True

    def _put_args(self, node: StoredNode) -> list[Any]:
        """The put script's arguments for ``node`` (its key is ``node:<id>``)."""
        record = node.record
        indexes = [self._key("idx:provider:", record.provider)] + [
            _label_key(self.prefix, key, value) for key, value in sorted(record.labels.items())
        ]
        services = (
            ""
            if node.services is None
            else json.dumps(
                [s.model_dump(mode="json") for s in node.services], separators=(",", ":")
            )
        )
        return [
            self.prefix,
            record.id,
            record.model_dump_json(),
            record.status,
            format_timestamp(record.last_seen),
            _ms(record.last_seen),
            services,
            format_timestamp(node.active_since),
            node.revision,
            node.dispatch_key or "",
            "\n".join(indexes),
            record.health_url or "",
            "1" if node.operator_registered else "",
        ]

    @guarded
    async def put_node(self, node: StoredNode) -> None:
        stored = await self._script(
            "put_node", [self._key("node:", node.record.id)], self._put_args(node)
        )
        if not stored:
            raise NodeChanged(f"node {node.record.id!r} changed since it was read")

    @guarded
    async def create_node_announced(
        self, node: StoredNode, *, type: str, body: str, keep: int
    ) -> int | None:
        if node.revision != 0:
            raise ValueError("create_node_announced takes a new node (revision 0)")
        event_id = await self._script(
            "create_node_announced",
            [self._key("node:", node.record.id), self._key("events"), self._key("event_seq")],
            [*self._put_args(node), type, body, keep],
        )
        return None if event_id is None else int(event_id)

    @guarded
    async def delete_node(self, node_id: str) -> bool:
        gone = await self._script(
            "delete_node", [self._key("node:", node_id)], [self.prefix, node_id]
        )
        return bool(gone)

    async def _fetch(self, ids: list[str]) -> list[StoredNode]:
        nodes: list[StoredNode] = []
        for start in range(0, len(ids), _PAGE):
            pipe = self.redis.pipeline(transaction=False)
            for node_id in ids[start : start + _PAGE]:
                pipe.hgetall(self._key("node:", node_id))
            for fields in await pipe.execute():
                node = self._decode(fields)
                if node is not None:  # removed between the index read and now
                    nodes.append(node)
        return nodes

    @guarded
    async def list_nodes(self) -> list[StoredNode]:
        ids = await self.redis.zrange(self._key("nodes"), 0, -1)
        return await self._fetch(list(ids))

    @guarded
    async def query_nodes(
        self,
        *,
        status: NodeState | None = None,
        provider: str | None = None,
        labels: dict[str, str] | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[list[StoredNode], int]:
        sets = []
        if status is not None:
            sets.append(self._key("idx:status:", status))
        if provider is not None:
            sets.append(self._key("idx:provider:", provider))
        sets += [_label_key(self.prefix, k, v) for k, v in sorted((labels or {}).items())]
        if not sets:
            pipe = self.redis.pipeline(transaction=False)
            pipe.zcard(self._key("nodes"))
            pipe.zrange(self._key("nodes"), offset, -1 if limit is None else offset + limit - 1)
            total, page = await pipe.execute()
            return await self._fetch(list(page)), int(total)
        ids = sorted(await self.redis.sinter(sets))
        end = None if limit is None else offset + limit
        return await self._fetch(ids[offset:end]), len(ids)

    @guarded
    async def count_nodes(self) -> tuple[int, int]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self._key("nodes"))
        pipe.scard(self._key("idx:status:active"))
        total, active = await pipe.execute()
        return int(total), int(active)

    @guarded
    async def heartbeat_node(
        self, node_id: str, seen: datetime, status: NodeState, services: list[Service] | None
    ) -> HeartbeatOutcome | None:
        services_json = (
            ""
            if services is None
            else json.dumps([s.model_dump(mode="json") for s in services], separators=(",", ":"))
        )
        stamp = format_timestamp(seen)
        answer = await self._script(
            "heartbeat",
            [self._key("node:", node_id)],
            [self.prefix, node_id, status, stamp, _ms(seen), services_json],
        )
        if not answer:
            return None
        previous, changed, since = answer[0], bool(int(answer[1])), answer[2]
        record: NodeRecord | None = None
        if len(answer) > 3:
            fields = json.loads(answer[3])
            fields["status"] = status
            fields["last_seen"] = stamp
            record = NodeRecord.model_validate(fields)
        return HeartbeatOutcome(
            record=record,
            previous_status=previous,
            services_changed=changed,
            status=status,
            last_seen=seen,
            active_since=parse_timestamp(since),
        )

    async def mark_inactive(self, cutoff: datetime) -> list[NodeRecord]:
        """As :meth:`sweep_inactive` (the fleet calls that) with the seed's history size: a
        node is never marked without its ``node_inactive`` event in the shared log."""

        def envelope(record: NodeRecord) -> str:
            data = record.model_dump(mode="json")
            return Event(type="node_inactive", data=data).model_dump_json()

        return await self.sweep_inactive(cutoff, envelope, keep=_HISTORY) or []

    @guarded
    async def sweep_inactive(
        self, cutoff: datetime, envelope: Callable[[NodeRecord], str], *, keep: int
    ) -> list[NodeRecord] | None:
        """Mark timed-out nodes inactive and append each one's ``node_inactive`` event in the
        same script: a replica killed mid-sweep leaves no node inactive without its event, and
        a node never gets two."""
        went: list[NodeRecord] = []
        seen_key = self._key("seen")
        while True:
            ids = list(
                await self.redis.zrangebyscore(
                    seen_key, "-inf", f"({_ms(cutoff)}", start=0, num=_SWEEP_BATCH
                )
            )
            if not ids:
                break
            found = {node.record.id: node for node in await self._fetch(ids)}
            records: dict[str, NodeRecord] = {}
            args: list[Any] = [self.prefix, _ms(cutoff), keep]
            for node_id in ids:
                node = found.get(node_id)
                body = ""
                if node is not None:
                    record = node.record.model_copy(update={"status": "inactive"})
                    records[node_id] = record
                    body = envelope(record)
                args += [node_id, body]
            changed = await self._script(
                "sweep", [self._key("events"), self._key("event_seq")], args
            )
            went += [records[node_id] for node_id in changed]
            if len(ids) < _SWEEP_BATCH:
                break
        went.sort(key=lambda r: r.id)
        return went

    @guarded
    async def health_targets(self) -> list[tuple[str, str]]:
        urls = await self.redis.hgetall(self._key("health"))
        return sorted(urls.items())

    # -- command results -----------------------------------------------------------------
    def _ttl_ms(self, expires_at: datetime) -> int:
        return max(1, _ms(expires_at) - _ms(utcnow()))

    @guarded
    async def put_result(self, result: CommandResult, expires_at: datetime) -> None:
        await self.redis.set(
            self._key("result:", result.id), result.model_dump_json(), px=self._ttl_ms(expires_at)
        )

    @guarded
    async def get_result(self, command_id: str) -> CommandResult | None:
        body = await self.redis.get(self._key("result:", command_id))
        return CommandResult.model_validate_json(body) if body is not None else None

    @guarded
    async def finish_result(self, result: CommandResult, expires_at: datetime) -> CommandResult:
        earlier = await self._script(
            "finish_result",
            [self._key("result:", result.id)],
            [result.model_dump_json(), self._ttl_ms(expires_at)],
        )
        return CommandResult.model_validate_json(earlier) if earlier else result

    async def purge_results(self, now: datetime) -> int:
        return 0  # results and keys expire in Redis by themselves

    @guarded
    async def claim_idempotency_key(
        self, key: str, command_id: str, expires_at: datetime
    ) -> str | None:
        earlier = await self.redis.set(
            self._key("idem:", key), command_id, nx=True, get=True, px=self._ttl_ms(expires_at)
        )
        return str(earlier) if earlier is not None else None

    # -- events --------------------------------------------------------------------------
    @staticmethod
    def _event(entry_id: str, fields: dict[str, str]) -> StoredEvent:
        return StoredEvent(
            id=int(entry_id.split("-", 1)[0]),
            node_id=fields.get("n") or None,
            type=fields["t"],
            body=fields["b"],
        )

    @guarded
    async def append_event(self, node_id: str | None, type: str, body: str, keep: int) -> int:
        event_id = await self._script(
            "append_event",
            [self._key("events"), self._key("event_seq")],
            [node_id or "", type, body, keep],
        )
        return int(event_id)

    @guarded
    async def recent_events(self, limit: int) -> list[StoredEvent]:
        if limit <= 0:
            return []
        entries = await self.redis.xrevrange(self._key("events"), count=limit)
        return [self._event(entry_id, fields) for entry_id, fields in reversed(entries)]

    @guarded
    async def last_event_id(self) -> int:
        value = await self.redis.get(self._key("event_seq"))
        return int(value) if value is not None else 0

    @guarded
    async def oldest_event_id(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(self._key("events"), count=1)
        pipe.get(self._key("event_seq"))
        first, last = await pipe.execute()
        if first:
            return self._event(*first[0]).id
        return (int(last) if last is not None else 0) + 1

    @guarded
    async def events_after(self, after: int, limit: int) -> list[StoredEvent]:
        entries = await self.redis.xrange(self._key("events"), min=f"({after}-0", count=limit)
        return [self._event(entry_id, fields) for entry_id, fields in entries]

    @guarded
    async def tail_events(self, after: int, *, timeout: float) -> list[StoredEvent]:
        block = max(1, int(timeout * 1000))
        answer = await self.redis.xread(
            {self._key("events"): f"{after}-0"}, count=1000, block=block
        )
        events: list[StoredEvent] = []
        for _stream, entries in answer or []:
            events += [self._event(entry_id, fields) for entry_id, fields in entries]
        return events

    # -- coordination --------------------------------------------------------------------
    @guarded
    async def hold_lease(self, name: str, holder: str, ttl: float) -> bool:
        held = await self._script(
            "lease", [self._key("lease:", name)], [holder, max(1, int(ttl * 1000))]
        )
        return bool(held)

    @guarded
    async def get_remote_config(self, node_id: str) -> ConfigDocument | None:
        body = await self.redis.get(self._key("remote:", node_id))
        return ConfigDocument.model_validate_json(body) if body is not None else None

    @guarded
    async def put_remote_config(self, node_id: str, document: ConfigDocument) -> None:
        await self.redis.set(self._key("remote:", node_id), document.model_dump_json())
