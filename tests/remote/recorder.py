"""A real remote management server for tests: records every request, answers as told.

It speaks seed 000 (``/health``, ``/update``, ``/config``) under a path prefix (``/api``), so the
agent's "paths are appended to url as given" is exercised too. Tests switch its behaviour while
it runs: answer a status (with ``Retry-After``), answer slowly, or stop it altogether
(:meth:`RemoteServer.stop` / :meth:`RemoteServer.start` keep the same port).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.harness.servers import free_port, serve

PREFIX = "/api"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    raw: bytes = b""
    """The request body exactly as it arrived."""
    header_names: tuple[str, ...] = ()
    """The request's header names, lowercase, in the order they arrived."""


@dataclass
class Behaviour:
    """What the remote answers; change fields at any time from the test."""

    status: int | None = None  # answer this to /update (and /health when fail_health)
    retry_after: str | None = None
    fail_health: bool = False
    delay: float = 0.0
    hang_servers: set[str] = field(default_factory=set)
    """``/update`` of these servers is recorded and never answered (until the remote stops)."""
    config: dict[str, Any] = field(
        default_factory=lambda: {
            "containers": [{"id": "from-remote", "image": "lightd-test-busybox:latest"}],
            "settings": {"note": "pulled"},
        }
    )


class RemoteServer:
    """The recording remote, on a fixed loopback port for its whole life."""

    def __init__(self) -> None:
        self.port = free_port()
        self.behaviour = Behaviour()
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._stack: ExitStack | None = None
        self._released = threading.Event()
        self.app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"

    def start(self) -> None:
        self._released.clear()
        stack = ExitStack()
        stack.enter_context(serve(self.app, port=self.port))
        self._stack = stack

    def stop(self) -> None:
        self._released.set()  # hung requests end, so the server can stop
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def updates(self, status: int | None = 200) -> list[Recorded]:
        """``POST /api/update`` requests, only those answered ``status`` (None: all)."""
        return [
            r
            for r in self.requests
            if r.method == "POST"
            and r.path == f"{PREFIX}/update"
            and (status is None or r.status == status)
        ]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        b = self.behaviour
        path = request.url.path
        status = 200
        if path == f"{PREFIX}/update" and b.status is not None:
            status = b.status
        if path == f"{PREFIX}/health" and b.fail_health:
            status = b.status or 500
        if not path.startswith(PREFIX + "/"):
            status = 404
        with self._lock:
            self._requests.append(
                Recorded(
                    request.method,
                    path,
                    dict(request.headers),
                    body,
                    status,
                    raw,
                    tuple(name for name, _ in request.headers.items()),
                )
            )
        if b.delay:
            # a slow or hanging remote is the behaviour under test: this sleep is the remote's
            await asyncio.sleep(b.delay)
        if (
            path == f"{PREFIX}/update"
            and isinstance(body, dict)
            and body.get("server") in b.hang_servers
        ):
            await asyncio.to_thread(self._released.wait, 60)
        headers = {"Retry-After": b.retry_after} if b.retry_after and status != 200 else None
        if status != 200:
            return JSONResponse({"error": f"test remote answers {status}"}, status, headers)
        if path == f"{PREFIX}/health":
            return JSONResponse({"status": 200, "endpoint": "active"})
        if path == f"{PREFIX}/config" and request.method == "GET":
            return JSONResponse(b.config)
        return JSONResponse({"success": True})


def running_remote() -> Iterator[RemoteServer]:
    remote = RemoteServer()
    remote.start()
    try:
        yield remote
    finally:
        remote.stop()
