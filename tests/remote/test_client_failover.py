"""The remote client fails over between coordinator replicas serving one remote endpoint."""

from __future__ import annotations

import httpx
import pytest

from lightd_agent.config import AgentConfig
from lightd_agent.remote.client import RemoteClient, RemoteUnreachable
from lightd_agent.remote.proof import coordinator_proof
from lightd_shared.remote import RemoteSettings

TOKEN = "lightd_5f0e1d2c3b4a59687766554433221100"
KEY = "failover-dispatch-key-0123456789abcdef0123"


def _config(**coordinator: object) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "authorization": {"enabled": False},
            "node": {"id": "n1"},
            "coordinator": {"token": TOKEN, **coordinator},
        }
    )


def test_every_replica_counts_as_the_coordinator() -> None:
    config = _config(url="http://a:3001", urls=["http://b:3001/", "http://a:3001"])
    assert config.coordinator.enabled and config.coordinator.bases() == [
        "http://a:3001",
        "http://b:3001",
    ]
    proof = coordinator_proof(config, KEY)
    assert proof is not None
    assert proof.for_url("http://b:3001/api/v1/remote/n1") is not None
    assert proof.for_url("http://b:30011/api/v1/remote/n1") is None
    assert proof.alternates("http://a:3001/api/v1/remote/n1") == ["http://b:3001/api/v1/remote/n1"]
    assert proof.alternates("http://panel.example/api") == []
    # the environment's spelling: urls separated by commas
    assert _config(urls="http://a:1, http://b:2").coordinator.bases() == [
        "http://a:1",
        "http://b:2",
    ]


@pytest.mark.anyio
async def test_a_dead_or_unavailable_replica_passes_the_request_on() -> None:
    seen: list[str] = []
    down = {"a"}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host in down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.host == "b":
            return httpx.Response(503, json={"detail": "registry unavailable"})
        return httpx.Response(200, json={"status": 200, "endpoint": "active"})

    settings = RemoteSettings(enabled=True, url="http://a:3001/api/v1/remote/n1", token=TOKEN)
    client = RemoteClient(
        settings,
        transport=httpx.MockTransport(answer),
        alternates=["http://b:3001/api/v1/remote/n1", "http://c:3001/api/v1/remote/n1"],
    )
    try:
        response = await client.health()
        assert response.status_code == 200 and seen == ["a", "b", "c"]
        await client.health()  # it stays with the replica that answered
        assert seen == ["a", "b", "c", "c"]
        down.add("c")  # c gone, a still down: b's 503 is the last answer, the caller's
        assert (await client.health()).status_code == 503
        assert seen[4:] == ["c", "a", "b"]
        down.add("b")  # all gone: the last error is the caller's
        with pytest.raises(RemoteUnreachable):
            await client.health()
    finally:
        await client.aclose()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
