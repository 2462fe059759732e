"""Dispatch's fast path answers as the route does, and hands everything unusual to it.

Two real coordinators on loopback, each with its own stand-in agent (a real HTTP server): one
coordinator as ``create_app`` builds it, one the same app without :class:`DispatchFastPath`
(the route answers everything). The same requests go to both; the answers (status, body bytes,
the headers that matter), what the agents received, the stored results, the activity log and
the ``command_result`` events must be the same but for what differs by nature (a command's
fresh id, the time), and the fast one's counter says which requests it answered itself.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Message, Receive, Scope, Send

from lightd_coordinator.api.dispatch_fastpath import DispatchFastPath
from lightd_coordinator.config import Settings
from lightd_coordinator.main import create_app
from lightd_shared.commands import COMMAND
from tests.coordinator.harness import STATIC, FakeAgent, agent, make_settings, node_body, sse
from tests.harness.asgi import layer as stack_layer
from tests.harness.redis import RedisServer, redis_server
from tests.harness.servers import free_port, serve
from tests.harness.wait import wait_until

AGENT_TOKEN = "lightd_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
AGENT = {"Authorization": f"Bearer {AGENT_TOKEN}"}
OPERATOR = {"Authorization": f"Bearer {STATIC}"}
KEY = "node-dispatch-key-0123456789abcdef0123456789"
EXEC = {"type": "exec", "action": "echo 'hello world'", "params": {"timeout": "5s"}}
STATUS = {"type": "container", "action": "status", "params": {"server": "c0"}}
_ID = re.compile(r"cmd_[0-9]{16}[0-9a-f]{6}_")
_ID_BYTES = re.compile(_ID.pattern.encode())
_TIMES = re.compile(rb'"(duration|finished)":"(?!5ms"|2026-01-13T18:17:00Z")[^"]*"')
_FRESH = re.compile(r"[0-9a-f]{16}")
"""A request id the coordinator made (the caller's was missing or unfit)."""
_HEADERS = ("content-type", "content-length", "x-request-id", "www-authenticate", "retry-after")


def _settings(**sections: dict[str, Any]) -> Settings:
    return make_settings(auth={"enabled": True, "agent_token": AGENT_TOKEN}, **sections)


def _fast_path(app: FastAPI) -> DispatchFastPath:
    return stack_layer(app, DispatchFastPath)


@dataclass
class Side:
    """One coordinator (with or without the fast path) and the stand-in agent it sends to."""

    client: httpx.Client
    base: str
    agent: FakeAgent
    port: int

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, timeout=30, **kwargs)


@contextmanager
def _pair(settings: Callable[[], Settings]) -> Iterator[tuple[Side, Side, FastAPI]]:
    """Both sides: the app with the fast path and the same app without it, each with its own
    registry and agent (on redis, settings made apart have key prefixes apart)."""
    fast = create_app(settings())
    route = create_app(settings())
    left_out: Any = DispatchFastPath
    route.user_middleware = [m for m in route.user_middleware if m.cls is not left_out]
    with ExitStack() as stack:
        sides = []
        for app in (fast, route):
            fake, port = stack.enter_context(agent())
            base = stack.enter_context(serve(app))
            client = stack.enter_context(httpx.Client(base_url=base, headers=OPERATOR))
            sides.append(Side(client, base, fake, port))
        yield sides[0], sides[1], fast


def _register(
    sides: tuple[Side, Side], node_id: str, port: int | None = None, **extra: Any
) -> None:
    """Register ``node_id`` on both sides, each at its own agent (or both at ``port``)."""
    for side in sides:
        body = node_body(node_id, port or side.port, dispatch_key=KEY, **extra)
        answer = side.post("/api/v1/nodes", json=body)
        assert answer.status_code in (200, 201), answer.text


def _plain(content: bytes) -> bytes:
    """What differs by nature made the same on both sides: a command's fresh id, and the time
    a failure the coordinator measured itself took and ended (the agent reports its own)."""
    return _TIMES.sub(rb'"\1":"T"', _ID_BYTES.sub(b"cmd_ID_", content))


def _same(fast: httpx.Response, route: httpx.Response) -> None:
    assert fast.status_code == route.status_code, (fast.text, route.text)
    assert _plain(fast.content) == _plain(route.content)
    for name in _HEADERS:
        if name == "x-request-id" and _FRESH.fullmatch(route.headers.get(name, "")):
            assert _FRESH.fullmatch(fast.headers[name]), name  # a fresh one on both
        elif name == "content-length":  # a measured duration's text may differ in length
            for answer in (fast, route):
                assert answer.headers[name] == str(len(answer.content)), name
        else:
            assert fast.headers.get(name) == route.headers.get(name), name


def _both(sides: tuple[Side, Side], path: str, **kwargs: Any) -> list[httpx.Response]:
    answers = [side.post(path, **kwargs) for side in sides]
    _same(*answers)
    return answers


def _entries(side: Side) -> list[dict[str, Any]]:
    """The activity log, without what differs by nature (the time, the entry and command ids,
    a fresh request id), in an order of its own: a command's entry is stored once its caller
    has the answer, so it may come before or after the request's."""
    answer = side.client.get("/api/v1/activity", params={"limit": 1000})
    assert answer.status_code == 200
    entries = [
        {k: v for k, v in e.items() if k not in ("time", "id")} for e in answer.json()["entries"]
    ]
    for entry in entries:
        if entry.get("command_id"):
            entry["command_id"] = _ID.sub("cmd_ID_", entry["command_id"])
        if _FRESH.fullmatch(entry.get("request_id", "")):
            entry["request_id"] = "fresh"
    return sorted(entries, key=repr)


def _results(side: Side, answers: list[httpx.Response]) -> list[bytes]:
    """What the coordinator stored for each command it answered."""
    stored = []
    for answer in answers:
        found = side.client.get(f"/api/v1/commands/{answer.json()['id']}")
        assert found.status_code == 200
        stored.append(_plain(found.content))
    return stored


def _events(side: Side, node_id: str) -> list[Any]:
    """Every ``command_result`` event so far: replayed from the start up to a marker."""
    update = {"event": "update", "server": "marker", "status": "ready"}
    marker = {"type": "server_update", "data": {"server": "marker", "update": update}}
    assert side.post(f"/api/v1/nodes/{node_id}/events", json=marker).status_code == 202
    seen = []
    headers = {**OPERATOR, "Last-Event-ID": "0"}
    with sse(side.base, "/ws?types=command_result,server_update", headers=headers) as stream:
        while (message := stream.next_message()).json()["type"] != "server_update":
            seen.append(json.loads(_plain(message.data.encode()))["data"])
    return sorted(seen, key=repr)  # an async command's may come later on one side


def _ended(side: Side, command_id: str) -> Callable[[], bool]:
    def ended() -> bool:
        found = side.client.get(f"/api/v1/commands/{command_id}")
        return bool(found.json()["status"] != "pending")

    return ended


def _received(side: Side) -> list[dict[str, Any]]:
    received = [json.loads(_ID.sub("cmd_ID_", json.dumps(b))) for b in side.agent.received]
    return sorted(received, key=repr)


def test_the_fast_path_answers_as_the_route_does() -> None:
    with _pair(_settings) as (fast, route, app):
        sides = (fast, route)
        _register(sides, "n1")
        json_type = {"Content-Type": "application/json"}
        ordinary: list[tuple[str, dict[str, str], bytes]] = [
            ("exec", json_type, json.dumps(EXEC).encode()),
            ("exec for a user", json_type, json.dumps({**EXEC, "user": "developer"}).encode()),
            ("container status", json_type, json.dumps(STATUS).encode()),
            ("no params", json_type, b'{"type": "exec", "action": "uptime"}'),
            (
                "a charset",
                {"Content-Type": "application/json; charset=utf-8"},
                json.dumps(STATUS).encode(),
            ),
            (
                "a +json type",
                {"Content-Type": "application/vnd.a+json"},
                json.dumps(
                    {"type": "exec", "action": "caf\u00e9 \u2603"}, ensure_ascii=False
                ).encode(),
            ),
            ("a duplicate key", json_type, b'{"type": "exec", "action": "a", "action": "b"}'),
        ]
        pairs: list[list[httpx.Response]] = []
        for number, (what, headers, content) in enumerate(ordinary):
            sent = {**headers, "X-Request-ID": f"req-{number}"}
            before = _fast_path(app).answered
            answers = _both(sides, "/api/v1/nodes/n1/commands", content=content, headers=sent)
            assert answers[0].status_code == 200, what
            assert answers[0].json()["status"] == "success", what
            assert _fast_path(app).answered == before + 1, what
            pairs.append(answers)
        # a command that ends failed is an ordinary answer too (200, the failure in the body)
        _register(sides, "down", free_port())  # nothing listens there
        answers = _both(
            sides, "/api/v1/nodes/down/commands", json=EXEC, headers={"X-Request-ID": "down"}
        )
        assert answers[0].json()["status"] == "failed"
        pairs.append(answers)
        # a caller's unfit request id is replaced by a fresh one on both
        answers = _both(sides, "/api/v1/nodes/n1/commands", json=EXEC)
        assert _FRESH.fullmatch(answers[0].headers["x-request-id"])
        pairs.append(answers)
        assert _fast_path(app).answered == len(pairs)
        # stored, sent, recorded and announced alike
        assert _results(fast, [a for a, _ in pairs]) == _results(route, [b for _, b in pairs])
        assert _received(fast) == _received(route)
        assert len(fast.agent.received) == len(pairs) - 1  # all but the one to "down"
        entries = _entries(fast)
        assert entries == _entries(route)
        assert sum(e["action"] == "command.dispatch" for e in entries) == len(pairs)
        assert sum(e["kind"] == "command" for e in entries) == len(pairs)
        assert {e["outcome"] for e in entries if e["kind"] == "command"} == {"success", "failed"}
        assert _events(fast, "n1") == _events(route, "n1")


def test_everything_unusual_is_handed_to_the_route() -> None:
    with _pair(_settings) as (fast, route, app):
        sides = (fast, route)
        _register(sides, "n1")
        _register(sides, "off", status="inactive")
        json_type = {"Content-Type": "application/json"}
        command = json.dumps(EXEC).encode()
        path = "/api/v1/nodes/n1/commands"
        handed: list[tuple[str, str, dict[str, str], bytes]] = [
            ("no token", path, {**json_type, "Authorization": ""}, command),
            ("a wrong token", path, {**json_type, "Authorization": "Bearer wrong"}, command),
            ("not bearer", path, {**json_type, "Authorization": f"Basic {STATIC}"}, command),
            ("the agent token", path, {**json_type, **AGENT}, command),
            ("empty body", path, json_type, b""),
            ("not JSON", path, json_type, b"{not json"),
            ("whitespace", path, json_type, b"  "),
            ("null", path, json_type, b"null"),
            ("not UTF-8", path, json_type, b'{"type": "exec", "action": "\xff"}'),
            ("no content type", path, {}, command),
            ("text/json", path, {"Content-Type": "text/json"}, command),
            ("no action", path, json_type, b'{"type": "exec"}'),
            ("an unknown type", path, json_type, b'{"type": "shell", "action": "ls"}'),
            ("an unknown field", path, json_type, b'{"type": "exec", "action": "a", "x": 1}'),
            (
                "a bad timeout",
                path,
                json_type,
                b'{"type": "exec", "action": "a", "params": {"timeout": "soon"}}',
            ),
            ("a missing server", path, json_type, b'{"type": "container", "action": "stop"}'),
            ("a lone surrogate", path, json_type, b'{"type": "exec", "action": "\\ud800"}'),
            ("too deep", path, json_type, b"[" * 5000 + b"]" * 5000),
            ("an empty key", path, {**json_type, "Idempotency-Key": ""}, command),
            ("an oversized key", path, {**json_type, "Idempotency-Key": "k" * 256}, command),
            ("?async", f"{path}?async=true", json_type, command),
            ("?async=maybe", f"{path}?async=maybe", json_type, command),
            ("an unknown query", f"{path}?later=1", json_type, command),
            ("an unknown node", "/api/v1/nodes/ghost/commands", json_type, command),
            ("an inactive node", "/api/v1/nodes/off/commands", json_type, command),
            ("an id the fast path leaves", "/api/v1/nodes/_x/commands", json_type, command),
            # longer than a result can echo: refused as bad input (422), never sent
            (
                "a user over 255 characters",
                path,
                json_type,
                json.dumps({**EXEC, "user": "u" * 256}).encode(),
            ),
            (
                "an action over 65,536 characters",
                path,
                json_type,
                json.dumps({**EXEC, "action": "a" * 65537}).encode(),
            ),
        ]
        later: list[list[httpx.Response]] = []
        for number, (what, where, headers, content) in enumerate(handed):
            sent = {**headers, "X-Request-ID": f"handed-{number}"}
            answers = _both(sides, where, content=content, headers=sent)
            if answers[0].status_code == 202:
                later.append(answers)
            assert answers[0].status_code != 200 or what in (
                "an unknown query",
                "an inactive node",
            ), what
            if what.startswith(("a user over", "an action over")):
                assert answers[0].status_code == 422, (what, answers[0].text)
        # an Idempotency-Key: the route's, first use, repeat and reuse alike
        for number, body in enumerate((EXEC, EXEC, {**EXEC, "action": "echo other"})):
            sent = {**json_type, "Idempotency-Key": "deploy-1", "X-Request-ID": f"key-{number}"}
            _both(sides, path, content=json.dumps(body).encode(), headers=sent)
        assert _fast_path(app).answered == 0
        assert len(later) == 1  # ?async=true: wait for its end on both sides, then compare
        for side, answer in zip(sides, later[0], strict=True):
            wait_until(_ended(side, answer.json()["id"]), 10, what="the async command's result")
        assert _results(fast, later[0][:1]) == _results(route, later[0][1:])
        assert _received(fast) == _received(route)
        assert _entries(fast) == _entries(route)
        assert _events(fast, "n1") == _events(route, "n1")


def test_without_the_activity_log_there_is_no_request_id() -> None:
    with _pair(lambda: _settings(activity={"enabled": False})) as (fast, route, app):
        _register((fast, route), "n1")
        answers = _both((fast, route), "/api/v1/nodes/n1/commands", json=STATUS)
        assert answers[0].status_code == 200
        assert "x-request-id" not in answers[0].headers
        assert _fast_path(app).answered == 1


def test_auth_off_dispatches_as_anonymous() -> None:
    with _pair(make_settings) as (fast, route, app):
        _register((fast, route), "n1")
        sent = {"X-Request-ID": "anonymous-1", "Authorization": ""}
        answers = _both((fast, route), "/api/v1/nodes/n1/commands", json=EXEC, headers=sent)
        assert answers[0].status_code == 200
        assert _fast_path(app).answered == 1
        entries = _entries(fast)
        assert entries == _entries(route)
        assert {e["subject"] for e in entries if e["request_id"] == "anonymous-1"} == {"anonymous"}


# -- the token before the body ---------------------------------------------------------------
async def _never() -> Message:
    raise AssertionError("the body was read")


class _Refuses:
    """The app behind the middleware for these tests: answers 401 without reading a body."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls += 1
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("authorization", [None, b"Bearer wrong", b"Basic abc", b"Bearer "])
async def test_a_refused_caller_is_handed_on_before_the_body_is_read(
    authorization: bytes | None,
) -> None:
    app = create_app(_settings())
    behind = _Refuses()
    layer = DispatchFastPath(behind, coordinator=app.state.coordinator)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"100")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/nodes/n1/commands",
        "raw_path": b"/api/v1/nodes/n1/commands",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "scheme": "http",
        "http_version": "1.1",
        "root_path": "",
    }
    sent: list[Message] = []

    async def collect(message: Message) -> None:
        sent.append(message)

    await layer(scope, _never, collect)
    assert sent[0]["status"] == 401
    assert behind.calls == 1


# -- a registry lost once the command was sent -------------------------------------------------
def _stopping_agent(redis: RedisServer, received: list[str]) -> FastAPI:
    """A node that takes the registry down with it: it stops Redis, then refuses the command,
    so the coordinator meets the outage storing the failure, after the command was sent."""
    app = FastAPI()

    @app.post("/commands")
    async def commands(request: Request) -> JSONResponse:
        received.append((await request.json())["id"])
        redis.stop()
        return JSONResponse({"detail": "refused"}, status_code=503)

    return app


def test_a_registry_lost_after_sending_is_answered_as_the_app_does(tmp_path: Path) -> None:
    """The command is on its way: the fast path answers the app's 503 itself (handing the
    request on would send the command twice), as the route's exception handler does."""
    received: list[str] = []
    with (
        redis_server(tmp_path / "redis") as redis,
        serve(_stopping_agent(redis, received)) as node,
    ):
        body = node_body("n1", int(node.rsplit(":", 1)[1]), dispatch_key=KEY)

        def on_redis() -> Settings:
            prefix = f"t{uuid.uuid4().hex}:"
            registry = {"provider": "redis", "redis_url": redis.url, "redis_prefix": prefix}
            return _settings(registry=registry)

        fast_app = create_app(on_redis())
        route_app = create_app(on_redis())
        left_out: Any = DispatchFastPath
        route_app.user_middleware = [m for m in route_app.user_middleware if m.cls is not left_out]
        answers = []
        # one app after the other, each started while Redis is up: an app that lived through
        # the outage keeps dead pooled connections, and each fails one later call (503) until
        # it is used once, so a registration that succeeded would not mean the next call does
        for app in (fast_app, route_app):
            if redis.process is None:
                redis.start()
            with (
                serve(app) as base,
                httpx.Client(base_url=base, headers=OPERATOR, timeout=30) as client,
            ):
                wait_until(
                    lambda: client.post("/api/v1/nodes", json=body).status_code in (200, 201),
                    10,
                    what="the node registered",
                )
                sent = {"X-Request-ID": "outage"}
                answers.append(client.post("/api/v1/nodes/n1/commands", json=EXEC, headers=sent))
        _same(*answers)
        assert answers[0].status_code == 503, answers[0].text
        assert answers[0].headers["retry-after"] == "1"
        assert _fast_path(fast_app).answered == 1
        assert len(received) == 2  # once through each: never sent again


# -- the result is stored and published after the answer is sent -------------------------------
class _AtTheAnswer:
    """An ASGI layer outside the app: when the app sends a command's answer body, it reads what
    the coordinator has stored and published for that command at that moment."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.seen: list[tuple[str | None, int]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/commands"):
            await self.app(scope, receive, send)
            return
        coordinator = self.app.state.coordinator

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                command_id = json.loads(message["body"])["id"]
                stored = await coordinator.registry.get_result(command_id)
                events = await coordinator.registry.events_after(0, 1000)
                published = sum(e.type == "command_result" and command_id in e.body for e in events)
                self.seen.append((None if stored is None else stored.status, published))
            await send(message)

        await self.app(scope, receive, observed)


def test_the_final_result_is_stored_and_published_after_the_answer_is_sent() -> None:
    """Issue 17: the node's answer goes back to the caller before its result is stored and
    published, even with the memory registry (whose writes never suspend, so a task started
    for them would otherwise run before the answer); a reader through the coordinator still
    finds the final result at once."""
    app = create_app(_settings())
    observer = _AtTheAnswer(app)
    with (
        agent() as (_, port),
        serve(observer) as base,
        httpx.Client(base_url=base, headers=OPERATOR, timeout=30) as client,
    ):
        registered = client.post("/api/v1/nodes", json=node_body("n1", port, dispatch_key=KEY))
        assert registered.status_code in (200, 201), registered.text
        observer.seen.clear()
        answer = client.post("/api/v1/nodes/n1/commands", json=EXEC)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "success"
        assert _fast_path(app).answered == 1
        # at the answer's body: still the pending record, and no command_result yet
        assert observer.seen == [("pending", 0)]
        # right after: the final result, stored and announced once
        found = client.get(f"/api/v1/commands/{answer.json()['id']}")
        assert found.json()["status"] == "success"
        announced = _events(Side(client, base, FakeAgent(), port), "n1")
        assert [event["status"] for event in announced] == ["success"]


@pytest.mark.anyio
async def test_a_held_result_is_stored_once_answered_or_at_close() -> None:
    """``submit(answered=...)`` holds the final result until the caller says its answer is
    sent. Nothing waits on a caller that never says so (its client may read slowly, or not
    at all): :meth:`Dispatcher.get` releases the result and returns it, and ``close()``
    stores it too."""
    app = create_app(_settings())
    coordinator = app.state.coordinator
    dispatcher = coordinator.dispatcher
    with agent() as (_, port):
        await coordinator.start()
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://coordinator", headers=OPERATOR
            ) as client:
                body = node_body("n1", port, dispatch_key=KEY)
                assert (await client.post("/api/v1/nodes", json=body)).status_code in (200, 201)
            found = await coordinator.fleet.get_for_dispatch("n1")
            assert found is not None
            node, key = found
            command = COMMAND.validate_python(EXEC)
            results = []
            for _ in range(3):
                answered = asyncio.Event()
                result, new = await dispatcher.submit(
                    node, command, dispatch_key=key, answered=answered
                )
                assert new and result.status == "success"
                stored = await coordinator.registry.get_result(result.id)
                assert stored is not None and stored.status == "pending"  # held
                results.append((result, answered))
            (first, first_answered), (second, second_answered), (third, _) = results
            # a reader of the first: it does not wait for its caller's answer to be sent
            got = await asyncio.wait_for(dispatcher.get(first.id), 10)
            assert got is not None and got.status == "success"
            assert first_answered.is_set() and not second_answered.is_set()
            # the activity log's reader (settled) releases the others and waits for them
            await asyncio.wait_for(dispatcher.settled(), 10)
            stored = await coordinator.registry.get_result(second.id)
            assert stored is not None and stored.status == "success"
            # one more whose caller never says it answered: close() stores its result anyway
            result, _ = await dispatcher.submit(
                node, command, dispatch_key=key, answered=asyncio.Event()
            )
            await asyncio.wait_for(dispatcher.close(), 10)
            for ended in (third, result):
                stored = await coordinator.registry.get_result(ended.id)
                assert stored is not None and stored.status == "success"
        finally:
            await coordinator.stop()
