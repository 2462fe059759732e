"""The in-memory registry (the seed's ``memory`` provider): fast, and empty after a restart.

Nodes are kept as the objects ``put_node`` was given and handed out as they are: nobody changes
a stored node in place (see :mod:`registry.base`), so copying them on every read and write only
cost time. With 10,000 nodes, deep copies in ``list_nodes`` held the event loop for up to a
second on every liveness sweep and health probe round.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

from lightd_coordinator.registry.base import (
    HeartbeatOutcome,
    Registry,
    StoredEvent,
    StoredNode,
    apply_heartbeat,
    mark_node_inactive,
)
from lightd_shared.commands import CommandResult
from lightd_shared.nodes import NodeRecord, NodeState
from lightd_shared.services import Service

__all__ = ["MemoryRegistry"]


class MemoryRegistry(Registry):
    provider = "memory"
    persistent = False
    atomic_heartbeat = True  # heartbeat_node never awaits: no other task runs in between

    def __init__(self) -> None:
        super().__init__()
        self._nodes: dict[str, StoredNode] = {}
        self._results: dict[str, tuple[CommandResult, datetime]] = {}
        self._keys: dict[str, tuple[str, datetime]] = {}
        self._events: deque[StoredEvent] = deque()
        self._last_event_id = 0

    async def get_node(self, node_id: str) -> StoredNode | None:
        return self._nodes.get(node_id)

    async def put_node(self, node: StoredNode) -> None:
        self._nodes[node.record.id] = node

    async def create_node(self, node: StoredNode) -> bool:
        return self._nodes.setdefault(node.record.id, node) is node

    async def delete_node(self, node_id: str) -> bool:
        return self._nodes.pop(node_id, None) is not None

    async def list_nodes(self) -> list[StoredNode]:
        nodes = self._nodes
        return [nodes[key] for key in sorted(nodes)]

    async def heartbeat_node(
        self, node_id: str, seen: datetime, status: NodeState, services: list[Service] | None
    ) -> HeartbeatOutcome | None:
        node = self._nodes.get(node_id)
        if node is None:
            return None
        updated, outcome = apply_heartbeat(node, seen, status, services)
        self._nodes[node_id] = updated
        return outcome

    async def mark_inactive(self, cutoff: datetime) -> list[NodeRecord]:
        stale = [
            node
            for node in self._nodes.values()
            if node.record.status == "active" and node.record.last_seen < cutoff
        ]
        went: list[NodeRecord] = []
        for node in sorted(stale, key=lambda n: n.record.id):
            updated = mark_node_inactive(node)
            self._nodes[node.record.id] = updated
            went.append(updated.record)
        return went

    async def health_targets(self) -> list[tuple[str, str]]:
        targets = [
            (node_id, str(node.record.health_url))
            for node_id, node in self._nodes.items()
            if node.record.health_url
        ]
        targets.sort()
        return targets

    async def put_result(self, result: CommandResult, expires_at: datetime) -> None:
        self._results[result.id] = (result, expires_at)

    async def get_result(self, command_id: str) -> CommandResult | None:
        found = self._results.get(command_id)
        return found[0] if found is not None else None

    async def purge_results(self, now: datetime) -> int:
        gone = [key for key, (_, expires) in self._results.items() if expires <= now]
        for key in gone:
            del self._results[key]
        for key in [key for key, (_, expires) in self._keys.items() if expires <= now]:
            del self._keys[key]
        return len(gone)

    async def claim_idempotency_key(
        self, key: str, command_id: str, expires_at: datetime
    ) -> str | None:
        existing = self._keys.get(key)
        if existing is not None:
            return existing[0]
        self._keys[key] = (command_id, expires_at)
        return None

    async def append_event(self, node_id: str | None, type: str, body: str, keep: int) -> int:
        self._last_event_id += 1
        self._events.append(
            StoredEvent(id=self._last_event_id, node_id=node_id, type=type, body=body)
        )
        while len(self._events) > keep:
            self._events.popleft()
        return self._last_event_id

    async def recent_events(self, limit: int) -> list[StoredEvent]:
        return list(self._events)[-limit:] if limit > 0 else []

    async def last_event_id(self) -> int:
        return self._last_event_id
