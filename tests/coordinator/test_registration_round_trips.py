"""Registration: a brand-new node and its event are one registry round trip (issue 17).

The providers are the real ones (a real sqlite file, a real redis-server), subclassed only to
count the node operations the fleet asks of them.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from lightd_coordinator.events import EventHub
from lightd_coordinator.fleet import Fleet, NodeClaimed
from lightd_coordinator.registry import MemoryRegistry, Registry, SqliteRegistry, StoredNode
from lightd_coordinator.registry.redis import RedisRegistry
from lightd_shared.nodes import NodeRegistration
from tests.coordinator.harness import node_body
from tests.harness.redis import RedisServer

pytestmark = pytest.mark.anyio


class _Counting:
    """Counts the registry round trips (node get, put, create, event append) asked for."""

    calls: list[str]

    async def get_node(self, node_id: str) -> StoredNode | None:
        self.calls.append("get")
        return await super().get_node(node_id)  # type: ignore[misc]

    async def put_node(self, node: StoredNode) -> None:
        self.calls.append("put")
        await super().put_node(node)  # type: ignore[misc]

    async def create_node(self, node: StoredNode) -> bool:
        self.calls.append("create")
        return bool(await super().create_node(node))  # type: ignore[misc]

    async def append_event(self, node_id: str | None, type: str, body: str, keep: int) -> int:
        self.calls.append("append")
        return int(await super().append_event(node_id, type, body, keep))  # type: ignore[misc]

    async def create_node_announced(
        self, node: StoredNode, *, type: str, body: str, keep: int
    ) -> int | None:
        self.calls.append("create+event")
        # one call of its own (sqlite: one transaction, redis: one script); memory's default
        # makes the two calls in turn, never waiting between them: counted as that one call
        saved, self.calls = self.calls, []
        try:
            return await super().create_node_announced(  # type: ignore[misc, no-any-return]
                node, type=type, body=body, keep=keep
            )
        finally:
            inner, self.calls = self.calls, saved
            if self.provider != "memory":  # type: ignore[attr-defined]
                self.calls.extend(f"inner-{call}" for call in inner)


class CountingMemory(_Counting, MemoryRegistry):
    pass


class CountingSqlite(_Counting, SqliteRegistry):
    pass


class CountingRedis(_Counting, RedisRegistry):
    pass


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    registry: Registry
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        registry = CountingRedis(server.url, prefix="rt:")
    elif request.param == "sqlite":
        registry = CountingSqlite(tmp_path / "r.db")
    else:
        registry = CountingMemory()
    registry.calls = []  # type: ignore[attr-defined]
    return registry


async def _no_state(node: str | None) -> dict[str, Any]:
    return {}


async def test_new_node_is_one_round_trip_and_existing_keeps_semantics(store: Registry) -> None:
    await store.open()
    try:
        hub = EventHub(store, history_size=50, queue_size=50, state=_no_state)
        fleet = Fleet(store, hub, node_timeout=timedelta(seconds=30))

        record, created = await fleet.register(
            NodeRegistration.model_validate(node_body("fresh", 1)), vouch=True
        )
        assert created and record.id == "fresh"
        # the record and its node_registered event: one round trip, nothing before or after
        assert store.calls == ["create+event"]  # type: ignore[attr-defined]
        first = await store.get_node("fresh")
        assert first is not None and first.revision == 0 and not first.operator_registered

        # the id exists: read, then compare-and-set; created_at kept, revision moves on
        store.calls = []  # type: ignore[attr-defined]
        again, created = await fleet.register(
            NodeRegistration.model_validate(node_body("fresh", 2)), vouch=True
        )
        assert not created
        assert store.calls == [  # type: ignore[attr-defined]
            "create+event",  # refused: nothing stored, no event
            "get",
            "put",
            "append",
        ]
        second = await store.get_node("fresh")
        assert second is not None and second.revision == 1
        assert again.created_at == record.created_at

        # an operator's node without a key is still refused to the agent token
        await fleet.register(NodeRegistration.model_validate(node_body("op", 3)), vouch=False)
        with pytest.raises(NodeClaimed):
            await fleet.register(NodeRegistration.model_validate(node_body("op", 4)), vouch=True)

        events = await store.recent_events(10)
        assert [(e.type, e.node_id) for e in events] == [
            ("node_registered", "fresh"),
            ("node_updated", "fresh"),
            ("node_registered", "op"),
        ]
        assert [e.id for e in events] == [1, 2, 3]  # one id each, none skipped by the refusal
        assert json.loads(events[0].body)["data"]["address"] == record.address
    finally:
        await store.close()
