"""The agent's failed-auth limit: bad bearers (API token or dispatch JWT) end in 429."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lightd_agent.app import create_app
from lightd_agent.config import AgentConfig
from tests.agent.conftest import TOKEN


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_client_guessing_the_agent_token_is_answered_429(tmp_path: Path) -> None:
    config = AgentConfig.model_validate(
        {
            "server": {"rate_limit": {"burst": 4, "per_minute": 60}},
            "authorization": {"token": TOKEN},
            "storage": {"base_path": str(tmp_path)},
            "node": {"id": "rate-limited"},
            # enrolled, so /commands checks the dispatch JWT (the coordinator is never reached)
            "coordinator": {"url": "http://127.0.0.1:9", "token": "lightd_" + "e" * 32},
        }
    )
    app = create_app(config)
    guesser = httpx.ASGITransport(app=app, client=("10.2.0.1", 4000))
    neighbour = httpx.ASGITransport(app=app, client=("10.2.0.2", 4000))
    bad = {"Authorization": "Bearer lightd_" + "f" * 32}
    async with (
        httpx.AsyncClient(transport=guesser, base_url="http://agent") as client,
        httpx.AsyncClient(transport=neighbour, base_url="http://agent") as other,
    ):
        statuses = [(await client.get("/containers", headers=bad)).status_code for _ in "ab"]
        assert statuses == [401, 401]
        forged = {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln"}
        for _ in "ab":
            answer = await client.post("/commands", headers=forged, json={"id": "x"})
            assert answer.status_code == 401
        blocked = await client.get("/containers", headers={"Authorization": f"Bearer {TOKEN}"})
        assert blocked.status_code == 429
        assert blocked.headers["retry-after"] == "1"
        assert (await other.get("/containers", headers=bad)).status_code == 401
