"""Registration's fast path answers as the route does, and hands everything unusual to it.

Two real coordinators on loopback: one as ``create_app`` builds it, one the same app without
:class:`RegistrationFastPath` (the route answers everything). The same requests go to both;
the answers (status, body bytes, the headers that matter) and the activity log entries must
be the same, and the fast one's counter says which requests it answered itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from lightd_agent.security import new_dispatch_key, node_proof
from lightd_coordinator.api.fastpath import HeartbeatFastPath
from lightd_coordinator.api.registration_fastpath import RegistrationFastPath
from lightd_coordinator.config import Settings
from lightd_coordinator.main import create_app
from lightd_shared.dispatch import NODE_PROOF_HEADER
from tests.coordinator.harness import STATIC, make_settings, node_body
from tests.harness.asgi import layer as stack_layer
from tests.harness.servers import serve

AGENT_TOKEN = "lightd_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}"}
OPERATOR = {"Authorization": f"Bearer {STATIC}"}
KEY = new_dispatch_key()
_TIMES = re.compile(rb'"(created_at|last_seen)":"[^"]*"')
_HEADERS = ("content-type", "content-length", "x-request-id", "www-authenticate", "retry-after")


def _settings(**sections: dict[str, Any]) -> Settings:
    return make_settings(auth={"enabled": True, "agent_token": AGENT_TOKEN}, **sections)


def _fast_path(app: FastAPI) -> RegistrationFastPath:
    return stack_layer(app, RegistrationFastPath)


@contextmanager
def _pair(
    settings: Callable[[], Settings], without: type = RegistrationFastPath
) -> Iterator[tuple[httpx.Client, httpx.Client, FastAPI]]:
    """Clients on the app with the fast path and on the same app ``without`` it (each with
    its own registry: on redis, settings made apart have key prefixes apart)."""
    fast = create_app(settings())
    route = create_app(settings())
    route.user_middleware = [m for m in route.user_middleware if m.cls is not without]
    with ExitStack() as stack:
        fast_url = stack.enter_context(serve(fast))
        route_url = stack.enter_context(serve(route))
        yield (
            stack.enter_context(httpx.Client(base_url=fast_url)),
            stack.enter_context(httpx.Client(base_url=route_url)),
            fast,
        )


def _same(fast: httpx.Response, route: httpx.Response) -> None:
    assert fast.status_code == route.status_code, (fast.text, route.text)
    # the two registries stamped their own times: everything else is byte for byte
    assert _TIMES.sub(b"T", fast.content) == _TIMES.sub(b"T", route.content)
    for name in _HEADERS:
        assert fast.headers.get(name) == route.headers.get(name), name


def _entries(client: httpx.Client) -> list[dict[str, Any]]:
    """The activity log, without what differs by nature (the time, a fresh request id)."""
    answer = client.get("/api/v1/activity", headers=OPERATOR, params={"limit": 1000})
    assert answer.status_code == 200
    entries = [{k: v for k, v in e.items() if k != "time"} for e in answer.json()["entries"]]
    for entry in entries:
        if re.fullmatch(r"[0-9a-f]{16}", entry.get("request_id", "")):
            entry["request_id"] = "fresh"
    return entries


def _proof(node_id: str) -> dict[str, str]:
    return {**AGENT, NODE_PROOF_HEADER: node_proof(KEY, node_id, expires_in=60)}


def test_the_fast_path_answers_as_the_route_does() -> None:
    with _pair(_settings) as (fast, route, app):
        ordinary: list[tuple[str, dict[str, str], dict[str, Any]]] = [
            ("operator, new", OPERATOR, node_body("op-1", 9, labels={"rack": "a"})),
            ("operator, again", OPERATOR, node_body("op-1", 10)),
            ("agent enrols", _proof("ag-1"), node_body("ag-1", 9, dispatch_key=KEY)),
            ("agent again, with its proof", _proof("ag-1"), node_body("ag-1", 11)),
            ("agent, no key", AGENT, node_body("ag-2", 9, name="")),
            ("unknown fields ignored", OPERATOR, {**node_body("op-2", 9), "later": 1}),
        ]
        for number, (what, headers, body) in enumerate(ordinary):
            sent = {**headers, "X-Request-ID": f"req-{number}"}
            before = _fast_path(app).answered
            answers = [c.post("/api/v1/nodes", json=body, headers=sent) for c in (fast, route)]
            _same(*answers)
            assert answers[0].status_code in (200, 201), what
            assert _fast_path(app).answered == before + 1, what
        # a caller's unfit request id is replaced by a fresh one on both
        answers = [
            c.post("/api/v1/nodes", json=node_body("op-3", 9), headers=OPERATOR)
            for c in (fast, route)
        ]
        assert answers[0].status_code == answers[1].status_code == 201
        assert re.fullmatch(r"[0-9a-f]{16}", answers[0].headers["x-request-id"])

        answered = _fast_path(app).answered
        json_type = {"Content-Type": "application/json"}
        handed: list[tuple[str, dict[str, str], bytes]] = [
            ("no token", json_type, b'{"id": "x", "address": "127.0.0.1", "port": 9}'),
            ("a wrong token", {**json_type, "Authorization": "Bearer wrong"}, b"{}"),
            ("not bearer", {**json_type, "Authorization": f"Basic {STATIC}"}, b"{}"),
            ("empty body", {**OPERATOR, **json_type}, b""),
            ("not JSON", {**OPERATOR, **json_type}, b"{not json"),
            ("whitespace", {**OPERATOR, **json_type}, b"  "),
            ("no content type", OPERATOR, b'{"id": "nc", "address": "127.0.0.1", "port": 9}'),
            (
                "text/json",
                {**OPERATOR, "Content-Type": "text/json"},
                b'{"id": "tj", "address": "127.0.0.1", "port": 9}',
            ),
            (
                "a port as text",
                {**OPERATOR, **json_type},
                b'{"id": "s", "address": "h", "port": "9"}',
            ),
            (
                "an address with a scheme",
                {**OPERATOR, **json_type},
                b'{"id": "u", "address": "http://h", "port": 9}',
            ),
            (
                "a lone surrogate",
                {**OPERATOR, **json_type},
                b'{"id": "ls", "address": "h", "port": 9, "name": "\\ud800"}',
            ),
            (
                "no proof for an enrolled node",
                {**AGENT, **json_type},
                b'{"id": "ag-1", "address": "127.0.0.1", "port": 9}',
            ),
            (
                "an operator's node",
                {**AGENT, **json_type},
                b'{"id": "op-1", "address": "127.0.0.1", "port": 9}',
            ),
            (
                "another node's proof",
                {**_proof("ag-2"), **json_type},
                b'{"id": "ag-1", "address": "127.0.0.1", "port": 9}',
            ),
        ]
        for number, (what, headers, content) in enumerate(handed):
            sent = {**headers, "X-Request-ID": f"handed-{number}"}
            answers = [
                c.post("/api/v1/nodes", content=content, headers=sent) for c in (fast, route)
            ]
            _same(*answers)
            assert answers[0].status_code >= 400, what
        assert _fast_path(app).answered == answered
        # the registry and the activity log hold the same on both
        entries = _entries(fast)
        assert entries == _entries(route)
        assert (
            sum(e["action"] == "node.register" for e in entries)
            == len(ordinary) + 1 + len(handed) - 3
        )  # no caller: no entry
        nodes = [c.get("/api/v1/nodes", headers=OPERATOR).json() for c in (fast, route)]
        for listing in nodes:
            for node in listing["nodes"]:
                node["created_at"] = node["last_seen"] = "T"
        assert nodes[0] == nodes[1]


def test_without_the_activity_log_there_is_no_request_id() -> None:
    with _pair(lambda: _settings(activity={"enabled": False})) as (fast, route, app):
        answers = [
            c.post("/api/v1/nodes", json=node_body("n1", 9), headers=OPERATOR)
            for c in (fast, route)
        ]
        _same(*answers)
        assert "x-request-id" not in answers[0].headers
        assert _fast_path(app).answered == 1


@pytest.mark.parametrize("activity", [True, False])
def test_a_heartbeat_answers_with_the_routes_headers(activity: bool) -> None:
    """The heartbeat's fast path (``api/fastpath.py``) answers as its route does, headers too:
    the ``X-Request-ID`` the activity log's middleware gives every call it may record."""
    with _pair(lambda: _settings(activity={"enabled": activity}), without=HeartbeatFastPath) as (
        fast,
        route,
        app,
    ):
        for client in (fast, route):
            assert client.post("/api/v1/nodes", json=node_body("n1", 9), headers=OPERATOR)
        fast_path: HeartbeatFastPath = stack_layer(app, HeartbeatFastPath)
        path = "/api/v1/nodes/n1/heartbeat"
        for sent in ({**OPERATOR, "X-Request-ID": "beat-1"}, OPERATOR):
            before = fast_path.answered
            answers = [c.post(path, headers=sent) for c in (fast, route)]
            assert fast_path.answered == before + 1
            assert [a.status_code for a in answers] == [200, 200]
            for name in ("content-type", "www-authenticate", "retry-after"):
                assert answers[0].headers.get(name) == answers[1].headers.get(name), name
            ids = [a.headers.get("x-request-id") for a in answers]
            if not activity:
                assert ids == [None, None]
            elif "X-Request-ID" in sent:
                assert ids == ["beat-1", "beat-1"]
            else:  # a fresh id each
                assert all(i is not None and re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


def test_auth_off_registers_as_anonymous() -> None:
    with _pair(make_settings) as (fast, route, app):
        for node in ("n1", "n1"):
            sent = {"X-Request-ID": "anonymous-1"}
            answers = [
                c.post("/api/v1/nodes", json=node_body(node, 9), headers=sent)
                for c in (fast, route)
            ]
            _same(*answers)
        assert [a.status_code for a in answers] == [200, 200]  # the second time
        assert _fast_path(app).answered == 2
        assert _entries(fast)[0]["subject"] == "anonymous"


# -- the token before the body ---------------------------------------------------------------
async def _never() -> Message:
    raise AssertionError("the body was read")


class _Sent:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)


class _Refuses:
    """The app behind the middleware for these tests: answers 401 without reading a body."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})


def _scope(path: str, authorization: bytes | None) -> Scope:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"100")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/api/v1/nodes", "/api/v1/nodes/n1/heartbeat"])
@pytest.mark.parametrize("authorization", [None, b"Bearer wrong", b"Basic abc", b"Bearer "])
async def test_a_bad_token_is_handed_on_before_the_body_is_read(
    path: str, authorization: bytes | None
) -> None:
    app = create_app(_settings())
    coordinator = app.state.coordinator
    behind = _Refuses()
    for layer in (
        RegistrationFastPath(behind, coordinator=coordinator),
        HeartbeatFastPath(behind, coordinator=coordinator),
    ):
        sent = _Sent()
        await layer(_scope(path, authorization), _never, sent)
        assert sent.messages[0]["status"] == 401
    assert behind.calls == 2


@pytest.mark.anyio
async def test_the_whole_app_refuses_a_bad_token_without_the_body() -> None:
    app = create_app(_settings())
    for path in ("/api/v1/nodes", "/api/v1/nodes/n1/heartbeat"):
        sent = _Sent()
        await app(_scope(path, b"Bearer wrong"), _never, sent)
        assert sent.messages[0]["status"] == 401
