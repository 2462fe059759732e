"""Enrolment with several coordinator replicas: fail over at once, and beat when told to."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from lightd_agent.config import AgentConfig
from lightd_agent.enrolment import Enrolment
from lightd_shared.dispatch import NEXT_HEARTBEAT_HEADER
from tests.harness.wait import until

TOKEN = "lightd_5f0e1d2c3b4a59687766554433221100"
KEY = "enrolment-dispatch-key-0123456789abcdef0123"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_dead_replica_is_left_for_the_next_and_a_large_fleet_slows_the_beat() -> None:
    config = AgentConfig.model_validate(
        {
            "authorization": {"enabled": False},
            "node": {"id": "n1"},
            "coordinator": {
                "url": "http://a:3001",
                "urls": ["http://b:3001"],
                "token": TOKEN,
                "advertise_address": "127.0.0.1",
                "heartbeat_interval": "1s",
            },
        }
    )
    calls: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append((request.url.host, request.url.path))
        if request.url.host == "a":
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/api/v1/nodes":
            return httpx.Response(201, json={})
        return httpx.Response(
            200, json={"status": "active"}, headers={NEXT_HEARTBEAT_HEADER: "42.000"}
        )

    manager: Any = SimpleNamespace(servers={})
    enrolment = Enrolment(config, manager, KEY, transport=httpx.MockTransport(answer))
    await enrolment.start()
    try:
        await until(lambda: enrolment.last_heartbeat is not None, what="a first heartbeat")
        assert enrolment.registered and enrolment.base == "http://b:3001"
        # a went first, then b at once (no backoff between replicas)
        assert calls[0] == ("a", "/api/v1/nodes")
        assert calls[1:3] == [("b", "/api/v1/nodes"), ("b", "/api/v1/nodes/n1/heartbeat")]
        assert enrolment.interval == 42.0  # the coordinator's, longer than our own 1 s
        assert enrolment.snapshot()["url"] == "http://b:3001"
    finally:
        await enrolment.stop()
    assert calls[-1] == ("b", "/api/v1/nodes/n1/heartbeat")  # the last "inactive" beat, to b
