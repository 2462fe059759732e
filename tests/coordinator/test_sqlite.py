"""The sqlite registry: nodes, command results and event ids survive a restart."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from lightd_coordinator.registry import MemoryRegistry, Registry, SqliteRegistry, StoredNode
from lightd_coordinator.registry.base import NodeChanged
from lightd_coordinator.registry.redis import RedisRegistry
from lightd_shared.commands import CommandResult
from lightd_shared.nodes import NodeRecord
from lightd_shared.services import Service
from lightd_shared.timestamps import utcnow
from tests.coordinator.harness import agent, coordinator, make_settings, node_body, sse
from tests.harness.redis import RedisServer

KEY = "sqlite-test-dispatch-key-0123456789abcdef"
COMMAND = {"type": "exec", "action": "echo hi", "params": {"timeout": "5s"}}


def test_fleet_results_and_event_ids_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(
        registry={"provider": "sqlite", "path": str(tmp_path / "fleet.db"), "node_timeout": "1h"}
    )
    with agent() as (_, port):
        with coordinator(settings) as (base, _), httpx.Client(base_url=base) as client:
            client.post(
                "/api/v1/nodes",
                json=node_body("n1", port, labels={"env": "dev"}, dispatch_key=KEY),
            )
            client.post(
                "/api/v1/nodes/n1/heartbeat",
                json={"services": [{"id": "web", "name": "Web", "port": 80}]},
            )
            result = client.post("/api/v1/nodes/n1/commands", json=COMMAND, timeout=30).json()
            assert result["status"] == "success"
            created = client.get("/api/v1/nodes/n1").json()["created_at"]
            with sse(base) as stream:
                last = int(stream.next_message().id or "0")
            assert last >= 3

        with coordinator(settings) as (base, _), httpx.Client(base_url=base) as client:
            node = client.get("/api/v1/nodes/n1").json()
            assert node["labels"] == {"env": "dev"} and node["created_at"] == created
            assert client.get("/api/v1/services").json()["services"]["n1"][0]["id"] == "web"
            stored = client.get(f"/api/v1/commands/{result['id']}").json()
            assert stored == result
            # ids continue, and a client can resume across the restart
            with sse(base, headers={"Last-Event-ID": str(last - 1)}) as stream:
                replayed = stream.next_message()
                assert replayed.id == str(last)
                client.post("/api/v1/nodes", json=node_body("n2", port))
                fresh = stream.next_message()
                assert fresh.id == str(last + 1)
                assert fresh.json()["data"]["id"] == "n2"
            # the node's dispatch key survived too: it can still be sent commands
            again = client.post("/api/v1/nodes/n1/commands", json=COMMAND, timeout=30).json()
            assert again["status"] == "success", again
            assert (tmp_path / "fleet.db").stat().st_mode & 0o777 == 0o600


@pytest.fixture(params=["memory", "sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        return RedisRegistry(server.url, prefix="contract:")
    return MemoryRegistry() if request.param == "memory" else SqliteRegistry(tmp_path / "r.db")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_registry_contract(store: Registry) -> None:
    await store.open()
    try:
        now = utcnow()
        record = NodeRecord.model_validate(
            {**node_body("b", 1), "created_at": now, "last_seen": now}
        )
        await store.put_node(StoredNode(record=record, active_since=now))
        await store.put_node(
            StoredNode(record=record.model_copy(update={"id": "a"}), active_since=now)
        )
        assert [n.record.id for n in await store.list_nodes()] == ["a", "b"]
        got = await store.get_node("b")
        assert got is not None and got.record == record
        assert await store.delete_node("b") and not await store.delete_node("b")
        assert await store.get_node("b") is None

        soon = now + timedelta(seconds=60)
        assert await store.claim_idempotency_key("k", "cmd_1", soon) is None
        assert await store.claim_idempotency_key("k", "cmd_2", soon) == "cmd_1"

        result = CommandResult(id="cmd_1", node_id="a", status="success")
        await store.put_result(result, soon)
        assert await store.get_result("cmd_1") == result
        if isinstance(store, RedisRegistry):
            # Redis expires results itself, on its own clock: the key carries the TTL
            assert 0 < await store.redis.pttl("contract:result:cmd_1") <= 60_000
            assert 0 < await store.redis.pttl("contract:idem:k") <= 60_000
        else:
            assert await store.purge_results(now) == 0
            assert await store.purge_results(now + timedelta(seconds=61)) == 1
            assert await store.get_result("cmd_1") is None

        # the first final result wins; a pending one never replaces it
        late = CommandResult(id="cmd_1", node_id="a", status="timeout")
        await store.put_result(CommandResult(id="cmd_1", node_id="a", status="running"), soon)
        assert await store.finish_result(result, soon) == result
        assert await store.finish_result(late, soon) == result
        assert await store.get_result("cmd_1") == result

        ids = [await store.append_event(None, "t", f"{{{i}}}", keep=3) for i in range(5)]
        assert ids == [1, 2, 3, 4, 5]
        assert [e.id for e in await store.recent_events(10)] == [3, 4, 5]
        assert await store.last_event_id() == 5
        assert await store.oldest_event_id() == 3
        assert [e.id for e in await store.events_after(3, 10)] == [4, 5]
        assert [e.body for e in await store.events_after(2, 1)] == ["{2}"]

        # filtered pages, by id, with the count before paging
        for node_id, labels, provider in [
            ("n3", {"env": "prod", "role": "web"}, "docker"),
            ("n1", {"env": "prod"}, "lxc"),
            ("n2", {"env": "dev"}, "docker"),
        ]:
            await store.put_node(
                StoredNode(
                    record=record.model_copy(
                        update={"id": node_id, "labels": labels, "provider": provider}
                    ),
                    active_since=now,
                )
            )
        page, total = await store.query_nodes(labels={"env": "prod"})
        assert [n.record.id for n in page] == ["n1", "n3"] and total == 2
        page, total = await store.query_nodes(provider="docker", limit=1, offset=1)
        assert [n.record.id for n in page] == ["n2"] and total == 3  # a, n2, n3
        page, total = await store.query_nodes(status="inactive")
        assert page == [] and total == 0
        page, total = await store.query_nodes(limit=2)
        assert [n.record.id for n in page] == ["a", "n1"] and total == 4
        # a changed record leaves its old index entries
        moved = record.model_copy(update={"id": "n1", "labels": {"env": "dev"}})
        await store.put_node(StoredNode(record=moved, active_since=now, revision=1))
        page, total = await store.query_nodes(labels={"env": "prod"})
        assert [n.record.id for n in page] == ["n3"] and total == 1
        assert await store.count_nodes() == (4, 4)
        assert await store.hold_lease("sweep", "me", 5.0)
        if store.shared:  # a compare-and-set on revision: a stale write is refused
            with pytest.raises(NodeChanged):
                await store.put_node(StoredNode(record=moved, active_since=now, revision=1))
            with pytest.raises(NodeChanged):
                await store.put_node(StoredNode(record=moved, active_since=now))
            assert not await store.hold_lease("sweep", "another", 5.0)
    finally:
        await store.close()


def _stored(node_id: str, seen: datetime, **fields: object) -> StoredNode:
    record = NodeRecord.model_validate(
        {**node_body(node_id, 1), "created_at": seen, "last_seen": seen, **fields}
    )
    return StoredNode(record=record, active_since=seen)


@pytest.mark.anyio
async def test_registry_heartbeat_node(store: Registry) -> None:
    await store.open()
    try:
        then = utcnow() - timedelta(minutes=5)
        await store.put_node(_stored("a", then, status="inactive"))
        await store.put_node(_stored("b", then))
        now = utcnow()
        assert await store.heartbeat_node("missing", now, "active", None) is None

        web = [Service(id="web", name="Web", port=80)]
        outcome = await store.heartbeat_node("a", now, "active", web)
        assert outcome is not None
        assert outcome.previous_status == "inactive" and outcome.services_changed
        assert outcome.record.status == "active" and outcome.record.last_seen == now
        stored = await store.get_node("a")
        assert stored is not None
        assert stored.record == outcome.record and stored.services == web
        assert stored.active_since == now and stored.revision == 1  # became active again

        # the same services again, or none reported: nothing visible changed but last_seen
        later = now + timedelta(seconds=10)
        again = await store.heartbeat_node("a", later, "active", list(web))
        assert again is not None and not again.services_changed
        assert again.previous_status == "active"
        quiet = await store.heartbeat_node("a", later, "active", None)
        assert quiet is not None and not quiet.services_changed
        stored = await store.get_node("a")
        assert stored is not None and stored.services == web and stored.active_since == now
        assert stored.record.last_seen == later and stored.revision == 3

        # only the beating node changed
        other = await store.get_node("b")
        assert other is not None and other.record.last_seen == then and other.revision == 0
    finally:
        await store.close()


@pytest.mark.anyio
async def test_registry_mark_inactive(store: Registry) -> None:
    await store.open()
    try:
        now = utcnow()
        old = now - timedelta(minutes=10)
        await store.put_node(_stored("stale-b", old))
        await store.put_node(_stored("stale-a", old))
        await store.put_node(_stored("fresh", now))
        await store.put_node(_stored("gone-already", old, status="inactive"))
        await store.put_node(_stored("edge", now - timedelta(minutes=5)))

        went = await store.mark_inactive(now - timedelta(minutes=5))
        assert [r.id for r in went] == ["stale-a", "stale-b"]  # by id; "edge" is not before
        assert all(r.status == "inactive" for r in went)
        for node_id, status in [
            ("stale-a", "inactive"),
            ("stale-b", "inactive"),
            ("fresh", "active"),
            ("gone-already", "inactive"),
            ("edge", "active"),
        ]:
            stored = await store.get_node(node_id)
            assert stored is not None and stored.record.status == status, node_id
        stale = await store.get_node("stale-a")
        assert stale is not None and stale.revision == 1 and stale.record.last_seen == old
        assert await store.mark_inactive(now - timedelta(minutes=5)) == []  # once only
    finally:
        await store.close()


@pytest.mark.anyio
async def test_registry_health_targets(store: Registry) -> None:
    await store.open()
    try:
        now = utcnow()
        assert await store.health_targets() == []
        await store.put_node(_stored("z", now, health_url="http://127.0.0.1:9/health"))
        await store.put_node(_stored("m", now))
        await store.put_node(_stored("a", now, health_url="http://127.0.0.1:8/h"))
        assert await store.health_targets() == [
            ("a", "http://127.0.0.1:8/h"),
            ("z", "http://127.0.0.1:9/health"),
        ]
    finally:
        await store.close()


def test_close_waits_for_a_transaction_still_running_in_a_worker_thread(tmp_path: Path) -> None:
    """Shutdown cancels tasks whose ``to_thread`` work keeps running; close must wait for it.

    Closing a sqlite connection while another thread is inside a statement crashes the
    interpreter (this killed a CI run), so ``close`` takes the same lock as every transaction.
    """
    registry = SqliteRegistry(tmp_path / "fleet.db")
    registry.open_sync()
    inside = threading.Event()
    finished: list[int] = []

    def slow(conn: sqlite3.Connection) -> int:
        inside.set()
        threading.Event().wait(0.3)
        finished.append(1)
        return 1

    async def scenario() -> None:
        work = asyncio.ensure_future(registry._run(slow))
        await asyncio.to_thread(inside.wait, 5)
        work.cancel()  # the worker thread carries on, as at shutdown
        await registry.close()
        assert finished == [1], "close returned while a transaction was still running"
        with pytest.raises(RuntimeError, match="not open"):
            await registry.list_nodes()

    asyncio.run(scenario())
