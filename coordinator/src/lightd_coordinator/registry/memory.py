"""The in-memory registry (the seed's ``memory`` provider): fast, and empty after a restart."""

from __future__ import annotations

from collections import deque
from datetime import datetime

from lightd_coordinator.registry.base import Registry, StoredEvent, StoredNode
from lightd_shared.commands import CommandResult

__all__ = ["MemoryRegistry"]


class MemoryRegistry(Registry):
    provider = "memory"
    persistent = False

    def __init__(self) -> None:
        self._nodes: dict[str, StoredNode] = {}
        self._results: dict[str, tuple[CommandResult, datetime]] = {}
        self._keys: dict[str, tuple[str, datetime]] = {}
        self._events: deque[StoredEvent] = deque()
        self._last_event_id = 0

    async def get_node(self, node_id: str) -> StoredNode | None:
        node = self._nodes.get(node_id)
        return node.model_copy(deep=True) if node is not None else None

    async def put_node(self, node: StoredNode) -> None:
        self._nodes[node.record.id] = node.model_copy(deep=True)

    async def delete_node(self, node_id: str) -> bool:
        return self._nodes.pop(node_id, None) is not None

    async def list_nodes(self) -> list[StoredNode]:
        return [self._nodes[key].model_copy(deep=True) for key in sorted(self._nodes)]

    async def put_result(self, result: CommandResult, expires_at: datetime) -> None:
        self._results[result.id] = (result.model_copy(deep=True), expires_at)

    async def get_result(self, command_id: str) -> CommandResult | None:
        found = self._results.get(command_id)
        return found[0].model_copy(deep=True) if found is not None else None

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
