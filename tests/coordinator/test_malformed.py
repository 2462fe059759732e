"""Malformed input on every endpoint is answered 4xx with a message: never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.coordinator.harness import coordinator, node_body

BODY_ENDPOINTS = [
    ("POST", "/api/v1/nodes"),
    ("PUT", "/api/v1/nodes/n"),
    ("POST", "/api/v1/nodes/n/heartbeat"),
    ("POST", "/api/v1/nodes/n/commands"),
    ("POST", "/api/v1/nodes/n/events"),
    ("POST", "/api/v1/commands"),
    ("POST", "/api/v1/commands/cmd_1_n/result"),
]

PAYLOADS = {
    "broken json": b'{"id": ',
    "array": b"[1, 2]",
    "string": b'"node"',
    "number": b"42",
    "null": b"null",
    "empty": b"",
    "not utf-8": b"\xff\xfe\xfa",
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "huge number": b'{"port": 1e999, "id": "x", "address": "a"}',
    "wrong types": (
        b'{"id": 5, "port": "80", "address": [], "type": 1, "action": {}, "status": 7,'
        b' "labels": "x", "services": "x", "selector": [], "command": "ls"}'
    ),
    "unknown field": b'{"unexpected": true}',
}

OPTIONAL_BODY = {("POST", "/api/v1/nodes/n/heartbeat")}


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with coordinator() as (url, _):
        created = httpx.post(f"{url}/api/v1/nodes", json=node_body("n", 9))
        assert created.status_code == 201
        yield url


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_malformed_bodies_are_4xx(base: str, method: str, path: str, payload: str) -> None:
    body = PAYLOADS[payload]
    response = httpx.request(
        method,
        f"{base}{path}",
        content=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    if (method, path) in OPTIONAL_BODY and payload in (
        "null",
        "empty",
        "unknown field",
        "huge number",
    ):
        assert response.status_code == 200  # the heartbeat body is optional; peers may add fields
        return
    assert 400 <= response.status_code < 500, (payload, response.status_code, response.text)
    assert response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_wrong_content_type_is_4xx(base: str, method: str, path: str) -> None:
    response = httpx.request(
        method, f"{base}{path}", content=b"id=n", headers={"Content-Type": "text/plain"}
    )
    if (method, path) in OPTIONAL_BODY:
        assert response.status_code in (200, 422)
    else:
        assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nodes?limit=abc",
        "/api/v1/nodes?limit=99999999999999999999999",
        "/api/v1/nodes?status=",
        "/api/v1/nodes?label==",
        "/api/v1/nodes/%00",
        "/api/v1/nodes/" + "x" * 5000,
        "/api/v1/nodes/n/status/extra",
        "/api/v1/commands/%ff",
        "/metrics?format=xml",
        "/ws?last_event_id=1.5",
        "/ws?types=,,A",
        "/api/v1/nodes/n/commands?async=maybe",
    ],
)
def test_malformed_queries_and_paths_are_4xx(base: str, path: str) -> None:
    method = "POST" if path.endswith("async=maybe") else "GET"
    body = {"type": "exec", "action": "ls"} if method == "POST" else None
    response = httpx.request(method, f"{base}{path}", json=body, timeout=30)
    assert 400 <= response.status_code < 500, (path, response.status_code, response.text)


def test_bad_headers_are_4xx(base: str) -> None:
    cases = [
        ("POST", "/api/v1/nodes/n/commands", {"Idempotency-Key": ""}),
        ("POST", "/api/v1/nodes/n/commands", {"Idempotency-Key": "k" * 1000}),
        ("GET", "/ws", {"Last-Event-ID": "abc"}),
        ("POST", "/api/v1/auth/token", {"Authorization": "Bearer"}),
        ("POST", "/api/v1/auth/token", {"Authorization": "Bearer a.b.c"}),
    ]
    for method, path, headers in cases:
        body = {"type": "exec", "action": "ls"} if path.endswith("commands") else None
        response = httpx.request(method, f"{base}{path}", json=body, headers=headers, timeout=30)
        assert 400 <= response.status_code < 500, (path, headers, response.status_code)


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"])
def test_timestamps_out_of_range_in_utc_are_422(base: str, stamp: str) -> None:
    # valid RFC 3339 texts whose UTC time falls outside years 1..9999 (an OverflowError inside)
    sent = httpx.post(
        f"{base}/api/v1/nodes/n/commands?async=true", json={"type": "exec", "action": "ls"}
    )
    assert sent.status_code == 202
    command_id = sent.json()["id"]
    report = {"id": command_id, "node_id": "n", "status": "success", "finished": stamp}
    answer = httpx.post(f"{base}/api/v1/commands/{command_id}/result", json=report)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][-1] == "finished"
    assert "out of range" in answer.json()["detail"][0]["msg"]

    update = {"event": "update", "server": "web", "status": "ready"}
    relay = {
        "type": "server_update",
        "timestamp": stamp,
        "data": {"server": "web", "update": update},
    }
    answer = httpx.post(f"{base}/api/v1/nodes/n/events", json=relay)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"][-1] == "timestamp"


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("query", "%C2%B2"),  # "²": str.isdigit says yes, int() says no
        ("query", "1" * 5000),  # past Python's int digit limit
        ("query", "1" * 20),
        ("header", "1" * 5000),
        ("header", "٣"),  # an Arabic-Indic digit
    ],
)
def test_bad_last_event_ids_are_422_naming_where(base: str, where: str, value: str) -> None:
    if where == "query":
        response = httpx.get(f"{base}/ws?last_event_id={value}", timeout=30)
        named = "last_event_id"
    else:
        headers = {"Last-Event-ID": value.encode("utf-8")}  # raw bytes, as a client may send
        response = httpx.get(f"{base}/ws", headers=headers, timeout=30)
        named = "Last-Event-ID"
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == [where, named]
    assert "event id" in error["msg"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("health_url", "http://[::1"),
        ("health_url", "ftp://10.0.0.5/health"),
        ("health_url", "/health"),
        ("health_url", "http://x:99999/health"),
        ("address", "http://10.0.0.5"),
        ("address", "10.0.0.5/24"),
        ("address", "node 1"),
        ("address", "999.1.1.1"),
        ("address", "[::1"),
    ],
)
def test_unusable_addresses_and_health_urls_are_422(base: str, field: str, value: str) -> None:
    # accepted before, these broke every health probe (each with a traceback) or every dispatch
    created = httpx.post(f"{base}/api/v1/nodes", json=node_body("bad-url", 9, **{field: value}))
    assert created.status_code == 422, created.text
    assert created.json()["detail"][0]["loc"] == ["body", field]
    assert httpx.get(f"{base}/api/v1/nodes/bad-url").status_code == 404
    updated = httpx.put(f"{base}/api/v1/nodes/n", json={field: value})
    assert updated.status_code == 422, updated.text
    assert updated.json()["detail"][0]["loc"] == ["body", field]
    assert httpx.get(f"{base}/api/v1/nodes/n").json()[field] != value


def test_usable_addresses_and_health_urls_are_taken(base: str) -> None:
    for address in ("localhost", "10.0.0.5", "::1", "[::1]", "node_1.example.com"):
        body = node_body("addr", 9, address=address, health_url="https://[::1]:9/health?x=1")
        assert httpx.post(f"{base}/api/v1/nodes", json=body).status_code in (200, 201), address
    assert httpx.delete(f"{base}/api/v1/nodes/addr").status_code == 200
