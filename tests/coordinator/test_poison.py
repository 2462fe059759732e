"""Text that cannot be encoded and values nested too deep are refused at the edge.

A lone surrogate (``"\\ud800"``) in a registration's ``name`` used to be stored, after which
every ``GET /api/v1/nodes`` and ``/ws`` answered 500; relayed event data nested hundreds of
levels deep failed to serialise. Each is now a 422 whose body can itself be encoded, and every
later read still works.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.coordinator.harness import coordinator, make_settings, node_body, sse

AGENT_TOKEN = "lightd_a9e1f0c2b3d4e5f60718293a4b5c6d7e"
STATIC = "test-static-token-0123456789"
AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}", "Content-Type": "application/json"}
OPERATOR = {"Authorization": f"Bearer {STATIC}"}


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    settings = make_settings(auth={"enabled": True, "agent_token": AGENT_TOKEN})
    with coordinator(settings) as (url, _):
        created = httpx.post(f"{url}/api/v1/nodes", json=node_body("n1", 9), headers=AGENT)
        assert created.status_code == 201, created.text
        yield url


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _raw(body: dict[str, object], *, hole: str, raw: str) -> bytes:
    """``body`` as JSON with the string ``hole`` replaced by the raw JSON text ``raw``."""
    return json.dumps(body).replace(json.dumps(hole), raw).encode()


CASES = {
    "registration name": (
        "/api/v1/nodes",
        _raw(node_body("n2", 9, name="HOLE"), hole="HOLE", raw='"x\\ud800"'),
    ),
    "registration label key": (
        "/api/v1/nodes",
        _raw(node_body("n2", 9, labels={"HOLE": "v"}), hole="HOLE", raw='"\\udc00"'),
    ),
    "relayed event data": (
        "/api/v1/nodes/n1/events",
        _raw({"type": "server_update", "data": {"x": "HOLE"}}, hole="HOLE", raw='"\\ud800"'),
    ),
    "relayed event nested 500 deep": (
        "/api/v1/nodes/n1/events",
        _raw({"type": "server_update", "data": "HOLE"}, hole="HOLE", raw=_nested(500)),
    ),
    "relayed event nested 900 deep": (
        "/api/v1/nodes/n1/events",
        _raw({"type": "server_update", "data": "HOLE"}, hole="HOLE", raw=_nested(900)),
    ),
    "remote update server": (
        "/api/v1/remote/n1/update",
        _raw(
            {"event": "update", "server": "HOLE", "status": "ready"}, hole="HOLE", raw='"\\ud800"'
        ),
    ),
    "remote update error data": (
        "/api/v1/remote/n1/update",
        _raw(
            {"event": "update", "server": "s", "error": "failed", "data": "HOLE"},
            hole="HOLE",
            raw='"\\udfff tail"',
        ),
    ),
    "invalid UTF-8 that decodes to a surrogate": (
        "/api/v1/nodes",
        json.dumps(node_body("n2", 9, name="HOLE")).encode().replace(b"HOLE", b"\xed\xa0\x80"),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_with_an_encodable_422_and_reads_keep_working(base: str, case: str) -> None:
    path, body = CASES[case]
    response = httpx.post(f"{base}{path}", content=body, headers=AGENT, timeout=30)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    response.content.decode("utf-8")  # the answer itself is valid UTF-8
    assert response.json()["detail"]
    if response.status_code == 422:
        assert any(
            "surrogate" in e["msg"] or "nested" in e["msg"] for e in response.json()["detail"]
        ), response.text

    listing = httpx.get(f"{base}/api/v1/nodes", headers=OPERATOR)
    assert listing.status_code == 200, listing.text
    assert sorted(node["id"] for node in listing.json()["nodes"]) == ["n1"]
    with sse(base, headers=OPERATOR) as reader:
        assert reader.until("initial_state").json()["data"]["count"] == 1


def test_the_422_never_echoes_unencodable_input(base: str) -> None:
    # a surrogate where a short scalar is expected: the old handler copied it into "input"
    body = _raw(node_body("HOLE", 9), hole="HOLE", raw='"\\ud800"')
    response = httpx.post(f"{base}/api/v1/nodes", content=body, headers=AGENT)
    assert response.status_code == 422, response.text
    assert "\\ud800" in response.content.decode("utf-8")
