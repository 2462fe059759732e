"""The log follow for the coordinator (``lightd_shared.stats.LOG_FOLLOW_PATH``), as SSE.

Opened only by a JWT signed with this node's dispatch key whose ``sub`` is the log follow's
(a command token does not open it, and its token runs no command) and whose ``jti`` names this
server. While the server installs, the stream is the install container's output; after that
(or when there is no install running) it is the server's own. Each line is one ``event: log``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, status
from sse_starlette.sse import EventSourceResponse

from lightd_agent.api.deps import ConfigDep, ManagerDep
from lightd_agent.errors import Conflict
from lightd_agent.security import DispatchTokenError, verify_dispatch_token
from lightd_shared.dispatch import DispatchClaims
from lightd_shared.stats import LOG_FOLLOW_PATH, LOG_FOLLOW_PREFIX, LOG_FOLLOW_SUBJECT

__all__ = ["router"]

router = APIRouter(tags=["logs"])

_QUEUE = 1000


def follow_claims(
    request: Request,
    config: ConfigDep,
    authorization: Annotated[str | None, Header()] = None,
) -> DispatchClaims:
    key: str | None = getattr(request.app.state, "dispatch_key", None)
    if key is None or not config.coordinator.enabled:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="this agent is not enrolled with a coordinator (coordinator.enabled is false)",
        )
    try:
        return verify_dispatch_token(
            authorization,
            key,
            node_id=config.node.id,
            command_id=None,
            subject=LOG_FOLLOW_SUBJECT,
        )
    except DispatchTokenError as exc:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=f"log follow refused: {exc}",
            headers={"WWW-Authenticate": "Bearer"},
        ) from None


def _pump(stream: Any, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    def put(item: str | None) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result(timeout=30)

    buffer = b""
    try:
        for chunk in stream:
            buffer += bytes(chunk)
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                put(line.decode("utf-8", "replace"))
    except Exception:  # closed by the consumer, or the engine went away
        pass
    finally:
        with contextlib.suppress(Exception):
            if buffer:
                put(buffer.decode("utf-8", "replace"))
            put(None)


@router.get(
    LOG_FOLLOW_PATH.replace("{server}", "{server_id}"),
    summary="A server's output as SSE, for the coordinator",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def follow_logs(
    server_id: str,
    manager: ManagerDep,
    claims: Annotated[DispatchClaims, Depends(follow_claims)],
    tail: Annotated[int | None, Query(ge=0, le=10_000)] = None,
) -> EventSourceResponse:
    if not claims.jti.startswith(f"{LOG_FOLLOW_PREFIX}{server_id}:"):
        raise HTTPException(
            status_code=401, detail="log follow refused: the token is for another server"
        )
    server = manager.get(server_id)
    backend = manager.backend
    container = None
    if server.installing():
        container = await backend.call(
            "finding the install container", backend.find, server_id, "install"
        )
    if container is None:
        container = await backend.call("finding the server's container", backend.find, server_id)
    if container is None:
        raise Conflict(f"server {server_id!r} has no container yet (state {server.state})")
    stream: Any = await backend.call(
        "opening the log stream",
        container.logs,
        stdout=True,
        stderr=True,
        stream=True,
        follow=True,
        tail="all" if tail is None else tail,
    )
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=_QUEUE)
    thread = loop.run_in_executor(None, _pump, stream, loop, queue)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            while True:
                line = await queue.get()
                if line is None:
                    return
                yield {"event": "log", "data": line}
        finally:
            with contextlib.suppress(Exception):
                stream.close()
            while not queue.empty():
                queue.get_nowait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(thread), timeout=1)

    return EventSourceResponse(events(), ping=15)
