"""The coordinator's failed-auth limit: token guesses and bad bearers end in 429 Retry-After."""

from __future__ import annotations

import httpx
import pytest

from lightd_coordinator.main import create_app
from tests.coordinator.harness import STATIC, make_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(app: object, host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 4000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://coordinator")


@pytest.mark.anyio
async def test_guessing_the_server_token_is_limited_per_client() -> None:
    app = create_app(
        make_settings(auth={"enabled": True}, server={"rate_limit": {"burst": 5, "per_minute": 2}})
    )
    guess = {"Authorization": "Bearer not-the-token"}
    good = {"Authorization": f"Bearer {STATIC}"}
    async with _client(app, "10.1.0.1") as guesser, _client(app, "10.1.0.2") as operator:
        # Successful calls are never counted: far more than the burst, all answered.
        for _ in range(20):
            assert (await operator.post("/api/v1/auth/token", headers=good)).status_code == 200
        statuses = [
            (await guesser.post("/api/v1/auth/token", headers=guess)).status_code for _ in range(3)
        ]
        statuses += [(await guesser.get("/api/v1/nodes", headers=guess)).status_code for _ in "ab"]
        assert statuses == [401] * 5
        refused = await guesser.post("/api/v1/auth/token", headers=good)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "30"
        assert "rate_limit" in refused.json()["detail"]
        # a browser panel can read the refusal: CORS headers are on it
        seen = await guesser.get("/api/v1/nodes", headers={**good, "Origin": "https://panel"})
        assert seen.status_code == 429
        assert seen.headers["access-control-allow-origin"] == "*"
        assert "retry-after" in seen.headers["access-control-expose-headers"].lower()
        # /health is never limited (an app not started answers it without a registry on some
        # providers, so not necessarily 200, but never the limit's 429)
        assert (await guesser.get("/health")).status_code != 429
        # Another client is not held responsible.
        assert (await operator.post("/api/v1/auth/token", headers=good)).status_code == 200
        assert (await operator.get("/api/v1/nodes", headers=guess)).status_code == 401


def test_the_defaults_are_on() -> None:
    limit = make_settings().server.rate_limit
    assert limit.enabled and limit.burst >= 10 and limit.per_minute > 0
