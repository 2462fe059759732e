"""The failed-auth limit on its own: a token bucket per client over 401 answers, injected clock."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lightd_shared.ratelimit import FailedAuthLimit, FailureBuckets, RateLimitSettings

GOOD = "right-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _guarded(request: Request) -> JSONResponse:
    if request.headers.get("authorization") != f"Bearer {GOOD}":
        return JSONResponse({"detail": "unauthorized"}, status_code=401)
    return JSONResponse({"ok": True})


async def _health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def _app(settings: RateLimitSettings, clock: Clock) -> FailedAuthLimit:
    inner = Starlette(routes=[Route("/thing", _guarded), Route("/health", _health)])
    return FailedAuthLimit(inner, settings, clock=clock)


def _client(app: FailedAuthLimit, host: str = "10.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 5000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_client_failing_burst_times_gets_429_with_retry_after_until_refilled() -> None:
    clock = Clock()
    app = _app(RateLimitSettings(burst=3, per_minute=6), clock)  # one token back per 10 s
    bad = {"Authorization": "Bearer wrong"}
    async with _client(app) as client:
        assert [(await client.get("/thing", headers=bad)).status_code for _ in range(3)] == [
            401,
            401,
            401,
        ]
        blocked = await client.get("/thing", headers={"Authorization": f"Bearer {GOOD}"})
        assert blocked.status_code == 429
        assert blocked.headers["retry-after"] == "10"
        assert "too many failed authentication attempts" in blocked.json()["detail"]
        assert (await client.get("/health")).status_code == 200  # never limited

        clock.now += 4
        assert (await client.get("/thing", headers=bad)).headers["retry-after"] == "6"
        clock.now += 6  # one token back: one more guess, then blocked again
        assert (await client.get("/thing", headers=bad)).status_code == 401
        assert (await client.get("/thing", headers=bad)).status_code == 429
        clock.now += 10
        assert (await client.get("/thing", headers={"Authorization": f"Bearer {GOOD}"})).json() == {
            "ok": True
        }


@pytest.mark.anyio
async def test_successful_calls_never_count_and_clients_are_apart() -> None:
    clock = Clock()
    app = _app(RateLimitSettings(burst=2, per_minute=1), clock)
    good = {"Authorization": f"Bearer {GOOD}"}
    async with _client(app, "10.0.0.1") as first, _client(app, "10.0.0.2") as second:
        for _ in range(200):
            assert (await first.get("/thing", headers=good)).status_code == 200
        assert (await second.get("/thing")).status_code == 401
        assert (await second.get("/thing")).status_code == 401
        assert (await second.get("/thing", headers=good)).status_code == 429
        assert (await first.get("/thing", headers=good)).status_code == 200  # not its neighbour's


@pytest.mark.anyio
async def test_disabled_limit_never_answers_429() -> None:
    app = _app(RateLimitSettings(enabled=False, burst=1), Clock())
    async with _client(app) as client:
        assert {(await client.get("/thing")).status_code for _ in range(20)} == {401}


def test_tracked_clients_are_bounded_and_full_buckets_forgotten() -> None:
    clock = Clock()
    buckets = FailureBuckets(RateLimitSettings(burst=1, per_minute=60, max_clients=3), clock)
    for n in range(10):
        buckets.failed(f"10.0.0.{n}")
    assert buckets.retry_after("10.0.0.0") is None  # evicted (oldest)
    assert buckets.retry_after("10.0.0.9") == 1
    assert len(buckets._buckets) == 3
    clock.now += 1
    assert buckets.retry_after("10.0.0.9") is None
    assert len(buckets._buckets) == 2  # refilled to full: forgotten
