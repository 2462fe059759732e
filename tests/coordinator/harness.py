"""Helpers for coordinator tests: settings, a stand-in agent, and a raw SSE reader."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from lightd_coordinator.config import Settings
from lightd_coordinator.main import create_app
from tests.harness.registration import node_body as node_body
from tests.harness.servers import serve

SECRET = "test-jwt-secret-0123456789abcdef"
STATIC = "test-static-token-0123456789"


REDIS_ENV = "LIGHTD_TEST_REDIS_URL"
"""Set (to a Redis URL) to run the tests that use the default registry on ``redis`` instead of
``memory``, each settings object with its own key prefix (an empty fleet)."""


def _default_registry() -> dict[str, Any]:
    url = os.environ.get(REDIS_ENV)
    if not url:
        return {}
    return {"provider": "redis", "redis_url": url, "redis_prefix": f"t{uuid.uuid4().hex}:"}


def make_settings(**sections: dict[str, Any]) -> Settings:
    """Settings with fast timers for tests, plus any section overrides."""
    base: dict[str, dict[str, Any]] = {
        "server": {"auth_token": STATIC},
        "registry": {
            "health_check_interval": "100ms",
            "node_timeout": "5s",
            "max_retries": 3,
            **_default_registry(),
        },
        "websocket": {"ping_period": "5s"},
        "auth": {"jwt_secret": SECRET},
        "logging": {"format": "text"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings(**base)


@contextmanager
def coordinator(settings: Settings | None = None, **kwargs: Any) -> Iterator[tuple[str, FastAPI]]:
    """A real coordinator on a free loopback port: yields (base URL, app)."""
    app = create_app(settings or make_settings(), **kwargs)
    with serve(app) as url:
        yield url, app


# -- a stand-in agent ------------------------------------------------------------------------
@dataclass
class AgentBehaviour:
    delay: float = 0.0
    status_code: int = 200
    output: str = "hello world"
    result_status: str = "success"
    accept_only: bool = False  # answer 202 and let the test report later


@dataclass
class FakeAgent:
    """Plays an agent's ``POST /commands``: records every request and answers as told."""

    behaviour: AgentBehaviour = field(default_factory=AgentBehaviour)
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/commands")
        async def commands(request: Request) -> JSONResponse:
            body = await request.json()
            with self.lock:
                self.received.append(body)
                self.headers.append(dict(request.headers))
            behaviour = self.behaviour
            if behaviour.delay:
                import asyncio

                # a slow node IS what such a test is about (a timeout, an async answer)
                await asyncio.sleep(behaviour.delay)
            if behaviour.accept_only:
                return JSONResponse(
                    {"id": body["id"], "node_id": body["node_id"], "status": "running"},
                    status_code=202,
                )
            if behaviour.status_code != 200:
                return JSONResponse({"detail": "refused"}, status_code=behaviour.status_code)
            return JSONResponse(
                {
                    "id": body["id"],
                    "node_id": body["node_id"],
                    "status": behaviour.result_status,
                    "output": behaviour.output,
                    "duration": "5ms",
                    "finished": "2026-01-13T18:17:00Z",
                }
            )

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "healthy"}

        return app

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.received)


@contextmanager
def agent(
    behaviour: AgentBehaviour | None = None, *, port: int | None = None
) -> Iterator[tuple[FakeAgent, int]]:
    fake = FakeAgent(behaviour or AgentBehaviour())
    with serve(fake.app(), port=port) as url:
        yield fake, int(url.rsplit(":", 1)[1])


# -- a raw SSE reader (what a browser's EventSource does) ------------------------------------
@dataclass
class SseMessage:
    id: str | None = None
    event: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    """Parses ``text/event-stream`` line by line, as the WHATWG EventSource algorithm does."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.iter_lines()
        self.comments: list[str] = []
        self.last_id: str | None = None

    def next_message(self, timeout: float = 5.0) -> SseMessage:
        """The next message with data (comments are collected in ``comments``)."""
        deadline = time.monotonic() + timeout
        message = SseMessage()
        has_data = False
        while time.monotonic() < deadline:
            line = next(self.lines)
            if line == "":
                if has_data:
                    if message.id is not None:
                        self.last_id = message.id
                    return message
                message = SseMessage()
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                message.data = f"{message.data}\n{value}" if has_data else value
                has_data = True
            elif name == "id":
                message.id = value
            elif name == "event":
                message.event = value
            elif name == "retry" and value.isdigit():
                message.retry = int(value)
        raise TimeoutError("no SSE message in time")

    def until(self, type_: str, timeout: float = 5.0) -> SseMessage:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {type_} event in time")
            message = self.next_message(remaining)
            if message.json()["type"] == type_:
                return message


@contextmanager
def sse(
    base: str, path: str = "/ws", *, headers: dict[str, str] | None = None, read: float = 5.0
) -> Iterator[SseReader]:
    with (
        httpx.Client(base_url=base, timeout=httpx.Timeout(10, read=read)) as client,
        client.stream("GET", path, headers=headers or {}) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield SseReader(response)
