"""The heartbeat fast path answers ordinary heartbeats itself and hands everything else on."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from lightd_coordinator.api.fastpath import HeartbeatFastPath
from lightd_coordinator.core import Coordinator
from lightd_shared.nodes import NodeRegistration
from tests.coordinator.harness import STATIC, make_settings


class Recorder:
    """Stands in for the app behind the middleware: records what reached it, answers 418."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"route"})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_ordinary_heartbeats_fast_everything_else_to_the_route() -> None:
    core = Coordinator(make_settings(auth={"enabled": True}))
    await core.registry.open()
    try:
        await core.fleet.register(NodeRegistration(id="n1", address="127.0.0.1", port=1))
        route = Recorder()
        app = HeartbeatFastPath(route, coordinator=core)
        auth = {"Authorization": f"Bearer {STATIC}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://c"
        ) as client:
            fast = await client.post("/api/v1/nodes/n1/heartbeat", headers=auth)
            assert fast.status_code == 200 and fast.json()["status"] == "active"
            with_services: dict[str, Any] = {"services": [{"id": "w", "name": "W", "port": 80}]}
            fast = await client.post("/api/v1/nodes/n1/heartbeat", headers=auth, json=with_services)
            assert fast.status_code == 200 and route.bodies == []
            stored = await core.registry.get_node("n1")
            assert stored is not None and stored.services is not None
            # each of these reaches the route, body intact, and nothing was changed
            before = stored.revision
            cases = [
                ({}, b""),  # no token
                ({"Authorization": "Bearer wrong"}, b""),
                (auth, b'{"status": "sleeping"}'),  # does not validate
                (auth, b"{not json"),
            ]
            for headers, body in cases:
                answer = await client.post(
                    "/api/v1/nodes/n1/heartbeat", headers=headers, content=body
                )
                assert answer.status_code == 418 and route.bodies[-1] == body
            unknown = await client.post("/api/v1/nodes/ghost/heartbeat", headers=auth)
            assert unknown.status_code == 418
            other = await client.get("/api/v1/nodes/n1/heartbeat", headers=auth)
            assert other.status_code == 418
            after = await core.registry.get_node("n1")
            assert after is not None and after.revision == before
    finally:
        await core.registry.close()
