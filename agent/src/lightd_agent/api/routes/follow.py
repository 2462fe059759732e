"""The log follow for the coordinator (``lightd_shared.stats.LOG_FOLLOW_PATH``), as SSE.

Opened only by a JWT signed with this node's dispatch key whose ``sub`` is the log follow's
(a command token does not open it, and its token runs no command) and whose ``jti`` names this
server. While the server installs, the stream is the install container's output; after that
(or when there is no install running) it is the server's own. Each line is one
``event: log``; it starts with a bounded backlog and is throttled like every follow
(``event: dropped``, see :mod:`lightd_agent.console.service`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from sse_starlette.sse import EventSourceResponse

from lightd_agent.api.deps import AgentDep, ManagerDep
from lightd_agent.console.service import sse_events
from lightd_agent.errors import Conflict
from lightd_agent.security import DispatchTokenError, verify_dispatch_token
from lightd_shared.dispatch import DispatchClaims
from lightd_shared.stats import LOG_FOLLOW_PATH, LOG_FOLLOW_PREFIX, LOG_FOLLOW_SUBJECT

__all__ = ["router"]

router = APIRouter(tags=["logs"])


def follow_claims(
    agent: AgentDep,
    authorization: Annotated[str | None, Header()] = None,
) -> DispatchClaims:
    config = agent.config
    if not config.coordinator.enabled:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="this agent is not enrolled with a coordinator (coordinator.enabled is false)",
        )
    try:
        return verify_dispatch_token(
            authorization,
            agent.dispatch_key,
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


@router.get(
    LOG_FOLLOW_PATH.replace("{server}", "{server_id}"),
    summary="A server's output as SSE, for the coordinator",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def follow_logs(
    server_id: str,
    manager: ManagerDep,
    agent: AgentDep,
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
        container = await backend.find(server_id, "install", what="finding the install container")
    if container is None:
        container = await backend.find(server_id, what="finding the server's container")
    if container is None:
        raise Conflict(f"server {server_id!r} has no container yet (state {server.state})")
    backlog = agent.console.backlog(tail)
    lines = await backend.follow(container.id, backlog, agent.console.shaper(server_id, backlog))
    return EventSourceResponse(sse_events(lines), ping=15)
