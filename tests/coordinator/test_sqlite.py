"""The sqlite registry: nodes, command results and event ids survive a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lightd_coordinator.registry import MemoryRegistry, Registry, SqliteRegistry, StoredNode
from lightd_shared.commands import CommandResult
from lightd_shared.nodes import NodeRecord
from lightd_shared.timestamps import utcnow
from tests.coordinator.harness import agent, coordinator, make_settings, node_body, sse

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


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Registry:
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

        assert await store.claim_idempotency_key("k", "cmd_1", now) is None
        assert await store.claim_idempotency_key("k", "cmd_2", now) == "cmd_1"

        result = CommandResult(id="cmd_1", node_id="a", status="success")
        from datetime import timedelta

        await store.put_result(result, now + timedelta(seconds=60))
        assert await store.get_result("cmd_1") == result
        assert await store.purge_results(now) == 0
        assert await store.purge_results(now + timedelta(seconds=61)) == 1
        assert await store.get_result("cmd_1") is None

        ids = [await store.append_event(None, "t", f"{{{i}}}", keep=3) for i in range(5)]
        assert ids == [1, 2, 3, 4, 5]
        assert [e.id for e in await store.recent_events(10)] == [3, 4, 5]
        assert await store.last_event_id() == 5
    finally:
        await store.close()
