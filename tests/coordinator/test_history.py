"""The resource history: bounded per server, persisted by sqlite and redis, paged with ``?since=``.

Agents push with ``POST /api/v1/nodes/{id}/stats``; operators read
``GET /api/v1/nodes/{id}/containers/{server}/stats/history``. A node that reports too much is
bounded (samples dropped and counted), never trusted (its clock neither).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from lightd_coordinator.config import RegistrySettings
from lightd_coordinator.history import HistoryKeeper, MemoryStatsHistory, SqliteStatsHistory
from lightd_coordinator.history.base import StatsHistory
from lightd_coordinator.history.redis import RedisStatsHistory
from lightd_coordinator.registry.base import RegistryUnavailable
from lightd_shared.containers import ContainerStats
from lightd_shared.timestamps import format_timestamp, utcnow
from tests.coordinator.harness import STATIC, coordinator, make_settings, node_body
from tests.coordinator.replicas import replicas
from tests.harness.redis import RedisServer
from tests.harness.registration import register
from tests.harness.servers import free_port

AUTH = {"Authorization": f"Bearer {STATIC}"}
T0 = datetime(2026, 1, 13, 18, 0, tzinfo=UTC)


def _sample(server: str, at: datetime, cpu: float = 1.0) -> dict[str, Any]:
    return {
        "id": server,
        "cpu_percent": cpu,
        "memory_usage": 1000,
        "memory_limit": 4000,
        "network_rx_bytes": 10,
        "network_tx_bytes": 20,
        "block_read_bytes": 30,
        "block_write_bytes": 40,
        "timestamp": format_timestamp(at),
    }


def _client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers=AUTH, timeout=10)


def _history(client: httpx.Client, node_id: str, server: str, **params: Any) -> dict[str, Any]:
    response = client.get(
        f"/api/v1/nodes/{node_id}/containers/{server}/stats/history", params=params
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


class Clock:
    """An injected clock for the keeper: the test moves time, nothing sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _keeper(store: StatsHistory, clock: Clock, **bounds: Any) -> HistoryKeeper:
    settings = RegistrySettings(**{"stats_min_interval": "1s", **bounds})
    return HistoryKeeper(store, settings, clock=clock)


def _stats(server: str, at: datetime, cpu: float = 1.0) -> ContainerStats:
    return ContainerStats.model_validate(_sample(server, at, cpu))


async def _retention(store: StatsHistory) -> None:
    await store.open()
    try:
        clock = Clock(T0)
        keeper = _keeper(store, clock, stats_retention="1m", stats_max_samples=1000)
        for second in range(0, 180, 10):
            clock.now = T0 + timedelta(seconds=second)
            answer = await keeper.report("n1", [_stats("web", clock.now, cpu=second)])
            assert answer.accepted == 1
        kept = await keeper.read("n1", "web", since=None, limit=1000)
        # only the last minute before the newest report (at 170 s): 120..170 s
        assert [s.cpu_percent for s in kept] == [120, 130, 140, 150, 160, 170]
        clock.now = T0 + timedelta(minutes=10)
        assert await keeper.expire() == 6
        assert await keeper.read("n1", "web", since=None, limit=1000) == []

        # the count bound: the newest max_samples stay
        small = _keeper(store, clock, stats_max_samples=3)
        for i in range(6):
            clock.now = T0 + timedelta(minutes=20, seconds=i * 2)
            await small.report("n1", [_stats("db", clock.now, cpu=i)])
        kept = await small.read("n1", "db", since=None, limit=100)
        assert [s.cpu_percent for s in kept] == [3, 4, 5]
    finally:
        await store.close()


StoreFactory = Callable[[], StatsHistory]


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """A fresh store of each provider (redis: a real redis-server; missing, the test fails)."""
    if request.param == "memory":
        return MemoryStatsHistory
    if request.param == "sqlite":
        return lambda: SqliteStatsHistory(tmp_path / "history.db")
    server: RedisServer = request.getfixturevalue("redis")
    return lambda: RedisStatsHistory(server.url, prefix="test:")


def test_retention_bounds_each_server(make_store: StoreFactory) -> None:
    asyncio.run(_retention(make_store()))


def test_store_pages_with_since_and_forgets_a_node(make_store: StoreFactory) -> None:
    async def run() -> None:
        store = make_store()
        await store.open()
        try:
            clock = Clock(T0)
            keeper = _keeper(store, clock)
            for i in range(5):
                clock.now = T0 + timedelta(seconds=i * 10, microseconds=123456)
                await keeper.report("n1", [_stats("web", clock.now, cpu=i)])
                await keeper.report("n2", [_stats("web", clock.now, cpu=10 + i)])
            await keeper.report("n1", [_stats("db", clock.now, cpu=99)])
            first = await keeper.read("n1", "web", since=None, limit=2)
            assert [s.cpu_percent for s in first] == [0, 1]
            rest = await keeper.read("n1", "web", since=first[-1].timestamp, limit=10)
            assert [s.cpu_percent for s in rest] == [2, 3, 4]
            assert await keeper.read("n1", "web", since=rest[-1].timestamp, limit=10) == []
            assert await store.latest("n1", "web") == rest[-1].timestamp
            assert await store.servers("n1") == {"web", "db"}

            await keeper.forget("n1")
            assert await store.servers("n1") == set()
            assert await store.latest("n1", "web") is None
            assert await keeper.read("n1", "db", since=None, limit=10) == []
            # the other node keeps its history, and the purge still finds it
            kept = await keeper.read("n2", "web", since=None, limit=10)
            assert [s.cpu_percent for s in kept] == [10, 11, 12, 13, 14]
            assert await store.purge(T0 + timedelta(seconds=25)) == 3
            assert await store.servers("n2") == {"web"}
            assert await store.purge(T0 + timedelta(hours=1)) == 2
            assert await store.servers("n2") == set()
        finally:
            await store.close()

    asyncio.run(run())


def test_a_node_that_reports_too_much_is_bounded_not_trusted(make_store: StoreFactory) -> None:
    async def run() -> None:
        clock = Clock(T0)
        store = make_store()
        await store.open()
        keeper = _keeper(store, clock, stats_min_interval="5s", stats_max_servers=3)
        # many samples of one server in one report: one is kept (the newest)
        burst = [_stats("web", T0 - timedelta(seconds=i), cpu=i) for i in range(50)]
        answer = await keeper.report("n1", burst)
        assert (answer.accepted, answer.dropped) == (1, 49)
        # faster than stats_min_interval: dropped
        clock.now = T0 + timedelta(seconds=1)
        answer = await keeper.report("n1", [_stats("web", clock.now)])
        assert (answer.accepted, answer.dropped) == (0, 1)
        # more servers than stats_max_servers: the extra ones get no history
        clock.now = T0 + timedelta(seconds=10)
        answer = await keeper.report("n1", [_stats(f"s{i}", clock.now) for i in range(10)])
        assert answer.accepted == 2  # web plus two new ones make three
        assert len(await keeper.store.servers("n1")) == 3
        # a clock far ahead is not trusted: the sample is stamped with the coordinator's time
        clock.now = T0 + timedelta(seconds=20)
        answer = await keeper.report("n1", [_stats("web", T0 + timedelta(days=365))])
        assert answer.accepted == 1
        kept = await keeper.read("n1", "web", since=None, limit=10)
        assert kept[-1].timestamp == clock.now
        # and samples older than the retention are dropped
        answer = await keeper.report("n1", [_stats("web", T0 - timedelta(days=1))])
        assert (answer.accepted, answer.dropped) == (0, 1)
        await store.close()

    asyncio.run(run())


def test_history_api_pages_oldest_first_and_checks_input() -> None:
    settings = make_settings(
        auth={"enabled": True}, registry={"stats_min_interval": "1s"}, server={"dev": True}
    )
    with coordinator(settings) as (base, _), _client(base) as client:
        register(client, "h1", expect=(201,))
        now = utcnow()
        stamps = [now - timedelta(seconds=50 - i * 10) for i in range(5)]
        for i, at in enumerate(stamps):
            response = client.post(
                "/api/v1/nodes/h1/stats", json={"samples": [_sample("web", at, cpu=i)]}
            )
            assert response.status_code == 202, response.text
            assert response.json() == {"accepted": 1, "dropped": 0}

        whole = _history(client, "h1", "web")
        assert whole["node_id"] == "h1" and whole["server"] == "web"
        assert [s["cpu_percent"] for s in whole["samples"]] == [0, 1, 2, 3, 4]
        assert set(whole["samples"][0]) >= {
            "timestamp",
            "cpu_percent",
            "memory_usage",
            "memory_limit",
            "network_rx_bytes",
            "network_tx_bytes",
            "block_read_bytes",
            "block_write_bytes",
        }
        first = _history(client, "h1", "web", limit=2)["samples"]
        assert [s["cpu_percent"] for s in first] == [0, 1]
        rest = _history(client, "h1", "web", since=first[-1]["timestamp"], limit=2)["samples"]
        assert [s["cpu_percent"] for s in rest] == [2, 3]
        last = _history(client, "h1", "web", since=rest[-1]["timestamp"])["samples"]
        assert [s["cpu_percent"] for s in last] == [4]
        assert _history(client, "h1", "web", since=last[-1]["timestamp"])["samples"] == []

        bad = client.get(
            "/api/v1/nodes/h1/containers/web/stats/history", params={"since": "yesterday"}
        )
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "since"]
        unknown = client.get("/api/v1/nodes/nope/containers/web/stats/history")
        assert unknown.status_code == 404
        too_many = client.post(
            "/api/v1/nodes/h1/stats",
            json={"samples": [_sample(f"s{i}", now) for i in range(257)]},
        )
        assert too_many.status_code == 422
        assert client.post("/api/v1/nodes/nope/stats", json={"samples": []}).status_code == 404
        anonymous = httpx.get(f"{base}/api/v1/nodes/h1/containers/web/stats/history")
        assert anonymous.status_code == 401


def test_sqlite_history_survives_a_coordinator_restart(tmp_path: Path) -> None:
    settings = make_settings(
        registry={"provider": "sqlite", "path": str(tmp_path / "coordinator.db")}
    )
    now = utcnow()
    with coordinator(settings) as (base, _), _client(base) as client:
        register(client, "p1", expect=(201,))
        for i in range(3):
            at = now - timedelta(seconds=30 - i * 10)
            response = client.post(
                "/api/v1/nodes/p1/stats", json={"samples": [_sample("web", at, cpu=i)]}
            )
            assert response.json()["accepted"] == 1
        before = _history(client, "p1", "web")["samples"]
    assert len(before) == 3
    with coordinator(settings) as (base, _), _client(base) as client:
        assert _history(client, "p1", "web")["samples"] == before
        # unregistered, the node's history goes with it: the same id registered again has none
        assert client.delete("/api/v1/nodes/p1").status_code == 200
        register(client, "p1", expect=(201,))
        assert _history(client, "p1", "web")["samples"] == []


def test_two_redis_coordinators_share_one_history(tmp_path: Path, redis: RedisServer) -> None:
    """What a node reports through one replica is read through the other, and forgotten too."""
    with replicas(tmp_path, redis.url, 2) as (a, b), httpx.Client(timeout=10) as client:
        assert client.post(f"{a.url}/api/v1/nodes", json=node_body("r1", 9)).status_code == 201
        now = utcnow()
        for i, base in enumerate([a.url, b.url, a.url]):
            at = now - timedelta(seconds=30 - i * 10)
            response = client.post(
                f"{base}/api/v1/nodes/r1/stats", json={"samples": [_sample("web", at, cpu=i)]}
            )
            assert response.status_code == 202 and response.json()["accepted"] == 1
        on_a = client.get(f"{a.url}/api/v1/nodes/r1/containers/web/stats/history").json()
        on_b = client.get(f"{b.url}/api/v1/nodes/r1/containers/web/stats/history").json()
        assert [s["cpu_percent"] for s in on_b["samples"]] == [0, 1, 2]
        assert on_a == on_b
        # the min-interval bound holds across replicas: a sample too close, sent to B, is dropped
        again = client.post(
            f"{b.url}/api/v1/nodes/r1/stats",
            json={"samples": [_sample("web", now - timedelta(seconds=9.5))]},
        )
        assert again.json() == {"accepted": 0, "dropped": 1}
        assert "no stats history store" not in a.logs() + b.logs()
        # unregistered through A, its history is gone for B as well
        assert client.delete(f"{a.url}/api/v1/nodes/r1").status_code == 200
        assert client.post(f"{b.url}/api/v1/nodes", json=node_body("r1", 9)).status_code == 201
        gone = client.get(f"{b.url}/api/v1/nodes/r1/containers/web/stats/history").json()
        assert gone["samples"] == []


def test_redis_history_unreachable_is_unavailable_and_hides_the_password() -> None:
    async def run() -> None:
        store = RedisStatsHistory(f"redis://:s3cret-pw@127.0.0.1:{free_port()}/0", timeout=2)
        await store.open()
        try:
            with pytest.raises(RegistryUnavailable) as raised:
                await store.read("n1", "web", since=None, limit=10)
            assert "cannot be reached" in str(raised.value)
            assert "s3cret-pw" not in str(raised.value)
            assert "s3cret-pw" not in store.display_url
        finally:
            await store.close()

    asyncio.run(run())
