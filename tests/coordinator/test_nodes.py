"""Node registry, liveness, health probes and service discovery over real HTTP."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from lightd_coordinator.registry.base import StoredNode
from lightd_coordinator.registry.memory import MemoryRegistry
from lightd_shared.monitoring import HealthReport, Metrics
from lightd_shared.nodes import NodeList, NodeRecord, NodeStatusView
from lightd_shared.services import ServiceListing
from lightd_shared.timestamps import utcnow
from tests.coordinator.harness import agent, coordinator, make_settings, node_body, sse
from tests.harness.registration import register as _register_node
from tests.harness.wait import wait_until


def _register(client: httpx.Client, node_id: str, port: int = 8080, **extra: Any) -> Any:
    return _register_node(client, node_id, port, **extra)


def test_register_get_update_delete() -> None:
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        created = _register(client, "node-1", labels={"env": "dev"})
        assert created.status_code == 201
        record = NodeRecord.model_validate_json(created.content)
        assert record.status == "active" and record.labels == {"env": "dev"}

        wait_until(lambda: utcnow() > record.last_seen, what="the clock moved on")
        again = _register(client, "node-1", port=9000, labels={"env": "dev"})
        assert again.status_code == 200
        updated = NodeRecord.model_validate_json(again.content)
        assert updated.port == 9000
        assert updated.created_at == record.created_at
        assert updated.last_seen > record.last_seen

        put = client.put("/api/v1/nodes/node-1", json={"status": "inactive", "port": 8081})
        assert put.status_code == 200
        assert put.json()["status"] == "inactive" and put.json()["port"] == 8081
        assert put.json()["labels"] == {"env": "dev"}  # untouched fields stay

        assert client.get("/api/v1/nodes/node-1").json()["port"] == 8081
        deleted = client.delete("/api/v1/nodes/node-1")
        assert deleted.status_code == 200
        for method in ("GET", "PUT", "DELETE"):
            kwargs: dict[str, Any] = {"json": {"port": 1}} if method == "PUT" else {}
            missing = client.request(method, "/api/v1/nodes/node-1", **kwargs)
            assert missing.status_code == 404, method
            assert "node-1" in missing.json()["detail"]
        assert client.get("/api/v1/nodes/node-1/status").status_code == 404
        assert client.post("/api/v1/nodes/node-1/heartbeat").status_code == 404


def test_put_with_wrong_types_is_422_and_changes_nothing() -> None:
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        _register(client, "n")
        for body in ({"port": "8081"}, {"port": 70000}, {"status": "gone"}, {"nmae": "typo"}):
            response = client.put("/api/v1/nodes/n", json=body)
            assert response.status_code == 422, body
            assert response.json()["detail"][0]["loc"][0] == "body"
        assert client.get("/api/v1/nodes/n").json()["port"] == 8080


def test_list_filters_and_pages() -> None:
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        _register(client, "a", labels={"env": "dev", "region": "us-west"})
        _register(client, "b", labels={"env": "dev", "region": "eu"})
        _register(client, "c", labels={"env": "prod"}, provider="lxc")
        client.put("/api/v1/nodes/b", json={"status": "inactive"})

        def ids(query: str) -> tuple[list[str], int]:
            listing = NodeList.model_validate_json(client.get(f"/api/v1/nodes{query}").content)
            return [n.id for n in listing.nodes], listing.count

        assert ids("") == (["a", "b", "c"], 3)
        assert ids("?status=active") == (["a", "c"], 2)
        assert ids("?provider=lxc") == (["c"], 1)
        assert ids("?label=env=dev") == (["a", "b"], 2)
        assert ids("?label=env=dev&label=region=eu") == (["b"], 1)
        assert ids("?limit=1") == (["a"], 3)
        assert ids("?limit=2&offset=1") == (["b", "c"], 3)
        assert ids("?offset=5") == ([], 3)
        for bad in ("?status=sleeping", "?limit=0", "?offset=-1", "?label=novalue", "?limit=x"):
            assert client.get(f"/api/v1/nodes{bad}").status_code == 422, bad


def test_status_view_has_last_seen_and_uptime() -> None:
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        _register(client, "n")

        def a_second_up() -> dict[str, Any] | None:
            view: dict[str, Any] = client.get("/api/v1/nodes/n/status").json()
            up = NodeStatusView.model_validate(view).uptime.total_seconds() >= 1
            return view if up else None

        view = wait_until(a_second_up, 10, what="a second of uptime")
        assert set(view) == {"node_id", "status", "last_seen", "uptime"}
        assert re.fullmatch(r"(\d+h)?(\d+m)?\d+s", view["uptime"])
        assert NodeStatusView.model_validate(view).uptime.total_seconds() >= 1


def test_node_times_out_to_inactive_and_comes_back() -> None:
    settings = make_settings(registry={"node_timeout": "300ms", "health_check_interval": "100ms"})
    with coordinator(settings) as (base, _), httpx.Client(base_url=base) as client:
        with sse(base, "/ws?node=n") as stream:
            stream.next_message()
            _register(client, "n")
            assert stream.next_message().json()["type"] == "node_registered"
            event = stream.until("node_inactive", timeout=5).json()
            assert event["data"]["status"] == "inactive"
            silent_for = datetime.fromisoformat(event["timestamp"]) - datetime.fromisoformat(
                event["data"]["last_seen"]
            )
            assert silent_for >= timedelta(milliseconds=300)  # not before node_timeout
            assert client.get("/api/v1/nodes/n").json()["status"] == "inactive"
            assert client.get("/health").json()["active_nodes"] == 0

            beat = client.post("/api/v1/nodes/n/heartbeat")
            assert beat.status_code == 200 and beat.json()["status"] == "active"
            back = stream.until("node_updated")
            assert back.json()["data"]["status"] == "active"
            # and again inactive, then back by registration
            stream.until("node_inactive", timeout=5)
            _register(client, "n")
            assert stream.until("node_updated").json()["data"]["status"] == "active"


def test_heartbeats_keep_a_node_active() -> None:
    settings = make_settings(registry={"node_timeout": "600ms", "health_check_interval": "100ms"})
    with coordinator(settings) as (base, _), httpx.Client(base_url=base) as client:
        _register(client, "n")
        for _ in range(15):  # 1.5 s: longer than node_timeout
            time.sleep(0.1)  # a node's heartbeat period: the pace IS what this test is about
            assert client.post("/api/v1/nodes/n/heartbeat", json={}).status_code == 200
        assert client.get("/api/v1/nodes/n").json()["status"] == "active"


def test_health_probe_keeps_a_node_with_a_health_url_active() -> None:
    settings = make_settings(registry={"node_timeout": "600ms", "health_check_interval": "100ms"})
    with (
        agent() as (_, port),
        coordinator(settings) as (base, _),
        httpx.Client(base_url=base) as client,
    ):
        probed = _register(client, "probed", port, health_url=f"http://127.0.0.1:{port}/health")
        _register(client, "silent", port)
        # once the node registered later is past node_timeout, the earlier one is too: only
        # the probes (which moved its last_seen on) keep it active
        wait_until(
            lambda: client.get("/api/v1/nodes/silent").json()["status"] == "inactive",
            10,
            what="the silent node timed out",
        )
        now = client.get("/api/v1/nodes/probed").json()
        assert now["status"] == "active"
        registered = NodeRecord.model_validate_json(probed.content)
        assert NodeRecord.model_validate(now).last_seen > registered.last_seen


def test_heartbeat_services_feed_service_discovery() -> None:
    service = {
        "id": "web-server",
        "name": "Web Server",
        "type": "http",
        "status": "running",
        "port": 8080,
        "endpoint": "http://localhost:8080",
    }
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        _register(client, "node-1")
        _register(client, "node-2")
        # "nodes" counts the fleet (the seed's example: 3 nodes, one with services)
        assert client.get("/api/v1/services").json() == {"services": {}, "nodes": 2}
        beat = client.post("/api/v1/nodes/node-1/heartbeat", json={"services": [service]})
        assert beat.status_code == 200
        listing = ServiceListing.model_validate_json(client.get("/api/v1/services").content)
        assert listing.nodes == 2 and list(listing.services) == ["node-1"]
        assert listing.services["node-1"][0].model_dump(mode="json") == service
        metrics = Metrics.model_validate_json(client.get("/metrics").content)
        assert metrics.services.total == 1
        bad = client.post("/api/v1/nodes/node-1/heartbeat", json={"services": [{"port": "x"}]})
        assert bad.status_code == 422


def test_health_and_metrics_shapes() -> None:
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        _register(client, "a")
        _register(client, "b", provider="lxc")
        client.put("/api/v1/nodes/b", json={"status": "inactive"})
        health = client.get("/health").json()
        assert set(health) == {"status", "timestamp", "total_nodes", "active_nodes", "version"}
        report = HealthReport.model_validate(health)
        assert (report.status, report.total_nodes, report.active_nodes) == ("healthy", 2, 1)
        metrics = client.get("/metrics").json()
        assert set(metrics) == {"timestamp", "nodes", "services", "websocket"}
        assert metrics["nodes"] == {
            "total": 2,
            "by_status": {"active": 1, "inactive": 1},
            "by_provider": {"docker": 1, "lxc": 1},
        }
        assert metrics["websocket"] == {"connected_clients": 0}
        for kwargs in ({"params": {"format": "prometheus"}}, {"headers": {"Accept": "text/plain"}}):
            text = client.get("/metrics", **kwargs)
            assert text.headers["content-type"].startswith("text/plain")
            assert 'lightd_coordinator_nodes_by_status{status="inactive"} 1' in text.text
            assert 'lightd_coordinator_nodes_by_provider{provider="lxc"} 1' in text.text
            assert "# TYPE lightd_coordinator_nodes gauge" in text.text


def test_relayed_container_events_reach_subscribers() -> None:
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        _register(client, "n")
        with sse(base, "/ws?types=server_update") as stream:
            stream.next_message()
            update = {"event": "update", "server": "web", "status": "running"}
            sent = client.post(
                "/api/v1/nodes/n/events",
                json={"type": "server_update", "data": {"server": "web", "update": update}},
            )
            assert sent.status_code == 202
            event = stream.next_message().json()
            assert event["type"] == "server_update"
            # the one server_update shape, the same as remote sync's
            assert event["data"] == {"node": "n", "server": "web", "update": update}
            # a node inside the data cannot make the event speak for another node
            claimed = {"server": "web", "update": update, "node": "other", "node_id": "other"}
            client.post("/api/v1/nodes/n/events", json={"type": "server_update", "data": claimed})
            assert stream.next_message().json()["data"]["node"] == "n"
        mismatched = {"server": "web", "update": {**update, "server": "db"}}
        wrong = client.post(
            "/api/v1/nodes/n/events", json={"type": "server_update", "data": mismatched}
        )
        assert wrong.status_code == 422
        assert "update.server" in wrong.json()["detail"][0]["msg"]
        forged = client.post("/api/v1/nodes/n/events", json={"type": "node_unregistered"})
        assert forged.status_code == 422
        assert forged.json()["detail"][0]["loc"] == ["body", "type"]
        relay = {"type": "server_update", "data": {"server": "web", "update": update}}
        unknown = client.post("/api/v1/nodes/x/events", json=relay)
        assert unknown.status_code == 404


def test_openapi_docs_are_served() -> None:
    with coordinator() as (base, _), httpx.Client(base_url=base) as client:
        assert client.get("/docs").status_code == 200
        spec = client.get("/openapi.json").json()
        for path in (
            "/api/v1/nodes",
            "/api/v1/nodes/{node_id}",
            "/api/v1/nodes/{node_id}/status",
            "/api/v1/nodes/{node_id}/commands",
            "/api/v1/commands/{command_id}/result",
            "/api/v1/services",
            "/health",
            "/metrics",
            "/ws",
            "/api/v1/auth/token",
        ):
            assert path in spec["paths"], path


def test_a_stored_unparseable_url_is_one_log_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # registrations check address and health_url now; a registry written before that may still
    # hold bad ones: the probes of the other nodes go on, dispatch fails with a message
    now = utcnow()
    registry = MemoryRegistry()

    def stored(node_id: str, port: int, **extra: Any) -> StoredNode:
        record = NodeRecord.model_validate(
            {**node_body(node_id, port), **extra, "created_at": now, "last_seen": now}
        )
        return StoredNode(record=record, active_since=now)

    caplog.set_level(logging.DEBUG, logger="lightd_coordinator")
    settings = make_settings(registry={"node_timeout": "800ms", "health_check_interval": "100ms"})
    with agent() as (fake, port):
        asyncio.run(registry.put_node(stored("bad-probe", port, health_url="http://[::1")))
        asyncio.run(registry.put_node(stored("bad-address", port, address="999.1.1.1")))
        good = stored("probed", port, health_url=f"http://127.0.0.1:{port}/health")
        asyncio.run(registry.put_node(good))
        with (
            coordinator(settings, registry=registry) as (base, _),
            httpx.Client(base_url=base) as client,
        ):
            # bad-probe was stored first: once it is past node_timeout, so is probed, which
            # only its (good) probes keep active
            wait_until(
                lambda: client.get("/api/v1/nodes/bad-probe").json()["status"] == "inactive",
                10,
                what="the node with the bad health_url timed out",
            )
            wait_until(
                lambda: (
                    NodeRecord.model_validate(client.get("/api/v1/nodes/probed").json()).last_seen
                    > good.record.last_seen
                ),
                5,
                what="a probe counted as a heartbeat",
            )
            assert client.get("/api/v1/nodes/probed").json()["status"] == "active"
            result = client.post(
                "/api/v1/nodes/bad-address/commands", json={"type": "exec", "action": "id"}
            ).json()
            assert result["status"] == "failed"
            assert "999.1.1.1" in result["output"] and "PUT" in result["output"]
            assert fake.count == 0
    assert not [r for r in caplog.records if r.exc_info], "no tracebacks"
    skipped = [r for r in caplog.records if "health probe of node bad-probe skipped" in r.message]
    assert len(skipped) == 1 and skipped[0].levelno == logging.WARNING
    assert any("not sent" in r.message and "bad-address" in r.message for r in caplog.records)
