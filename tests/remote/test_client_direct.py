"""The remote client's direct path sends what httpx's client would, and steps aside when the
client layer matters (a cookie from the remote, a proxy from the environment, Basic auth)."""

from __future__ import annotations

import httpx
import pytest

from lightd_agent import __version__
from lightd_agent.remote.client import RemoteClient
from lightd_shared.remote import RemoteSettings
from tests.remote.conftest import REMOTE_TOKEN, settings_for
from tests.remote.recorder import RemoteServer

pytestmark = pytest.mark.anyio

BODY = b'{"event":"update","server":"s1","status":"running"}'


def _wire(request: httpx.Request) -> list[tuple[bytes, bytes]]:
    """The request's headers as they go on the wire, the per-request key left out."""
    return [(k, v) for k, v in request.headers.raw if k.lower() != b"idempotency-key"]


async def test_an_update_is_the_request_httpx_s_client_would_send() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"success": True})

    transport = httpx.MockTransport(answer)
    settings = settings_for("http://remote.example/api")
    client = RemoteClient(settings, transport=transport)
    try:
        response = await client.post_update(BODY, idempotency_key="k1", sequence=7)
    finally:
        await client.aclose()
    assert response.status_code == 200 and response.json() == {"success": True}
    assert response.request is seen[0]

    # The same request made by httpx's client layer, configured as RemoteClient's clients are.
    async with httpx.AsyncClient(
        headers={
            "Authorization": f"Bearer {REMOTE_TOKEN}",
            "User-Agent": f"lightd/{__version__}",
            "Accept": "application/json",
        },
        timeout=httpx.Timeout(1.0),
        transport=transport,
    ) as plain:
        await plain.post(
            "http://remote.example/api/update",
            content=BODY,
            headers={
                "Idempotency-Key": "k2",
                "X-Lightd-Sequence": "7",
                "Content-Type": "application/json",
            },
        )
    direct, reference = seen
    assert (direct.method, direct.url, direct.content) == (
        reference.method,
        reference.url,
        reference.content,
    )
    assert _wire(direct) == _wire(reference)
    assert direct.headers["idempotency-key"] == "k1"
    assert direct.extensions["timeout"] == reference.extensions["timeout"]


async def test_a_cookie_the_remote_sets_is_sent_back_as_httpx_would() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        headers = {"Set-Cookie": "lb=replica-2; Path=/"} if len(seen) == 1 else {}
        return httpx.Response(200, json={"success": True}, headers=headers)

    client = RemoteClient(
        settings_for("http://remote.example/api"), transport=httpx.MockTransport(answer)
    )
    try:
        for sequence in (1, 2, 3):
            response = await client.post_update(
                BODY, idempotency_key=f"k{sequence}", sequence=sequence
            )
            assert response.status_code == 200
    finally:
        await client.aclose()
    assert "cookie" not in seen[0].headers
    assert seen[1].headers["cookie"] == "lb=replica-2"
    assert seen[2].headers["cookie"] == "lb=replica-2"


async def test_a_proxy_from_the_environment_is_still_used(
    remote: RemoteServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``HTTP_PROXY`` set, updates go through the proxy, as httpx's client sends them:
    the recording remote plays the proxy for a host that does not resolve."""
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{remote.port}")
    client = RemoteClient(settings_for("http://remote.invalid/api"))
    try:
        response = await client.post_update(BODY, idempotency_key="k1", sequence=1)
    finally:
        await client.aclose()
    assert response.status_code == 200
    (update,) = remote.updates()
    assert update.raw == BODY and update.headers["host"] == "remote.invalid"


async def test_user_info_in_the_url_is_still_sent_as_basic_auth(remote: RemoteServer) -> None:
    url = remote.url.replace("http://", "http://panel:s3cret@")
    settings = RemoteSettings.model_validate(
        {"enabled": True, "url": url, "token": REMOTE_TOKEN, "timeout": "1s"}
    )
    client = RemoteClient(settings)
    try:
        assert (await client.post_update(BODY, idempotency_key="k", sequence=1)).status_code == 200
    finally:
        await client.aclose()
    (update,) = remote.updates()
    assert (
        update.headers["authorization"]
        == httpx.BasicAuth("panel", "s3cret")
        .auth_flow(httpx.Request("GET", "http://x"))
        .__next__()
        .headers["authorization"]
    )
