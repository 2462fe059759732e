"""``server.max_body_size`` on the coordinator: 413 by ``Content-Length`` or while a chunked
body is read, on every route that takes a body; and bounded fields inside a body.

Before, 10 MB bodies were accepted on registration, event relay, remote update and commands.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.coordinator.harness import STATIC, coordinator, make_settings, node_body

AGENT_TOKEN = "lightd_a9e1f0c2b3d4e5f60718293a4b5c6d7e"
OPERATOR = {"Authorization": f"Bearer {STATIC}", "Content-Type": "application/json"}
AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}", "Content-Type": "application/json"}
LIMIT = 64 * 1024
TOO_LARGE = {"detail": f"request body is larger than {LIMIT} bytes (server.max_body_size)"}

ROUTES = [
    ("POST", "/api/v1/nodes", AGENT),
    ("PUT", "/api/v1/nodes/n1", OPERATOR),
    ("POST", "/api/v1/nodes/n1/heartbeat", AGENT),
    ("POST", "/api/v1/nodes/n1/events", AGENT),
    ("POST", "/api/v1/nodes/n1/commands", OPERATOR),
    ("POST", "/api/v1/commands", OPERATOR),
    ("POST", "/api/v1/commands/cmd_1_n1/result", AGENT),
    ("POST", "/api/v1/remote/n1/update", AGENT),
    ("POST", "/api/v1/remote/n1/config", AGENT),
    ("POST", "/api/v1/remote/unknown/update", AGENT),
    ("POST", "/api/v1/nodes/n1/containers", OPERATOR),
]


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    settings = make_settings(
        server={"auth_token": STATIC, "max_body_size": LIMIT},
        auth={"enabled": True, "agent_token": AGENT_TOKEN},
    )
    with coordinator(settings) as (url, _):
        created = httpx.post(f"{url}/api/v1/nodes", json=node_body("n1", 9), headers=AGENT)
        assert created.status_code == 201, created.text
        yield url


def _chunks(data: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


BIG = json.dumps({"id": "n1", "name": "x" * (10 * 1024 * 1024)}).encode()


@pytest.mark.parametrize(("method", "path", "headers"), ROUTES)
def test_an_oversized_body_is_413_declared_or_chunked(
    base: str, method: str, path: str, headers: dict[str, str]
) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        declared = client.request(method, path, content=BIG, headers=headers)
        assert declared.status_code == 413, declared.text
        assert declared.json() == TOO_LARGE
    with httpx.Client(base_url=base, timeout=30) as client:
        chunked = client.request(method, path, content=_chunks(BIG), headers=headers)
        assert chunked.request.headers.get("transfer-encoding") == "chunked"
        assert chunked.status_code == 413, chunked.text
        assert chunked.json() == TOO_LARGE
    nodes = httpx.get(f"{base}/api/v1/nodes", headers=OPERATOR).json()["nodes"]
    assert [(n["id"], n["name"]) for n in nodes] == [("n1", "Node n1")]


def test_a_small_chunked_body_is_read_as_usual(base: str) -> None:
    body = json.dumps({"status": "active"}).encode()
    response = httpx.post(
        f"{base}/api/v1/nodes/n1/heartbeat", content=_chunks(body, 5), headers=AGENT
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("labels", {f"k{i}": "v" for i in range(257)}),
        ("labels", {"k" * 254: "v"}),
        ("labels", {"k": "v" * 4097}),
        ("labels", {"": "v"}),
        ("capabilities", {f"c{i}": True for i in range(257)}),
        ("name", "n" * 256),
        ("provider", "p" * 256),
        ("version", "v" * 256),
    ],
)
def test_fields_are_bounded(base: str, field: str, value: object) -> None:
    body = node_body("bounded", 9, **{field: value})
    response = httpx.post(f"{base}/api/v1/nodes", json=body, headers=AGENT)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert httpx.get(f"{base}/api/v1/nodes/bounded", headers=OPERATOR).status_code == 404
