"""A large fleet is told to heartbeat less often, and its node timeout stretches to match."""

from __future__ import annotations

from datetime import timedelta

import httpx

from lightd_coordinator.core import Coordinator
from lightd_shared.dispatch import NEXT_HEARTBEAT_HEADER
from tests.coordinator.harness import coordinator, make_settings, node_body
from tests.harness.wait import wait_until


def test_the_heartbeat_answer_stretches_with_the_fleet() -> None:
    settings = make_settings(
        registry={"heartbeat_interval": "1s", "max_heartbeat_rate": 2, "node_timeout": "5s"}
    )
    with coordinator(settings) as (base, app), httpx.Client(base_url=base) as client:
        core: Coordinator = app.state.coordinator
        client.post("/api/v1/nodes", json=node_body("n0", 9000))
        small = client.post("/api/v1/nodes/n0/heartbeat")
        assert small.status_code == 200 and NEXT_HEARTBEAT_HEADER not in small.headers
        for i in range(1, 8):  # 8 nodes at 2/s: one heartbeat every 4 s each
            client.post("/api/v1/nodes", json=node_body(f"n{i}", 9000 + i))
        # counted every health_check_interval (100 ms)
        wait_until(lambda: core.fleet_size == 8, 10, what="the fleet counted (8 nodes)")
        large = client.post("/api/v1/nodes/n0/heartbeat")
        assert large.status_code == 200
        assert float(large.headers[NEXT_HEARTBEAT_HEADER]) == 4.0
        assert core.fleet.node_timeout == timedelta(seconds=20)
        client.delete("/api/v1/nodes/n7")
        client.delete("/api/v1/nodes/n6")
        wait_until(lambda: core.fleet_size == 6, 10, what="the fleet counted (6 nodes)")
        assert float(client.post("/api/v1/nodes/n0/heartbeat").headers[NEXT_HEARTBEAT_HEADER]) == 3
        assert core.fleet.node_timeout == timedelta(seconds=15)


def test_the_seed_defaults_never_stretch_a_small_fleet() -> None:
    settings = make_settings()
    with coordinator(settings) as (base, app), httpx.Client(base_url=base) as client:
        for i in range(50):
            client.post("/api/v1/nodes", json=node_body(f"n{i}", 9000))
        core: Coordinator = app.state.coordinator
        assert core.next_heartbeat is None and core.stretch == 1.0
        assert NEXT_HEARTBEAT_HEADER not in client.post("/api/v1/nodes/n1/heartbeat").headers
        assert core.fleet.node_timeout == timedelta(seconds=5)  # the test settings' own
