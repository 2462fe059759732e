"""``/containers/{id}/console`` and ``/containers/{id}/install-log``.

- ``POST /containers/{id}/console`` ``{"command": "say hello"}``: one line to the server's
  stdin (:class:`~lightd_agent.console.service.Console`); the live console is the log follow
  (``GET /containers/{id}/logs?follow=true``).
- ``GET /containers/{id}/install-log``: the kept output of the last install or reinstall
  (``?which=install|reinstall``; the most recent when not given) as text, the kind in the
  ``X-Lightd-Install-Log`` header; ``?follow=true``: as SSE (``event: log`` per line), live
  while that install runs, then ``event: end`` ``{"which": ...}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from sse_starlette.sse import EventSourceResponse

from lightd_agent.api.deps import AgentDep, Authorized, ManagerDep
from lightd_agent.console.service import sse_events
from lightd_agent.errors import NotFound
from lightd_shared.console import ConsoleInput, ConsoleSent, InstallLogKind
from lightd_shared.routing import GuardFirstRoute

__all__ = ["INSTALL_LOG_HEADER", "router"]

INSTALL_LOG_HEADER = "X-Lightd-Install-Log"

router = APIRouter(
    prefix="/containers",
    tags=["console"],
    dependencies=[Authorized],
    route_class=GuardFirstRoute,
)


@router.post(
    "/{server_id}/console",
    response_model=ConsoleSent,
    summary="Write one line to the server's stdin",
    responses={
        404: {"description": "unknown server"},
        409: {"description": "not running, or created without an open stdin (reinstall it)"},
    },
)
async def console(server_id: str, body: ConsoleInput, agent: AgentDep) -> ConsoleSent:
    return await agent.console.send(server_id, body.command)


@router.get(
    "/{server_id}/install-log",
    summary="The last install's (or reinstall's) output; ?follow=true as SSE",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {}, "text/event-stream": {}}},
        404: {"description": "unknown server, or no such install log kept"},
    },
)
async def install_log(
    server_id: str,
    manager: ManagerDep,
    which: Annotated[
        InstallLogKind | None, Query(description="install or reinstall (default: the last)")
    ] = None,
    follow: bool = False,
) -> Any:
    manager.get(server_id)
    logs = manager.install_logs
    kind = which or logs.latest(server_id)
    missing = NotFound(
        f"server {server_id!r} has no {which or 'install'} log kept: none has run with an "
        "install_script since the agent kept install logs"
    )
    if kind is None:
        raise missing
    headers = {INSTALL_LOG_HEADER: kind}
    if not follow:
        text = logs.read(server_id, kind)
        if text is None:
            raise missing
        return PlainTextResponse(text, headers=headers)
    lines = await logs.follow(server_id, kind)
    if lines is None:
        raise missing

    async def events() -> AsyncIterator[dict[str, str]]:
        async for event in sse_events(lines):
            yield event
        yield {"event": "end", "data": json.dumps({"server": server_id, "which": kind})}

    return EventSourceResponse(events(), ping=15, headers=headers)
