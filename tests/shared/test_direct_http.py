"""DirectSender sends the request httpx's client would send, through the client's transport."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from lightd_shared.direct_http import DirectSender
from tests.harness.servers import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Recording:
    """A transport that records each request and answers 200 (with a cookie when told)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.set_cookie: str | None = None
        self.transport = httpx.MockTransport(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        headers = {} if self.set_cookie is None else {"Set-Cookie": self.set_cookie}
        return httpx.Response(200, json={"n": len(self.requests)}, headers=headers)


def _client(recording: Recording) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        headers={"User-Agent": "lightd-test/1", "Authorization": "Bearer client-wide"},
        follow_redirects=False,
        transport=recording.transport,
    )


def _same(a: httpx.Request, b: httpx.Request) -> None:
    assert (a.method, a.url, a.content) == (b.method, b.url, b.content)
    assert a.headers.raw == b.headers.raw
    assert a.extensions == b.extensions


@pytest.mark.parametrize(
    "body",
    [
        {"json": {"command": "status", "caf\u00e9": [1, 2.5, None]}},
        {"content": b'{"event":"update"}'},
        {},
    ],
)
async def test_the_request_is_the_one_the_client_builds(body: dict[str, Any]) -> None:
    recording = Recording()
    timeout = httpx.Timeout(3.0, connect=1.0)
    # Authorization overrides the client's, as a request's header does in httpx's merge.
    headers = {"Idempotency-Key": "cmd-1", "Authorization": "Bearer per-request"}
    async with _client(recording) as client:
        direct = DirectSender(client, recording.transport)
        answer = await direct.send(
            "POST",
            httpx.URL("http://agent.example:3000/api/v1/commands"),
            headers=headers,
            timeout=timeout.as_dict(),
            **body,
        )
        reference = await client.request(
            "POST",
            "http://agent.example:3000/api/v1/commands",
            headers=headers,
            timeout=timeout,
            **body,
        )
    assert answer.status_code == 200 and answer.json() == {"n": 1}
    assert answer.request is recording.requests[0] and answer.is_closed
    assert reference.json() == {"n": 2}
    _same(*recording.requests)
    assert recording.requests[0].headers.get_list("authorization") == ["Bearer per-request"]


async def test_a_cookie_hands_the_client_back_its_layer() -> None:
    recording = Recording()
    async with _client(recording) as client:
        direct = DirectSender(client, recording.transport)
        assert direct.usable()
        recording.set_cookie = "lb=replica-2; Path=/"
        url = httpx.URL("http://remote.example/api/update")
        await direct.send("POST", url, headers={}, timeout=httpx.Timeout(1.0).as_dict())
        assert not direct.usable()  # the cookie is in the client's jar now
        recording.set_cookie = None
        await client.post(url)
    first, second = recording.requests
    assert "cookie" not in first.headers
    assert second.headers["cookie"] == "lb=replica-2"


async def test_transport_errors_are_httpx_s_own() -> None:
    async with httpx.AsyncClient() as client:
        transport = httpx.AsyncHTTPTransport(retries=0)
        direct = DirectSender(client, transport)
        with pytest.raises(httpx.ConnectError):
            # a port just freed, nothing listening: refused at once
            await direct.send(
                "GET",
                httpx.URL(f"http://127.0.0.1:{free_port()}/"),
                headers={},
                timeout=httpx.Timeout(2.0).as_dict(),
            )
        await transport.aclose()
